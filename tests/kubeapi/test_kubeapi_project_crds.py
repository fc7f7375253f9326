"""tidal's own CRDs (crds/) and examples (examples/) on the test API server.

This is what operator tests build on: the generated CRDs register, every example is accepted
(schema and CEL rules as the server evaluates them), and a broken object is refused with 422.
"""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _documents(paths: list[pathlib.Path]) -> list[dict[str, Any]]:
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture
def tidal_crds(kube_client: client.ApiClient) -> list[dict[str, Any]]:
    crd_files = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    assert crd_files, "crds/ holds the generated CRDs (tidal crds)"
    crds = _documents(crd_files)
    extensions = client.ApiextensionsV1Api(kube_client)
    for crd in crds:
        extensions.create_custom_resource_definition(crd)
    return crds


def test_project_examples_are_accepted(kube_client: client.ApiClient, tidal_crds: list[dict[str, Any]]) -> None:
    examples = _documents(sorted((REPO_ROOT / "examples").glob("*.yaml")))
    kinds = {c["spec"]["names"]["kind"] for c in tidal_crds}
    ours = [d for d in examples if d.get("kind") in kinds]
    assert ours, "examples/ should hold sample tidal resources"
    # No namespace is created first: `kubectl apply -f examples/<file>` must work on a fresh cluster,
    # so an example names no namespace, names "default", or creates its namespace itself.
    # The dynamic client finds the kinds through discovery, as generic tools do.
    resources = dynamic.DynamicClient(kube_client).resources
    for doc in ours:
        resource = resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.create(body=doc, namespace=doc["metadata"].get("namespace", "default")
                        if resource.namespaced else None)
    custom = client.CustomObjectsApi(kube_client)
    for crd in tidal_crds:
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        listed = custom.list_cluster_custom_object(spec["group"], version, spec["names"]["plural"])
        expected = sum(1 for d in ours if d["kind"] == spec["names"]["kind"])
        assert len(listed["items"]) == expected


def test_project_schema_rejects_a_broken_object(kube_client: client.ApiClient,
                                                tidal_crds: list[dict[str, Any]]) -> None:
    examples = _documents(sorted((REPO_ROOT / "examples").glob("*.yaml")))
    deployment = next(d for d in examples if d.get("kind") == "ModelDeployment")
    broken = copy.deepcopy(deployment)
    broken["metadata"]["namespace"] = "default"
    broken["spec"] = {"not": "a model deployment"}
    crd = next(c for c in tidal_crds if c["spec"]["names"]["kind"] == "ModelDeployment")
    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    version = broken["apiVersion"].split("/")[1]
    with pytest.raises(ApiException) as invalid:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            group, version, "default", plural, broken)
    assert invalid.value.status == 422


def test_conditions_are_a_map_keyed_by_type(kube_client: client.ApiClient,
                                            tidal_crds: list[dict[str, Any]]) -> None:
    """``status.conditions`` is ``x-kubernetes-list-type: map`` keyed by ``type``: two conditions of
    one type are rejected, as the API server rejects a duplicate map key."""
    example = _documents([REPO_ROOT / "examples" / "modeldeployment-unified.yaml"])[0]
    custom = client.CustomObjectsApi(kube_client)
    custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", "default", "modeldeployments", example)
    name = example["metadata"]["name"]

    def condition(status: str) -> dict[str, Any]:
        return {"type": "Ready", "status": status, "reason": "R", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}

    custom.patch_namespaced_custom_object_status("tidal.dev", "v1alpha1", "default", "modeldeployments", name,
                                                 {"status": {"conditions": [condition("True")]}})
    with pytest.raises(ApiException) as info:
        custom.patch_namespaced_custom_object_status(
            "tidal.dev", "v1alpha1", "default", "modeldeployments", name,
            {"status": {"conditions": [condition("True"), condition("False")]}})
    assert info.value.status == 422 and "Duplicate value" in info.value.body
