"""End to end on a real cluster: apply tidal's CRDs and examples, run the operator in-process, see the
children appear, scale through /scale, delete and see them garbage-collected.

Skipped unless KUBECONFIG names a reachable cluster; run with ``pytest -m e2e tests/e2e`` (docs/operator.md).
"""

from __future__ import annotations

import pathlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic

from tests.operator.conftest import eventually as poll

pytestmark = pytest.mark.e2e

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_S = 60.0
"""A real API server and controller manager: children appear in seconds, GC within a minute."""


def _docs(path: pathlib.Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def eventually(check: Callable[[], Any]) -> Any:
    """The operator tests' poller, at a real cluster's pace."""
    return poll(check, timeout_s=TIMEOUT_S, interval_s=0.5)


@pytest.fixture
def namespace(cluster_api: Any) -> Iterator[str]:
    name = f"tidal-e2e-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster_api)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


def test_operator_on_a_real_cluster(cluster_api: Any, cluster_kubeconfig: str, namespace: str) -> None:
    from tidal.operator.app import run_operator
    from tidal.operator.settings import OperatorSettings

    resources = dynamic.DynamicClient(cluster_api).resources
    for crd in (d for p in sorted((REPO_ROOT / "crds").glob("*.yaml")) for d in _docs(p)):
        resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition").server_side_apply(
            body=crd, name=crd["metadata"]["name"], field_manager="tidal-e2e", force_conflicts=True)
    ext = client.ApiextensionsV1Api(cluster_api)
    eventually(lambda: all(any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or []))
                           for crd in ext.list_custom_resource_definition().items
                           if crd.spec.group == "tidal.dev"))
    for acc in _docs(REPO_ROOT / "examples" / "accelerator-classes.yaml"):
        resources.get(api_version=acc["apiVersion"], kind=acc["kind"]).server_side_apply(
            body=acc, name=acc["metadata"]["name"], field_manager="tidal-e2e", force_conflicts=True)
    (md,) = _docs(REPO_ROOT / "examples" / "modeldeployment-unified.yaml")
    md["metadata"]["namespace"] = namespace
    name = md["metadata"]["name"]

    settings = OperatorSettings(namespaces=(namespace,), interval_s=2.0, metrics_window_s=60.0, health_port=0,
                                metrics_port=0, retry_backoff_s=2.0, state_save_interval_s=0.0)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_operator, kwargs={
        "settings": settings, "kubeconfig": cluster_kubeconfig, "stop_flag": stop, "ready_flag": ready,
        "include_others": False}, daemon=True)
    thread.start()
    custom = client.CustomObjectsApi(cluster_api)
    apps = client.AppsV1Api(cluster_api)
    try:
        assert ready.wait(TIMEOUT_S), "operator did not start"
        custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", namespace, "modeldeployments", md)
        # h100-80gb costs more than a100-80gb: minReplicas land on the cheaper class.
        dep = eventually(lambda: apps.read_namespaced_deployment(f"{name}-unified-a100-80gb", namespace))
        assert dep.spec.replicas == 1
        assert apps.read_namespaced_deployment(f"{name}-unified-h100-80gb", namespace).spec.replicas == 0
        eventually(lambda: client.CoreV1Api(cluster_api).read_namespaced_service(f"{name}-unified", namespace))

        def conditions() -> dict[str, str]:
            st = custom.get_namespaced_custom_object("tidal.dev", "v1alpha1", namespace, "modeldeployments",
                                                     name).get("status") or {}
            found = {c["type"]: c["status"] for c in st.get("conditions") or []}
            assert found.get("MetricsAvailable") == "False", found
            return found

        eventually(conditions)
        # kubectl scale through the /scale subresource: tidal holds the manual count.
        custom.patch_namespaced_custom_object_scale("tidal.dev", "v1alpha1", namespace, "modeldeployments", name,
                                                    {"spec": {"replicas": 2}})
        eventually(lambda: apps.read_namespaced_deployment(f"{name}-unified-a100-80gb", namespace).spec.replicas == 2)
        custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", namespace, "modeldeployments", name)
        eventually(lambda: not apps.list_namespaced_deployment(namespace).items)
    finally:
        stop.set()
        thread.join(TIMEOUT_S)
