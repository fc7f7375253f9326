"""FairSharePolicy and AcceleratorClass specs tidal cannot act on (issue 9, items 14 and 15): every
error with its field path in the condition, one Warning Event per distinct problem, and guarantees
the measured capacity cannot hold reported by ``GuaranteesMet=False``.

The loops' ticks are called directly (synchronously) against the test API server; the CRDs are
installed with an open ``spec`` to stand in for an outdated CRD that let an invalid spec through."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.operator.test_handlers_accelerators import (  # noqa: F401 - fixtures
    GROUP,
    H100,
    REPO_ROOT,
    VERSION,
    accelerator_class,
    add_node,
    clients,
    status_of,
)
from tidal.operator import handlers_accelerators, handlers_fairshare
from tidal.operator.kube import KubeClients
from tidal.operator.settings import OperatorSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LOG = logging.getLogger("test")
OPEN = {"fairsharepolicies", "acceleratorclasses"}


@pytest.fixture
def loose_api(kube_client: client.ApiClient) -> client.ApiClient:
    extensions = client.ApiextensionsV1Api(kube_client)
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            if crd["spec"]["names"]["plural"] in OPEN:
                for version in crd["spec"]["versions"]:
                    schema = version["schema"]["openAPIV3Schema"]
                    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    schema.pop("x-kubernetes-validations", None)
            extensions.create_custom_resource_definition(crd)
    return kube_client


def _condition(api: client.ApiClient, plural: str, name: str, kind: str) -> dict[str, Any]:
    return next(c for c in status_of(api, plural, name).get("conditions", []) if c["type"] == kind)


def _warnings(api: client.ApiClient, name: str) -> list[Any]:
    events = client.CoreV1Api(api).list_event_for_all_namespaces(field_selector=f"involvedObject.name={name}")
    return [e for e in events.items if e.reason == "InvalidSpec"]


def test_invalid_fair_share_policy_lists_every_error_and_warns_once(
    loose_api: client.ApiClient, clients: KubeClients
) -> None:
    client.CustomObjectsApi(loose_api).create_cluster_custom_object(GROUP, VERSION, "fairsharepolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "FairSharePolicy", "metadata": {"name": "p"},
        "spec": {"capacity": {}, "tenants": [{"name": "a", "weight": 0}, {"name": "b", "weight": "x"}]}})
    settings = OperatorSettings()
    assert handlers_fairshare.fairshare_tick(clients, settings, NOW, LOG) == 1
    cond = _condition(loose_api, "fairsharepolicies", "p", "Degraded")
    assert (cond["status"], cond["reason"]) == ("True", "InvalidSpec")
    for path in ("spec.capacity", "spec.tenants[0].weight", "spec.tenants[1].weight"):
        assert f"{path}: " in cond["message"], cond["message"]
    (warning,) = _warnings(loose_api, "p")
    assert warning.type == "Warning" and warning.message == cond["message"]
    assert warning.involved_object.kind == "FairSharePolicy" and warning.metadata.namespace == clients.namespace
    # The next tick sees the same problem: no new status write, no second Event.
    assert handlers_fairshare.fairshare_tick(clients, settings, NOW, LOG) == 0
    assert len(_warnings(loose_api, "p")) == 1


def test_invalid_accelerator_class_lists_every_error_and_warns_once(
    loose_api: client.ApiClient, clients: KubeClients
) -> None:
    body = accelerator_class("h100", H100)
    body["spec"].update({"memory": "80GB", "hourlyCost": -1})
    client.CustomObjectsApi(loose_api).create_cluster_custom_object(GROUP, VERSION, "acceleratorclasses", body)
    settings = OperatorSettings()
    assert handlers_accelerators.inventory_tick(clients, settings, NOW, LOG) == 1
    cond = _condition(loose_api, "acceleratorclasses", "h100", "Available")
    assert cond["reason"] == "InvalidSpec"
    assert "spec.memory: " in cond["message"] and "spec.hourlyCost: " in cond["message"], cond["message"]
    (warning,) = _warnings(loose_api, "h100")
    assert warning.type == "Warning" and "spec.memory" in warning.message
    assert handlers_accelerators.inventory_tick(clients, settings, NOW, LOG) == 0
    assert len(_warnings(loose_api, "h100")) == 1


def test_guarantees_above_the_measured_capacity_are_reported(
    loose_api: client.ApiClient, clients: KubeClients
) -> None:
    """The CRD rejects guarantees above a fixed capacity.gpus; a capacity measured from nodes can
    still fall below them. GuaranteesMet says so, and clears when capacity returns."""
    custom = client.CustomObjectsApi(loose_api)
    custom.create_cluster_custom_object(GROUP, VERSION, "acceleratorclasses", accelerator_class("h100", H100))
    add_node(loose_api, "gpu-a", H100, 8)
    custom.create_cluster_custom_object(GROUP, VERSION, "fairsharepolicies", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "FairSharePolicy", "metadata": {"name": "g"},
        "spec": {"capacity": {"acceleratorClasses": ["h100"]},
                 "tenants": [{"name": "chat", "guaranteedGpus": 6}, {"name": "batch", "guaranteedGpus": 6}]}})
    settings = OperatorSettings()
    handlers_fairshare.fairshare_tick(clients, settings, NOW, LOG)
    cond = _condition(loose_api, "fairsharepolicies", "g", "GuaranteesMet")
    assert (cond["status"], cond["reason"]) == ("False", "GuaranteesExceedCapacity"), cond
    assert "guarantees total 12 GPUs (chat 6, batch 6) but capacity is 8" in cond["message"], cond["message"]
    add_node(loose_api, "gpu-b", H100, 8)
    handlers_fairshare.fairshare_tick(clients, settings, NOW, LOG)
    cond = _condition(loose_api, "fairsharepolicies", "g", "GuaranteesMet")
    assert (cond["status"], cond["reason"]) == ("True", "WithinCapacity"), cond
