"""Failure behaviour of the ModelDeployment runtime (docs/architecture.md, docs/troubleshooting.md):
invalid specs, missing AcceleratorClasses, and API errors injected into the test API server."""

from __future__ import annotations

import copy
import time
from typing import Any

from kubernetes import client

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment, tidal_crd_documents


def _open_spec_crd() -> dict[str, Any]:
    """The ModelDeployment CRD with its spec schema and CEL rules removed: an outdated or hand-edited
    CRD, the way an invalid object "slips through" the API server."""
    crd = copy.deepcopy(next(d for d in tidal_crd_documents() if d["spec"]["names"]["kind"] == "ModelDeployment"))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.pop("x-kubernetes-validations", None)
    return crd


def test_invalid_spec_gets_condition_and_event_and_the_operator_carries_on(harness: OperatorHarness) -> None:
    h = harness
    ext = client.ApiextensionsV1Api(h.api)
    ext.delete_custom_resource_definition("modeldeployments.tidal.dev")
    eventually(lambda: "modeldeployments.tidal.dev" not in
               [c.metadata.name for c in ext.list_custom_resource_definition().items])
    ext.create_custom_resource_definition(_open_spec_crd())
    with h.operator():
        bad = model_deployment("broken", min_replicas=5, max_replicas=2)
        bad["spec"]["pools"]["unified"]["minReplica"] = 1  # a typo the open schema lets through
        h.create_md(bad)

        def invalid() -> dict[str, Any]:
            cond = h.condition("broken", "Ready")
            assert cond and cond["status"] == "False" and cond["reason"] == "InvalidSpec"
            return cond

        cond = eventually(invalid)
        assert "spec.pools.unified.minReplica: unknown field" in cond["message"]
        assert cond["message"].endswith("(fix the spec and apply it again)")
        degraded = h.condition("broken", "Degraded")
        assert degraded and degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
        events = eventually(lambda: [e for e in h.events("broken") if e.reason == "InvalidSpec"])
        assert events[0].type == "Warning" and "minReplica" in events[0].message
        assert not h.apps.list_namespaced_deployment(OPERATOR_NS).items, "nothing is rendered from an invalid spec"

        # The operator keeps going: the next (valid) object is served.
        h.create_md(model_deployment("fine"))
        eventually(lambda: h.apps.read_namespaced_deployment("fine-unified-gpu-a", OPERATOR_NS))
        time.sleep(1.5)  # a few ticks: no retry loop on the invalid one

        # Fixing the spec clears the condition.
        h.patch_md("broken", {"spec": {"pools": {"unified": {"minReplicas": 1, "maxReplicas": 2, "minReplica": None}}}})
        eventually(lambda: h.apps.read_namespaced_deployment("broken-unified-gpu-a", OPERATOR_NS))
        eventually(lambda: h.condition("broken", "Degraded")["status"] == "False")
    # One reconcile per spec version, not a crash loop: status patches of "broken" stay few.
    patches = [r for r in h.kube_api.audit.records()
               if r.resource == "modeldeployments" and r.name == "broken" and r.verb == "patch"]
    assert len(patches) < 20, f"{len(patches)} patches to an invalid object look like a retry loop"
    warnings = [e for e in h.events("broken") if e.reason == "InvalidSpec"]
    assert len(warnings) == 1, [e.message for e in warnings]


def test_missing_accelerator_class_is_capacity_limited(harness: OperatorHarness) -> None:
    h = harness
    with h.operator():
        h.create_md(model_deployment("lost", classes=("h200-nvl",)))

        def limited() -> dict[str, Any]:
            cond = h.condition("lost", "CapacityLimited")
            assert cond and cond["status"] == "True"
            return cond

        cond = eventually(limited)
        assert cond["reason"] == "AcceleratorClassMissing"
        assert "'h200-nvl'" in cond["message"]
        assert not h.apps.list_namespaced_deployment(OPERATOR_NS).items
        # Services and the KV policy do not depend on the class.
        eventually(lambda: h.core.read_namespaced_service("lost-unified", OPERATOR_NS))

        # The class appears: the next tick creates the Deployment and clears the condition.
        h.custom.create_cluster_custom_object("tidal.dev", "v1alpha1", "acceleratorclasses", {
            "apiVersion": "tidal.dev/v1alpha1", "kind": "AcceleratorClass", "metadata": {"name": "h200-nvl"},
            "spec": {"memory": "141Gi", "peakTflops": 989, "memoryBandwidthGbps": 4800, "hourlyCost": 6}})
        dep = eventually(lambda: h.apps.read_namespaced_deployment("lost-unified-h200-nvl", OPERATOR_NS))
        assert dep.spec.replicas == 1
        eventually(lambda: h.condition("lost", "CapacityLimited")["status"] == "False")


def test_injected_api_errors_are_retried_and_nothing_is_lost(harness: OperatorHarness) -> None:
    h = harness
    faults = h.kube_api.faults
    # Reconcile: the first two applies of a Deployment fail (500 then 409), a Service apply times out.
    faults.inject(verb="patch", resource="deployments", status=500, times=1)
    faults.inject(verb="patch", resource="deployments", status=409, times=1)
    faults.inject(verb="patch", resource="services", delay_s=2.0, times=1)
    # kopf's own writes to the object (annotations, status) fail twice with 500.
    faults.inject(verb="patch", resource="modeldeployments", status=500, times=2)
    with h.operator(api_timeout_s=1.0, interval_s=30.0, metrics_window_s=30.0):
        h.create_md(model_deployment("sturdy", min_replicas=3))
        dep = eventually(lambda: h.apps.read_namespaced_deployment("sturdy-unified-gpu-a", OPERATOR_NS),
                         timeout_s=20)
        assert dep.spec.replicas == 3
        eventually(lambda: h.core.read_namespaced_service("sturdy-unified", OPERATOR_NS), timeout_s=20)
        eventually(lambda: h.core.read_namespaced_config_map("sturdy-kv-policy", OPERATOR_NS), timeout_s=20)
        eventually(lambda: (h.read_md("sturdy").get("status") or {}).get("observedGeneration") == 1, timeout_s=20)
        assert faults.pending() == 0
    codes = [(r.verb, r.resource, r.code) for r in h.kube_api.audit.records() if r.code >= 400 and r.code != 404]
    assert ("patch", "deployments", 500) in codes and ("patch", "deployments", 409) in codes
    assert sum(1 for c in codes if c == ("patch", "modeldeployments", 500)) == 2
    # Exactly one of each child despite the retries.
    assert [d.metadata.name for d in h.apps.list_namespaced_deployment(OPERATOR_NS).items] == [
        "sturdy-unified-gpu-a"]


def test_a_failed_scale_apply_is_degraded_then_recovers(harness: OperatorHarness) -> None:
    h = harness
    with h.operator():
        h.create_md(model_deployment("stuck", min_replicas=1))
        eventually(lambda: h.apps.read_namespaced_deployment("stuck-unified-gpu-a", OPERATOR_NS).spec.replicas == 1)
        eventually(lambda: (h.condition("stuck", "Degraded") or {}).get("status") == "False")
        # Someone else's admission policy refuses tidal's writes for a while (403 is not retried by kopf).
        h.kube_api.faults.inject(verb="patch", resource="deployments", status=403, times=3)
        h.patch_md("stuck", {"spec": {"replicas": 2}})

        def degraded() -> dict[str, Any]:
            cond = h.condition("stuck", "Degraded")
            assert cond and cond["status"] == "True", cond
            return cond

        cond = eventually(degraded)
        assert "403 Forbidden" in cond["message"]  # from the reconcile of the spec change or the tick
        # The next ticks retry; once the API accepts, the change lands, is announced once, and clears.
        eventually(lambda: h.apps.read_namespaced_deployment("stuck-unified-gpu-a", OPERATOR_NS).spec.replicas == 2)
        eventually(lambda: h.condition("stuck", "Degraded")["status"] == "False")
        assert h.kube_api.faults.pending() == 0
        scaled = eventually(lambda: [e for e in h.events("stuck") if e.reason == "ScaledUp"])
        assert len(scaled) == 1 and "1 -> 2 replicas" in scaled[0].message
