"""The test API server, exercised through the real ``kubernetes`` Python client."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from typing import Any

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.kubeapi import KubeApiServer

NS = "default"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.dev"},
    "spec": {
        "group": "example.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                  "shortNames": ["wg"], "categories": ["all"]},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "subresources": {"status": {}, "scale": {
                "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size"],
                        "x-kubernetes-validations": [
                            {"rule": "self.minReplicas <= self.replicas",
                             "message": "replicas must be at least minReplicas"},
                        ],
                        "properties": {
                            "size": {"type": "string", "enum": ["small", "large"]},
                            "replicas": {"type": "integer", "minimum": 0, "default": 1},
                            "minReplicas": {"type": "integer", "minimum": 0, "default": 0},
                            "port": {"x-kubernetes-int-or-string": True},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    },
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"},
                        "phase": {"type": "string"},
                    }},
                },
            }},
        }],
    },
}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"size": "small", **spec}}


def deployment(name: str, replicas: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    app = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or app},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": app},
            "template": {"metadata": {"labels": app}, "spec": {"containers": [
                {"name": "main", "image": "engine:1", "ports": [{"containerPort": 8000}]},
                {"name": "sidecar", "image": "proxy:1"},
            ]}},
        },
    }


def raw_request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    content_type: str = "application/json",
    query: dict[str, str] | None = None,
) -> Any:
    """A request the typed client has no method for; returns the decoded body, raises on >= 400."""
    url = api.configuration.host + path + ("?" + urllib.parse.urlencode(query) if query else "")
    response = api.call_api(method, url, header_params={
        "Content-Type": content_type, "Accept": "application/json"}, body=body)
    data = response.read()
    if response.status >= 400:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = data.decode()
        raise error
    return data.decode() if query and query.get("watch") else json.loads(data)


@pytest.fixture
def core(kube_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


@pytest.fixture
def apps(kube_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube_client)


@pytest.fixture
def custom(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def widgets(kube_client: client.ApiClient, custom: client.CustomObjectsApi) -> client.CustomObjectsApi:
    client.ApiextensionsV1Api(kube_client).create_custom_resource_definition(WIDGET_CRD)
    return custom


# --- CRUD, metadata, errors --------------------------------------------------------------------


def test_crud_sets_server_metadata_and_versions(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert created.metadata.uid and created.metadata.creation_timestamp
    first_rv = int(created.metadata.resource_version)

    created.data["a"] = "2"
    replaced = core.replace_namespaced_config_map("cfg", NS, created)
    assert int(replaced.metadata.resource_version) > first_rv
    assert replaced.metadata.uid == created.metadata.uid
    assert core.read_namespaced_config_map("cfg", NS).data == {"a": "2"}

    core.delete_namespaced_config_map("cfg", NS)
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("cfg", NS)
    assert caught.value.status == 404
    assert json.loads(caught.value.body)["message"] == 'configmaps "cfg" not found'


def test_already_exists_and_stale_update_conflict(core: client.CoreV1Api) -> None:
    body = {"metadata": {"name": "cfg"}, "data": {"a": "1"}}
    stale = core.create_namespaced_config_map(NS, body)
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(NS, body)
    assert exists.value.status == 409 and "AlreadyExists" in exists.value.body

    core.patch_namespaced_config_map("cfg", NS, {"data": {"a": "2"}})
    stale.data["a"] = "3"
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_config_map("cfg", NS, stale)
    assert conflict.value.status == 409 and '"reason":"Conflict"' in conflict.value.body
    # A merge patch carrying the stale resourceVersion is refused the same way.
    with pytest.raises(ApiException) as patched:
        core.patch_namespaced_config_map(
            "cfg", NS, {"metadata": {"resourceVersion": stale.metadata.resource_version},
                        "data": {"a": "4"}})
    assert patched.value.status == 409
    assert core.read_namespaced_config_map("cfg", NS).data == {"a": "2"}


def test_create_in_missing_namespace_and_bad_name_are_rejected(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "cfg"}})
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'namespaces "nowhere" not found'
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "Not_Valid"}})
    assert invalid.value.status == 422 and "metadata.name" in invalid.value.body


# --- selectors, pagination --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"a", "b"}),
        ("tier==web", {"a", "b"}),
        ("tier!=web", {"c", "d"}),
        ("tier in (web,db)", {"a", "b", "c"}),
        ("tier notin (web)", {"c", "d"}),
        ("env", {"a", "c"}),
        ("!env", {"b", "d"}),
        ("tier=web,env=prod", {"a"}),
    ],
)
def test_label_selectors(core: client.CoreV1Api, selector: str, expected: set[str]) -> None:
    labels = {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "web"},
              "c": {"tier": "db", "env": "dev"}, "d": {}}
    for name, label_set in labels.items():
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": label_set}})
    found = core.list_namespaced_config_map(NS, label_selector=selector)
    assert {o.metadata.name for o in found.items} == expected


def test_field_selectors_and_list_metadata(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "other"}})
    for namespace in (NS, "other"):
        for name in ("x", "y"):
            core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.name=x")
    assert sorted(o.metadata.namespace for o in everywhere.items) == ["default", "other"]
    assert int(everywhere.metadata.resource_version) >= max(
        int(o.metadata.resource_version) for o in everywhere.items)
    others = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace!=default")
    assert {(o.metadata.namespace, o.metadata.name) for o in others.items} == {("other", "x"), ("other", "y")}
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_config_map(NS, field_selector="spec.unknown=1")
    assert bad.value.status == 400


def test_pagination_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for n in range(5):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm{n}"}})
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map(NS, limit=2, _continue=token)
        names += [o.metadata.name for o in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"cm{n}" for n in range(5)]


# --- patches, generation, subresources ---------------------------------------------------------


def test_patch_formats_on_deployment(apps: client.AppsV1Api, kube_client: client.ApiClient) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    # Strategic merge (the client's default for dicts): containers merge by name.
    apps.patch_namespaced_deployment("web", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "main", "image": "engine:2"}]}}}})
    containers = apps.read_namespaced_deployment("web", NS).spec.template.spec.containers
    assert [(c.name, c.image) for c in containers] == [("main", "engine:2"), ("sidecar", "proxy:1")]
    assert containers[0].ports[0].container_port == 8000

    # JSON merge patch: lists are replaced whole.
    raw_request(kube_client, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/web",
                content_type="application/merge-patch+json",
                body={"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x:1"}]}}}})
    containers = apps.read_namespaced_deployment("web", NS).spec.template.spec.containers
    assert [c.name for c in containers] == ["only"]

    # JSON patch (a list body makes the client send application/json-patch+json).
    apps.patch_namespaced_deployment("web", NS, [
        {"op": "replace", "path": "/spec/replicas", "value": 4},
        {"op": "add", "path": "/metadata/labels/extra", "value": "yes"},
    ])
    patched = apps.read_namespaced_deployment("web", NS)
    assert patched.spec.replicas == 4 and patched.metadata.labels["extra"] == "yes"
    with pytest.raises(ApiException) as failed_test:
        apps.patch_namespaced_deployment("web", NS, [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert failed_test.value.status == 422


def test_generation_counts_spec_changes_only(apps: client.AppsV1Api) -> None:
    created = apps.create_namespaced_deployment(NS, deployment("web"))
    assert created.metadata.generation == 1
    apps.patch_namespaced_deployment("web", NS, {"metadata": {"labels": {"x": "y"}}})
    apps.patch_namespaced_deployment_status("web", NS, {"status": {"readyReplicas": 1}})
    assert apps.read_namespaced_deployment("web", NS).metadata.generation == 1
    apps.patch_namespaced_deployment("web", NS, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("web", NS).metadata.generation == 2


def test_status_subresource_is_separate_from_spec(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web"))
    # Status written through the main resource is ignored...
    apps.patch_namespaced_deployment("web", NS, {"status": {"readyReplicas": 7}})
    assert apps.read_namespaced_deployment("web", NS).status.ready_replicas is None
    # ...and spec written through /status is ignored.
    apps.patch_namespaced_deployment_status("web", NS, {"spec": {"replicas": 9},
                                                        "status": {"readyReplicas": 2}})
    current = apps.read_namespaced_deployment_status("web", NS)
    assert current.status.ready_replicas == 2 and current.spec.replicas == 1


def test_scale_subresource(apps: client.AppsV1Api) -> None:
    apps.create_namespaced_deployment(NS, deployment("web", replicas=2))
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.spec.replicas == 2 and scale.status.selector == "app=web"
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 5}})
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 5
    scale = apps.read_namespaced_deployment_scale("web", NS)
    scale.spec.replicas = 0
    apps.replace_namespaced_deployment_scale("web", NS, scale)
    assert apps.read_namespaced_deployment("web", NS).spec.replicas == 0


# --- deletion: finalizers, garbage collection, namespaces ---------------------------------------


def test_finalizers_hold_deletion_until_removed(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "held", "finalizers": ["test/hold"]}})
    core.delete_namespaced_config_map("held", NS)
    held = core.read_namespaced_config_map("held", NS)
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as no_new:
        core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": ["test/hold", "more"]}})
    assert no_new.value.status == 422
    core.patch_namespaced_config_map("held", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("held", NS)
    assert gone.value.status == 404


def _owned_config_map(name: str, owner: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": owner.metadata.name,
        "uid": owner.metadata.uid, "controller": True, "blockOwnerDeletion": True}]}}


def test_garbage_collection_of_dependents(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    owner = apps.create_namespaced_deployment(NS, deployment("web"))
    core.create_namespaced_config_map(NS, _owned_config_map("child", owner))
    core.create_namespaced_config_map(NS, {"metadata": {"name": "bystander"}})
    apps.delete_namespaced_deployment("web", NS)
    names = {o.metadata.name for o in core.list_namespaced_config_map(NS).items}
    assert names == {"bystander"}


def test_a_dependent_written_for_an_owner_that_is_gone_is_collected(apps: client.AppsV1Api,
                                                                     core: client.CoreV1Api) -> None:
    """kube-controller-manager's garbage collector deletes a dependent whose owner no longer exists,
    also when it is created after the owner was deleted (an operator's late write)."""
    owner = apps.create_namespaced_deployment(NS, deployment("gone"))
    apps.delete_namespaced_deployment("gone", NS)
    core.create_namespaced_config_map(NS, _owned_config_map("late", owner))
    assert "late" not in {o.metadata.name for o in core.list_namespaced_config_map(NS).items}


def test_orphan_and_foreground_propagation(apps: client.AppsV1Api, core: client.CoreV1Api) -> None:
    owner = apps.create_namespaced_deployment(NS, deployment("web"))
    core.create_namespaced_config_map(NS, _owned_config_map("child", owner))
    apps.delete_namespaced_deployment("web", NS, propagation_policy="Orphan")
    orphan = core.read_namespaced_config_map("child", NS)
    assert not orphan.metadata.owner_references

    owner = apps.create_namespaced_deployment(NS, deployment("web2"))
    core.create_namespaced_config_map(NS, {**_owned_config_map("child2", owner),
                                           "metadata": {**_owned_config_map("child2", owner)["metadata"],
                                                        "finalizers": ["test/hold"]}})
    apps.delete_namespaced_deployment("web2", NS, propagation_policy="Foreground")
    # The owner waits (foregroundDeletion) while its dependent is held by a finalizer.
    waiting = apps.read_namespaced_deployment("web2", NS)
    assert "foregroundDeletion" in waiting.metadata.finalizers
    core.patch_namespaced_config_map("child2", NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment("web2", NS)
    assert gone.value.status == 404


def test_namespace_deletion_removes_its_content(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "cfg"}})
    core.delete_namespace("doomed")
    with pytest.raises(ApiException):
        core.read_namespace("doomed")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=doomed").items == []


# --- watch -------------------------------------------------------------------------------------


def test_watch_resumes_from_resource_version(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "w", "labels": {"pick": "me"}}})
    core.patch_namespaced_config_map("w", NS, {"data": {"k": "v"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "other"}})
    core.delete_namespaced_config_map("w", NS)
    events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=start,
                                      label_selector="pick=me", timeout_seconds=1)
    ]
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_version_starts_with_current_objects_then_streams(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "before"}})
    threading.Timer(0.3, lambda: core.create_namespaced_config_map(
        NS, {"metadata": {"name": "after"}})).start()
    seen = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=2):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "before"), ("ADDED", "after")]


def test_watch_selector_transitions_become_added_and_deleted(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "m", "labels": {"on": "no"}}})
    core.patch_namespaced_config_map("m", NS, {"metadata": {"labels": {"on": "yes"}}})
    core.patch_namespaced_config_map("m", NS, {"metadata": {"labels": {"on": "no"}}})
    events = [e["type"] for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=start, label_selector="on=yes",
        timeout_seconds=1)]
    assert events == ["ADDED", "DELETED"]


def test_too_old_resource_version_is_410_gone(core: client.CoreV1Api, kube_api: KubeApiServer) -> None:
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, {"metadata": {"name": "x"}})
    kube_api.store.compact()
    with pytest.raises(ApiException) as gone:
        list(watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=start,
                                  timeout_seconds=1))
    assert gone.value.status == 410


def test_history_window_is_bounded() -> None:
    with KubeApiServer(history_events=3) as server:
        rtype = server.registry.get("", "v1", "configmaps")
        assert rtype is not None
        start = server.store.resource_version
        for n in range(5):
            server.store.create(rtype, NS, {"metadata": {"name": f"c{n}"}}, "test")
        with pytest.raises(Exception) as gone:
            server.store.subscribe(rtype.key, start, lambda event: None)
        assert getattr(gone.value, "code", None) == 410


def test_bookmarks_are_sent_when_allowed(kube_client: client.ApiClient, kube_api: KubeApiServer) -> None:
    kube_api.bookmark_interval_s = 0.2
    core = client.CoreV1Api(kube_client)
    start = core.list_namespaced_config_map(NS).metadata.resource_version
    began = time.monotonic()
    types = [e["type"] for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=start, allow_watch_bookmarks=True,
        timeout_seconds=1)]
    elapsed = time.monotonic() - began
    assert types and set(types) == {"BOOKMARK"}
    assert 0.9 <= elapsed < 3.0, "timeoutSeconds must end the stream"


def test_watch_list_initial_events_end_with_annotated_bookmark(core: client.CoreV1Api,
                                                              kube_client: client.ApiClient) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}})
    stream = raw_request(kube_client, "GET", f"/api/v1/namespaces/{NS}/configmaps", query={
        "watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true",
        "resourceVersionMatch": "NotOlderThan", "timeoutSeconds": "1"})
    events = [json.loads(line) for line in stream.splitlines() if line]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# --- CRDs --------------------------------------------------------------------------------------


def test_crd_becomes_established_and_servable(widgets: client.CustomObjectsApi,
                                              kube_client: client.ApiClient) -> None:
    crd = client.ApiextensionsV1Api(kube_client).read_custom_resource_definition("widgets.example.dev")
    established = {c.type: c.status for c in crd.status.conditions}
    assert established["Established"] == "True"
    resources = client.CustomObjectsApi(kube_client).get_api_resources("example.dev", "v1")
    names = {r.name: r for r in resources.resources}
    assert set(names) == {"widgets", "widgets/status", "widgets/scale"}
    assert names["widgets"].short_names == ["wg"] and names["widgets"].categories == ["all"]

    created = widgets.create_namespaced_custom_object("example.dev", "v1", NS, "widgets", widget("w1"))
    assert created["spec"]["replicas"] == 1, "schema defaults are applied"
    assert created["metadata"]["generation"] == 1
    listed = widgets.list_namespaced_custom_object("example.dev", "v1", NS, "widgets")
    assert listed["kind"] == "WidgetList" and [i["metadata"]["name"] for i in listed["items"]] == ["w1"]


def test_crd_schema_validation_pruning_and_cel(widgets: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as wrong_enum:
        widgets.create_namespaced_custom_object("example.dev", "v1", NS, "widgets",
                                                widget("bad", size="huge"))
    assert wrong_enum.value.status == 422 and "spec.size" in wrong_enum.value.body
    with pytest.raises(ApiException) as missing:
        widgets.create_namespaced_custom_object(
            "example.dev", "v1", NS, "widgets",
            {"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "m"}, "spec": {}})
    assert missing.value.status == 422 and "size" in missing.value.body
    with pytest.raises(ApiException) as cel:
        widgets.create_namespaced_custom_object("example.dev", "v1", NS, "widgets",
                                                widget("c", replicas=1, minReplicas=3))
    assert cel.value.status == 422 and "replicas must be at least minReplicas" in cel.value.body

    created = widgets.create_namespaced_custom_object(
        "example.dev", "v1", NS, "widgets",
        widget("ok", port="http", unknown="dropped", extra={"anything": {"goes": 1}}))
    assert "unknown" not in created["spec"], "undeclared fields are pruned"
    assert created["spec"]["extra"] == {"anything": {"goes": 1}}
    assert created["spec"]["port"] == "http"


def test_custom_resource_status_and_scale(widgets: client.CustomObjectsApi) -> None:
    widgets.create_namespaced_custom_object("example.dev", "v1", NS, "widgets", widget("w", replicas=2))
    widgets.patch_namespaced_custom_object_status("example.dev", "v1", NS, "widgets", "w",
                                                  {"status": {"replicas": 2, "phase": "Ready"}})
    current = widgets.get_namespaced_custom_object("example.dev", "v1", NS, "widgets", "w")
    assert current["status"] == {"replicas": 2, "phase": "Ready"}
    assert current["metadata"]["generation"] == 1
    widgets.patch_namespaced_custom_object_scale("example.dev", "v1", NS, "widgets", "w",
                                                 {"spec": {"replicas": 6}})
    current = widgets.get_namespaced_custom_object("example.dev", "v1", NS, "widgets", "w")
    assert current["spec"]["replicas"] == 6 and current["metadata"]["generation"] == 2
    scale = widgets.get_namespaced_custom_object_scale("example.dev", "v1", NS, "widgets", "w")
    assert scale["spec"]["replicas"] == 6 and scale["status"]["replicas"] == 2


def test_crd_deletion_removes_instances_and_unserves(widgets: client.CustomObjectsApi,
                                                     kube_client: client.ApiClient) -> None:
    widgets.create_namespaced_custom_object("example.dev", "v1", NS, "widgets", widget("w"))
    client.ApiextensionsV1Api(kube_client).delete_custom_resource_definition("widgets.example.dev")
    with pytest.raises(ApiException) as gone:
        widgets.list_namespaced_custom_object("example.dev", "v1", NS, "widgets")
    assert gone.value.status == 404


def test_cluster_scoped_custom_resource(kube_client: client.ApiClient,
                                        custom: client.CustomObjectsApi) -> None:
    crd = {**WIDGET_CRD, "metadata": {"name": "gadgets.example.dev"},
           "spec": {**WIDGET_CRD["spec"], "scope": "Cluster",
                    "names": {"plural": "gadgets", "kind": "Gadget"}}}
    client.ApiextensionsV1Api(kube_client).create_custom_resource_definition(crd)
    body = {**widget("g"), "kind": "Gadget"}
    created = custom.create_cluster_custom_object("example.dev", "v1", "gadgets", body)
    assert "namespace" not in created["metadata"]
    assert custom.get_cluster_custom_object("example.dev", "v1", "gadgets", "g")["spec"]["size"] == "small"


# --- server-side apply ---------------------------------------------------------------------


def _apply(kube_client: client.ApiClient, path: str, body: dict[str, Any], manager: str,
           force: bool = False) -> dict[str, Any]:
    query = {"fieldManager": manager, **({"force": "true"} if force else {})}
    return raw_request(kube_client, "PATCH", path, body=body, query=query,
                       content_type="application/apply-patch+yaml")


def test_server_side_apply_creates_merges_and_detects_conflicts(kube_client: client.ApiClient,
                                                                apps: client.AppsV1Api) -> None:
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    body = deployment("web", replicas=2)
    body["metadata"]["labels"]["owned-by"] = "tidal"
    created = _apply(kube_client, path, body, "tidal")
    assert created["spec"]["replicas"] == 2
    assert [m["manager"] for m in created["metadata"]["managedFields"]] == ["tidal"]

    # Re-applying without a field removes it (the manager owned it and nobody else does).
    del body["metadata"]["labels"]["owned-by"]
    body["spec"]["replicas"] = 3
    applied = _apply(kube_client, path, body, "tidal")
    assert "owned-by" not in applied["metadata"]["labels"] and applied["spec"]["replicas"] == 3

    # Another manager setting a field tidal owns, to a different value, conflicts...
    other = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": 9}}
    with pytest.raises(ApiException) as conflict:
        _apply(kube_client, path, other, "someone-else")
    assert conflict.value.status == 409 and ".spec.replicas" in conflict.value.body
    # ...unless forced, which takes ownership.
    forced = _apply(kube_client, path, other, "someone-else", force=True)
    assert forced["spec"]["replicas"] == 9
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert "f:replicas" in owners["someone-else"]["f:spec"]
    assert "f:replicas" not in owners["tidal"]["f:spec"]
    # Containers stay merged by name across managers.
    assert [c.name for c in apps.read_namespaced_deployment("web", NS).spec.template.spec.containers] == [
        "main", "sidecar"]


# --- fault injection and audit ---------------------------------------------------------------


def test_fault_injection_and_audit_log(core: client.CoreV1Api, kube_api: KubeApiServer) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "cfg"}})
    kube_api.faults.inject(verb="patch", resource="configmaps", status=500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            core.patch_namespaced_config_map("cfg", NS, {"data": {"a": "1"}})
        assert failed.value.status == 500
    core.patch_namespaced_config_map("cfg", NS, {"data": {"a": "1"}})
    assert kube_api.faults.pending() == 0
    core.read_namespaced_config_map("cfg", NS)

    # A delay longer than the client's timeout is a timeout (urllib3 retries, so delay them all).
    kube_api.faults.inject(verb="get", resource="configmaps", delay_s=1.0, times=10)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as timed_out:
        core.read_namespaced_config_map("cfg", NS, _request_timeout=0.2)
    assert "timed out" in str(timed_out.value)
    kube_api.faults.clear()

    triples = kube_api.audit.rbac_triples()
    assert {("", "configmaps", "create"), ("", "configmaps", "patch"), ("", "configmaps", "get")} <= triples
    patches = [r for r in kube_api.audit.records() if r.verb == "patch"]
    assert [r.code for r in patches] == [500, 500, 200]
    assert all(r.namespace == NS and r.name == "cfg" for r in patches)


def test_events_are_shared_between_core_and_events_k8s_io(core: client.CoreV1Api,
                                                          kube_client: client.ApiClient) -> None:
    events_v1 = client.EventsV1Api(kube_client)
    regarding = {"kind": "Deployment", "name": "web", "namespace": NS, "uid": "u-1",
                 "apiVersion": "apps/v1"}
    events_v1.create_namespaced_event(NS, {
        "metadata": {"name": "web.scaled"}, "regarding": regarding, "note": "scaled to 3",
        "reason": "ScaledUp", "type": "Normal", "action": "Scale",
        "eventTime": "2025-01-01T00:00:00.000000Z", "reportingController": "tidal.dev/operator",
        "reportingInstance": "tidal-0"})
    core.create_namespaced_event(NS, {
        "metadata": {"name": "web.legacy"}, "involvedObject": regarding, "message": "hello",
        "reason": "Legacy", "type": "Normal"})

    as_core = core.list_namespaced_event(NS, field_selector="involvedObject.name=web")
    assert sorted((e.reason, e.message) for e in as_core.items) == [
        ("Legacy", "hello"), ("ScaledUp", "scaled to 3")]
    as_v1 = events_v1.list_namespaced_event(NS, field_selector="regarding.uid=u-1")
    assert sorted((e.reason, e.note) for e in as_v1.items) == [("Legacy", "hello"), ("ScaledUp", "scaled to 3")]
    assert core.list_namespaced_event(NS, field_selector="reason=ScaledUp").items[0].reporting_component == (
        "tidal.dev/operator")


def test_roles_and_role_bindings_are_served_and_server_side_applied(kube_client: client.ApiClient) -> None:
    """The P/D router's identity (tidal/controllers/pd_router.py) goes through rbac.authorization.k8s.io."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(kube_client)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": NS},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "r", "namespace": NS},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
               "subjects": [{"kind": "ServiceAccount", "name": "r", "namespace": NS}]}
    for obj in (role, binding):
        resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        resource.server_side_apply(body=obj, name="r", namespace=NS, field_manager="tidal")
        stored = resource.get(name="r", namespace=NS).to_dict()
        assert {k: stored[k] for k in obj if k != "metadata"} == {k: obj[k] for k in obj if k != "metadata"}
    rbac = client.RbacAuthorizationV1Api(kube_client)
    assert [r.metadata.name for r in rbac.list_namespaced_role(NS).items] == ["r"]
    assert rbac.read_namespaced_role_binding("r", NS).role_ref.name == "r"
