"""A FairSharePolicy's grant caps ModelDeployments under the real operator (both loops running).

The FairSharePolicy divides its tenant's grant between the tenant's workloads (higher
spec.tenant.priority first) and lists each share in status.workloads; the ModelDeployment tick reads
its share and the decision core cuts its replicas to fit, with CapacityLimited=FairShareCapped. The
workload's demand stays what it asked before the cap (status.demandGpus), so a larger grant gives
the replicas back.
"""

from __future__ import annotations

from typing import Any

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment

POLICY = "pool"


def _policy(gpus: int) -> dict[str, Any]:
    return {"apiVersion": "tidal.dev/v1alpha1", "kind": "FairSharePolicy", "metadata": {"name": POLICY},
            "spec": {"capacity": {"gpus": gpus}, "tenants": [{"name": "team", "weight": 1}]}}


def _replicas(h: OperatorHarness, name: str) -> int | None:
    try:
        return h.apps.read_namespaced_deployment(f"{name}-unified-gpu-a", OPERATOR_NS).spec.replicas
    except Exception:  # noqa: BLE001 - not created yet
        return None


def _workloads(h: OperatorHarness) -> dict[str, int]:
    status = h.custom.get_cluster_custom_object("tidal.dev", "v1alpha1", "fairsharepolicies", POLICY).get("status")
    return {w["name"]: w["grantGpus"] for w in (status or {}).get("workloads") or []}


def test_the_grant_caps_replicas_by_priority_and_a_larger_grant_gives_them_back(harness: OperatorHarness) -> None:
    h = harness
    h.custom.create_cluster_custom_object("tidal.dev", "v1alpha1", "fairsharepolicies", _policy(3))
    with h.operator(include_others=True):
        h.create_md(model_deployment("big", replicas=5, tenant={"name": "team"}))
        h.create_md(model_deployment("vip", tenant={"name": "team", "priority": 10},
                                     autoscaling={"policy": "static", "predictor": "none"}))
        # vip (priority 10) is granted its 1 GPU first; big gets the other 2 of the 3, not the 5 it asks
        eventually(lambda: _workloads(h) == {"big": 2, "vip": 1})
        eventually(lambda: _replicas(h, "big") == 2)
        # the grant settles over a few ticks of both loops (vip's demand appears after its first tick)
        cond = eventually(lambda: (c := h.condition("big", "CapacityLimited")) and "grants 2" in c["message"] and c)
        assert cond["status"] == "True" and cond["reason"] == "FairShareCapped", cond
        assert h.read_md("big")["status"]["demandGpus"] == 5, "the demand is what it asked, not what it got"
        assert _replicas(h, "vip") == 1

        h.custom.patch_cluster_custom_object("tidal.dev", "v1alpha1", "fairsharepolicies", POLICY,
                                             {"spec": {"capacity": {"gpus": 10}}})
        eventually(lambda: _workloads(h) == {"big": 5, "vip": 1})
        eventually(lambda: _replicas(h, "big") == 5)
        eventually(lambda: (c := h.condition("big", "CapacityLimited")) and c["status"] == "False")
