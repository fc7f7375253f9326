"""FairSharePolicy allocation under real kopf against the test API server (tests/kubeapi)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from kubernetes import client

from tests.kubeapi import KubeApiServer
from tests.kubeapi.test_kubeapi_kopf import eventually
from tests.operator.test_handlers_accelerators import (  # noqa: F401 - fixtures
    GROUP,
    H100,
    OPERATOR_USER_AGENT,
    TICK_S,
    VERSION,
    accelerator_class,
    add_node,
    add_pod,
    calls_outside_rbac,
    clients,
    operator_registry,
    run_operator,
    status_of,
    tidal_api,
)
from tidal.operator import handlers_fairshare
from tidal.operator.kube import KubeClients
from tidal.operator.settings import OperatorSettings

NS = "team"


def model_deployment(name: str, tenant: str, min_replicas: int, gpus: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
            "engine": {"image": "vllm/vllm-openai:v0.11.0"},
            "slo": {"ttft": "500ms"},
            "pools": {
                "unified": {"minReplicas": min_replicas, "maxReplicas": 32, "gpusPerReplica": gpus}
            },
            "placement": {"acceleratorClasses": ["h100"]},
            "tenant": {"name": tenant},
        },
    }


def test_fair_share_policy_status_shows_grants_for_three_tenants(
    kube_api: KubeApiServer,
    tidal_api: client.ApiClient,
    clients: KubeClients,
) -> None:
    add_node(tidal_api, "gpu-a", H100, 8)
    add_node(tidal_api, "gpu-b", H100, 8)
    add_node(tidal_api, "cpu", {}, 0)
    add_pod(tidal_api, "busy", "gpu-a", 2)  # capacity is what the nodes have, not what is free
    client.CoreV1Api(tidal_api).create_namespace({"metadata": {"name": NS}})
    custom = client.CustomObjectsApi(tidal_api)
    custom.create_cluster_custom_object(
        GROUP, VERSION, "acceleratorclasses", accelerator_class("h100", H100)
    )
    for md in (
        model_deployment("alpha", "a", 1, gpus=2),
        model_deployment("bravo", "b", 8),
        model_deployment("charlie", "c", 2),
        model_deployment("stranger", "z", 30),
    ):
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "modeldeployments", md)
    # alpha's autoscaler wants 6 replicas x 2 GPUs (as its status records); the others are at minReplicas.
    custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        NS,
        "modeldeployments",
        "alpha",
        {"status": {"observedGeneration": 1, "pools": {"unified": {"desired": 6, "ready": 1}}}},
    )
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "fairsharepolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FairSharePolicy",
            "metadata": {"name": "gpus"},
            "spec": {
                "capacity": {"acceleratorClasses": ["h100"]},
                "rebalance": "immediate",
                "tenants": [
                    {"name": "a", "weight": 1},
                    {"name": "b", "weight": 1},
                    {"name": "c", "weight": 1, "guaranteedGpus": 2},
                ],
            },
        },
    )

    settings = OperatorSettings(interval_s=TICK_S)
    registry = operator_registry(kube_api, handlers_fairshare.register, settings, clients)
    with run_operator(registry) as runner:
        status = eventually(
            lambda: (
                status_of(tidal_api, "fairsharepolicies", "gpus").get("tenants")
                and status_of(tidal_api, "fairsharepolicies", "gpus")
            )
        )
        tenants = {t["name"]: (t["demandGpus"], t["grantGpus"]) for t in status["tenants"]}
        # 16 GPUs: c's guarantee (2) first, then a and b split the remaining 14 by equal weight.
        assert tenants == {"a": (12, 7), "b": (8, 7), "c": (2, 2)}
        assert status["capacityGpus"] == 16
        assert 0 < status["fairnessIndex"] <= 1
        limited = next(c for c in status["conditions"] if c["type"] == "CapacityLimited")
        assert limited["status"] == "True"

        # Demand drops: a later tick re-allocates.
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            NS,
            "modeldeployments",
            "alpha",
            {"status": {"pools": {"unified": {"desired": 1}}}},
        )

        def reallocated() -> bool:
            now = {
                t["name"]: t["grantGpus"]
                for t in status_of(tidal_api, "fairsharepolicies", "gpus")["tenants"]
            }
            return now == {"a": 2, "b": 8, "c": 2}

        eventually(reallocated)
    assert runner.exit_code == 0, runner.output[-2000:]
    assert "Traceback" not in runner.output and "tick failed" not in runner.output, runner.output[
        -2000:
    ]
    writes = {
        (r.verb, r.subresource)
        for r in kube_api.audit.records()
        if r.resource == "fairsharepolicies" and r.verb not in ("get", "list", "watch", "create")
    }
    assert writes == {("patch", "status")}
    assert calls_outside_rbac(kube_api) == []


def test_namespaced_operator_counts_only_watched_namespaces(
    kube_api: KubeApiServer,
    tidal_api: client.ApiClient,
    clients: KubeClients,
) -> None:
    """With --namespace, the operator may list ModelDeployments only there (docs/configuration.md)."""
    import logging
    from datetime import datetime

    core, custom = client.CoreV1Api(tidal_api), client.CustomObjectsApi(tidal_api)
    for ns in (NS, "elsewhere"):
        core.create_namespace({"metadata": {"name": ns}})
        custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, "modeldeployments", model_deployment("m", "a", 3)
        )
    custom.create_cluster_custom_object(
        GROUP,
        VERSION,
        "fairsharepolicies",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "FairSharePolicy",
            "metadata": {"name": "p"},
            "spec": {"capacity": {"gpus": 10}, "tenants": [{"name": "a"}]},
        },
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    log = logging.getLogger("test")
    scoped = OperatorSettings(namespaces=(NS,))
    assert handlers_fairshare.fairshare_tick(clients, scoped, now, log) == 1
    assert status_of(tidal_api, "fairsharepolicies", "p")["tenants"][0]["demandGpus"] == 3
    # Same inputs, same status: nothing is written.
    assert handlers_fairshare.fairshare_tick(clients, scoped, now, log) == 0
    assert handlers_fairshare.fairshare_tick(clients, OperatorSettings(), now, log) == 1
    assert status_of(tidal_api, "fairsharepolicies", "p")["tenants"][0]["demandGpus"] == 6
    namespaces = {
        r.namespace
        for r in kube_api.audit.records()
        if r.resource == "modeldeployments"
        and r.verb == "list"
        and r.user_agent == OPERATOR_USER_AGENT
    }
    assert namespaces == {NS, ""}
