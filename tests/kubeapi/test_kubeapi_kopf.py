"""The test API server under the real kopf runtime (KopfRunner), with a tiny operator."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf
import pytest
from kopf.testing import KopfRunner
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.kubeapi import KubeApiServer
from tests.kubeapi.test_kubeapi_client import WIDGET_CRD, widget

NS = "default"
GROUP, VERSION, PLURAL = "example.dev", "v1", "widgets"
# How long the operator may take to react; kopf reacts within milliseconds on an idle machine. The
# same 30 s as tests/operator/conftest.py: a cleanup that chains a delete, a finalizer and garbage
# collection took over 15 s in make test-repeat; a deadline only bounds how long a failure takes.
REACTION_TIMEOUT_S = 30.0

# kopf's own peering CRDs (as in kopf's docs: peering.yaml), status written via the main resource.
_PEERING_SCHEMA = {"openAPIV3Schema": {"type": "object", "properties": {
    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}
PEERING_CRDS = [
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": f"{plural}.kopf.dev"},
     "spec": {"group": "kopf.dev", "scope": scope,
              "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
              "versions": [{"name": "v1", "served": True, "storage": True, "schema": _PEERING_SCHEMA}]}}
    for kind, plural, scope in (("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
                                ("KopfPeering", "kopfpeerings", "Namespaced"))
]


def _widget_crd_for_kopf() -> dict[str, Any]:
    """The widget CRD with an open status, where kopf keeps its handler progress."""
    crd = copy.deepcopy(WIDGET_CRD)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["status"]["x-kubernetes-preserve-unknown-fields"] = True
    return crd


def eventually(check: Callable[[], Any], timeout_s: float = REACTION_TIMEOUT_S) -> Any:
    """Poll ``check`` until it returns a truthy value without raising; fail with its last error."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last_error = None
        except (AssertionError, ApiException) as exc:
            last_error = exc
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout_s} s; last error: {last_error!r}")


def build_operator(server: KubeApiServer, api: client.ApiClient, deletions: list[str]) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    core = client.CoreV1Api(api)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server.url, insecure=True, default_namespace=NS)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(spec: Any, name: str, namespace: str, body: Any, patch: Any, **_: Any) -> None:
        config_map = {"metadata": {"name": f"{name}-cfg"}, "data": {"size": spec["size"]}}
        kopf.adopt(config_map, owner=body)
        core.create_namespaced_config_map(namespace, config_map)
        patch.status["phase"] = "Created"
        kopf.info(body, reason="ChildCreated", message=f"created ConfigMap {name}-cfg")

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def updated(spec: Any, name: str, namespace: str, patch: Any, **_: Any) -> None:
        core.patch_namespaced_config_map(f"{name}-cfg", namespace, {"data": {"size": spec["size"]}})
        patch.status["phase"] = "Updated"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
    def deleted(name: str, **_: Any) -> None:
        deletions.append(name)

    return registry


def fast_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 30
    settings.peering.priority = 1
    return settings


@pytest.fixture
def widget_api(kube_client: client.ApiClient) -> client.CustomObjectsApi:
    extensions = client.ApiextensionsV1Api(kube_client)
    for crd in [_widget_crd_for_kopf(), *PEERING_CRDS]:
        extensions.create_custom_resource_definition(crd)
    client.CustomObjectsApi(kube_client).create_cluster_custom_object(
        "kopf.dev", "v1", "clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "default"}})
    return client.CustomObjectsApi(kube_client)


def _read(api: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name)


def _problems_in(log: str) -> list[str]:
    """Log lines that show errors or retries (kopf logs retries as 'will retry')."""
    pattern = re.compile(r"ERROR|Traceback|retry|retries|Unprocessable|Conflict", re.IGNORECASE)
    return [line for line in log.splitlines() if pattern.search(line)]


def test_kopf_operator_lifecycle_with_finalizer_status_events_and_peering(
    kube_api: KubeApiServer, kube_client: client.ApiClient, widget_api: client.CustomObjectsApi
) -> None:
    core = client.CoreV1Api(kube_client)
    deletions: list[str] = []
    registry = build_operator(kube_api, kube_client, deletions)
    args = ["run", "--all-namespaces", "--verbose"]
    with KopfRunner(args, registry=registry, settings=fast_settings(), timeout=30) as runner:
        widget_api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("w"))

        def created() -> dict[str, Any]:
            obj = _read(widget_api, "w")
            assert obj.get("status", {}).get("phase") == "Created"
            return obj

        obj = eventually(created)
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        child = core.read_namespaced_config_map("w-cfg", NS)
        assert child.data == {"size": "small"}
        assert child.metadata.owner_references[0].uid == obj["metadata"]["uid"]

        widget_api.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w", {"spec": {"size": "large"}})
        eventually(lambda: _read(widget_api, "w")["status"].get("phase") == "Updated")
        assert core.read_namespaced_config_map("w-cfg", NS).data == {"size": "large"}

        # kopf posts Kubernetes events about the object (core/v1 Events).
        events = eventually(lambda: core.list_namespaced_event(
            NS, field_selector="involvedObject.name=w").items)
        assert [(e.reason, e.message, e.involved_object.uid) for e in events] == [
            ("ChildCreated", "created ConfigMap w-cfg", obj["metadata"]["uid"])]

        # Peering: kopf keeps its identity alive in the cluster peering object's status.
        # kopf's peering keep-alive runs on its own schedule, apart from the handlers: poll.
        eventually(lambda: widget_api.get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", "default").get("status"))

        widget_api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "w")

        def gone() -> bool:
            try:
                _read(widget_api, "w")
            except ApiException as missing:
                return missing.status == 404
            return False

        eventually(gone)
        assert deletions == ["w"]
        eventually(lambda: not core.list_namespaced_config_map(NS).items)

    assert runner.exit_code == 0
    assert "Creation is processed: 1 succeeded; 0 failed." in runner.output, runner.output[-2000:]
    assert _problems_in(runner.output) == []
    # kopf watched the widgets cluster-wide and CRDs for discovery changes.
    watched = {(r.group, r.resource) for r in kube_api.audit.records() if r.verb == "watch"}
    assert {(GROUP, PLURAL), ("apiextensions.k8s.io", "customresourcedefinitions")} <= watched
    kopf_requests = [r for r in kube_api.audit.records() if r.user_agent.startswith("kopf/")]
    assert kopf_requests, "kopf identifies itself by its User-Agent"
    assert [r for r in kopf_requests if r.code >= 400] == []


def test_kopf_retries_through_injected_api_failures(
    kube_api: KubeApiServer, kube_client: client.ApiClient, widget_api: client.CustomObjectsApi
) -> None:
    deletions: list[str] = []
    registry = build_operator(kube_api, kube_client, deletions)
    settings = fast_settings()
    settings.networking.error_backoffs = [0.1, 0.2, 0.3]
    # The first two status patches fail as a real API server under load would.
    kube_api.faults.inject(verb="patch", resource=PLURAL, status=500, times=2)
    with KopfRunner(["run", "--namespace", NS, "--standalone"], registry=registry,
                    settings=settings, timeout=30) as runner:
        widget_api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("r"))
        eventually(lambda: _read(widget_api, "r").get("status", {}).get("phase") == "Created")
        assert kube_api.faults.pending() == 0
        # Exactly one child, despite the retries.
        assert [c.metadata.name for c in client.CoreV1Api(kube_client).list_namespaced_config_map(NS).items] == [
            "r-cfg"]
    assert runner.exit_code == 0
    failed = [r for r in kube_api.audit.records() if r.code == 500]
    assert len(failed) == 2 and all(r.verb == "patch" and r.resource == PLURAL for r in failed)


def test_kopf_watches_namespaces_for_namespace_patterns(
    kube_api: KubeApiServer, kube_client: client.ApiClient, widget_api: client.CustomObjectsApi
) -> None:
    """With a namespace glob, kopf watches Namespaces cluster-wide and follows new ones."""
    core = client.CoreV1Api(kube_client)
    deletions: list[str] = []
    registry = build_operator(kube_api, kube_client, deletions)
    with KopfRunner(["run", "--namespace", "team-*", "--standalone"], registry=registry,
                    settings=fast_settings(), timeout=30) as runner:
        core.create_namespace({"metadata": {"name": "team-a"}})
        time_created = threading.Event()

        def make_widget() -> None:
            widget_api.create_namespaced_custom_object(GROUP, VERSION, "team-a", PLURAL, widget("t"))
            time_created.set()

        make_widget()
        eventually(lambda: widget_api.get_namespaced_custom_object(
            GROUP, VERSION, "team-a", PLURAL, "t").get("status", {}).get("phase") == "Created")
        # A widget outside the pattern is left alone.
        widget_api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, widget("ignored"))
        time.sleep(0.5)
        assert "status" not in _read(widget_api, "ignored")
    assert runner.exit_code == 0
    assert _problems_in(runner.output) == []
    watched = {(r.group, r.resource, r.namespace) for r in kube_api.audit.records() if r.verb == "watch"}
    assert ("", "namespaces", "") in watched and (GROUP, PLURAL, "team-a") in watched
