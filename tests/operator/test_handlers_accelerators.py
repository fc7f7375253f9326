"""AcceleratorClass inventory under real kopf against the test API server (tests/kubeapi)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client

from tests.kubeapi import KubeApiServer
from tests.kubeapi.test_kubeapi_kopf import eventually
from tidal.operator import handlers_accelerators
from tidal.operator.kube import KubeClients
from tidal.operator.settings import OperatorSettings

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
GROUP, VERSION = "tidal.dev", "v1alpha1"
TICK_S = 1.0
"""The smallest interval the operator accepts (settings.MIN_INTERVAL_S): keeps the test short."""
H100 = {"nvidia.com/gpu.product": "H100"}


@pytest.fixture
def tidal_api(kube_client: client.ApiClient) -> client.ApiClient:
    """The test server with tidal's generated CRDs installed."""
    extensions = client.ApiextensionsV1Api(kube_client)
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd:
                extensions.create_custom_resource_definition(crd)
    return kube_client


OPERATOR_USER_AGENT = "tidal-operator-under-test"
"""Tells the operator's own API calls apart from the test's in the audit log."""


@pytest.fixture
def clients(kubeconfig: pathlib.Path) -> Iterator[KubeClients]:
    kube = KubeClients.from_config(kubeconfig)
    kube.api.user_agent = OPERATOR_USER_AGENT
    try:
        yield kube
    finally:
        kube.close()


def calls_outside_rbac(server: KubeApiServer) -> list[Any]:
    """The operator's recorded API calls (kopf's and tidal's client) that the chart's cluster-wide
    RBAC (docs/configuration.md#permissions) would refuse."""
    from tests.charts.chart_support import render
    from tests.charts.rbac_rules import allows, grants

    granted = grants(render(), "tidal", "tidal-system")
    refused = []
    ours = 0
    for record in server.audit.records():
        if not record.resource or not (
            record.user_agent.startswith("kopf/") or record.user_agent == OPERATOR_USER_AGENT
        ):
            continue
        ours += 1
        resource = (
            f"{record.resource}/{record.subresource}" if record.subresource else record.resource
        )
        if not allows(granted, record.verb, record.group, resource, record.namespace or None):
            refused.append(record)
    assert ours, "no API call of the operator was recorded: are the user agents right?"
    return refused


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = 30
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    return settings


def operator_registry(
    server: KubeApiServer,
    register: Any,
    settings: OperatorSettings,
    clients: KubeClients,
    **kwargs: Any,
) -> kopf.OperatorRegistry:
    """A registry with a login to the test server plus the handlers under test (as tidal run builds it)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server.url, insecure=True, default_namespace="default")

    register(registry, settings, clients, **kwargs)
    return registry


def run_operator(registry: kopf.OperatorRegistry) -> KopfRunner:
    return KopfRunner(
        ["run", "--all-namespaces", "--standalone"],
        registry=registry,
        settings=kopf_settings(),
        timeout=30,
    )


def add_node(api: client.ApiClient, name: str, labels: dict[str, str], gpus: int) -> None:
    core = client.CoreV1Api(api)
    core.create_node({"metadata": {"name": name, "labels": labels}})
    core.patch_node_status(
        name, {"status": {"allocatable": {"cpu": "64", "nvidia.com/gpu": str(gpus)}}}
    )


def add_pod(
    api: client.ApiClient, name: str, node_name: str, gpus: int, namespace: str = "default"
) -> None:
    client.CoreV1Api(api).create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "nodeName": node_name,
                "containers": [
                    {
                        "name": "c",
                        "image": "x",
                        "resources": {
                            "requests": {"nvidia.com/gpu": str(gpus)},
                            "limits": {"nvidia.com/gpu": str(gpus)},
                        },
                    }
                ],
            },
        },
    )


def accelerator_class(name: str, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AcceleratorClass",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": selector,
            "memory": "80Gi",
            "peakTflops": 989,
            "memoryBandwidthGbps": 3350,
            "hourlyCost": 4.0,
        },
    }


def status_of(api: client.ApiClient, plural: str, name: str) -> dict[str, Any]:
    return (
        client.CustomObjectsApi(api)
        .get_cluster_custom_object(GROUP, VERSION, plural, name)
        .get("status")
        or {}
    )


def test_accelerator_class_status_shows_inventory(
    kube_api: KubeApiServer, tidal_api: client.ApiClient, clients: KubeClients
) -> None:
    add_node(tidal_api, "gpu-a", H100, 8)
    add_node(tidal_api, "gpu-b", H100, 8)
    add_node(tidal_api, "gpu-c", {"nvidia.com/gpu.product": "A100"}, 4)
    add_pod(tidal_api, "p1", "gpu-a", 3)
    add_pod(tidal_api, "p2", "gpu-c", 4)
    custom = client.CustomObjectsApi(tidal_api)
    custom.create_cluster_custom_object(
        GROUP, VERSION, "acceleratorclasses", accelerator_class("h100", H100)
    )
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "acceleratorclasses",
        accelerator_class("b200", {"nvidia.com/gpu.product": "B200"}),
    )
    settings = OperatorSettings(interval_s=TICK_S)
    registry = operator_registry(kube_api, handlers_accelerators.register, settings, clients)
    # The first node listing fails as an API server under load would: that tick is logged and skipped.
    kube_api.faults.inject(verb="list", resource="nodes", status=500, times=1)
    with run_operator(registry) as runner:

        def counted() -> dict[str, Any]:
            status = status_of(tidal_api, "acceleratorclasses", "h100")
            assert status.get("used") == 3
            return status

        status = eventually(counted)
        assert {k: status[k] for k in ("nodes", "allocatable", "used", "free")} == {
            "nodes": 2,
            "allocatable": 16,
            "used": 3,
            "free": 13,
        }
        assert (
            status["conditions"][0]["type"] == "Available"
            and status["conditions"][0]["status"] == "True"
        )
        missing = eventually(
            lambda: status_of(tidal_api, "acceleratorclasses", "b200").get("conditions")
        )
        assert (missing[0]["status"], missing[0]["reason"]) == ("False", "NoMatchingNodes")

        # A new pod is counted on a later tick.
        add_pod(tidal_api, "p3", "gpu-b", 5)
        eventually(lambda: status_of(tidal_api, "acceleratorclasses", "h100").get("free") == 8)
    assert runner.exit_code == 0, runner.output[-2000:]
    assert kube_api.faults.pending() == 0
    assert runner.output.count("accelerator-inventory tick failed") == 1, runner.output[-2000:]
    assert "Traceback" not in runner.output, runner.output[-2000:]
    # Least privilege: besides the test's own creates, only /status was written (no finalizers).
    writes = {
        (r.verb, r.subresource)
        for r in kube_api.audit.records()
        if r.resource == "acceleratorclasses" and r.verb not in ("get", "list", "watch", "create")
    }
    assert writes == {("patch", "status")}
    assert any(r.user_agent == OPERATOR_USER_AGENT for r in kube_api.audit.records())
    assert calls_outside_rbac(kube_api) == []
