"""Target mode: a pool with ``scaleTargetRef`` scales a workload tidal did not create, through its
``/scale`` subresource, reading the metrics of the pods its ``/scale`` selector finds; a missing or
unscalable target is a clear condition, never a crash or a silent hold.

The target here is a custom resource of another serving stack whose CRD declares
``subresources.scale`` (as LeaderWorkerSet and the serving stacks' role CRDs do), served by the test
API server (tests/kubeapi), with a real Prometheus scraping a fake engine exporter that carries no
tidal labels, only the pod's name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment
from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import VLLM_V1, EngineExporter, EngineGauges

GROUP, VERSION, PLURAL, KIND = "serving.example.com", "v1", "inferenceroles", "InferenceRole"
ROLE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP, "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "inferencerole", "kind": KIND},
        "versions": [{
            "name": VERSION, "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {
                "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector"}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0}}},
                "status": {"type": "object", "properties": {
                    "replicas": {"type": "integer"}, "selector": {"type": "string"}}},
            }}},
        }],
    },
}
SELECTOR = "app=chat,role=decode"
TARGET = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": "chat-decode"}


def _install_role(h: OperatorHarness, replicas: int = 1) -> None:
    client.ApiextensionsV1Api(h.api).create_custom_resource_definition(ROLE_CRD)
    h.custom.create_namespaced_custom_object(GROUP, VERSION, OPERATOR_NS, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "chat-decode"},
        "spec": {"replicas": replicas}})
    # The other stack's controller reports its pods' selector (what /scale then shows).
    h.custom.patch_namespaced_custom_object_status(GROUP, VERSION, OPERATOR_NS, PLURAL, "chat-decode", {
        "status": {"replicas": replicas, "selector": SELECTOR}})


def _role_replicas(h: OperatorHarness) -> int:
    return h.custom.get_namespaced_custom_object(GROUP, VERSION, OPERATOR_NS, PLURAL, "chat-decode")["spec"]["replicas"]


def _targeted(name: str, target: dict[str, Any], **spec: Any) -> dict[str, Any]:
    body = model_deployment(name, min_replicas=1, max_replicas=6, **spec)
    body["spec"]["pools"]["unified"]["scaleTargetRef"] = target
    return body


@pytest.mark.prometheus
def test_scales_another_stacks_custom_resource_through_scale_on_its_pods_metrics(
        harness: OperatorHarness, tmp_path: Path) -> None:
    h = harness
    _install_role(h)
    h.ready_pod("chat-decode-0", {"app": "chat", "role": "decode"})
    h.ready_pod("chat-prefill-0", {"app": "chat", "role": "prefill"})  # not the target's: ignored
    busy, other = EngineExporter(VLLM_V1, exposition="text").start(), EngineExporter(VLLM_V1, exposition="text").start()
    # 40 running + 10 waiting on the target's one pod and no completed requests: the hpa policy's 16 in
    # flight per pod -> 4 (tidal's SLO planner sizes on the request rate, 0 here; tests/core covers it).
    busy.set_gauges(EngineGauges(40, 10, 0.8))
    other.set_gauges(EngineGauges(400, 100, 0.9))  # would ask for the maximum if it were counted
    targets = [ScrapeTarget(busy.address, {"namespace": OPERATOR_NS, "pod": "chat-decode-0"}),
               ScrapeTarget(other.address, {"namespace": OPERATOR_NS, "pod": "chat-prefill-0"})]
    prometheus = PrometheusServer(targets, tmp_path / "prom", binary=require_prometheus_binary(),
                                  scrape_interval_s=0.5).start(wait_for_targets=True)
    try:
        with h.operator(prometheus_url=prometheus.url):
            h.create_md(_targeted("chat", TARGET, autoscaling={"policy": "hpa", "predictor": "holt-winters"}))
            # the HPA recomputes once per 15 s sync period (of the operator's clock), not every tick
            eventually(lambda: _role_replicas(h) == 4, timeout_s=60.0)
            cond = eventually(lambda: (c := h.condition("chat", "MetricsAvailable")) and c["status"] == "True" and c)
            assert cond["reason"] == "MetricsRead"
            status = eventually(lambda: (s := h.read_md("chat")["status"])["pools"]["unified"]["desired"] == 4 and s)
            assert status["lastDecision"]["policy"] == "hpa", status["lastDecision"]
            # tidal rendered no engine pods for it: only the KV-policy ConfigMap is its own.
            assert h.apps.list_namespaced_deployment(OPERATOR_NS).items == []
            assert [s.metadata.name for s in h.core.list_namespaced_service(OPERATOR_NS).items] == []
    finally:
        prometheus.stop()
        busy.stop()
        other.stop()


def test_missing_and_unscalable_targets_are_clear_conditions(harness: OperatorHarness) -> None:
    h = harness
    client.ApiextensionsV1Api(h.api).create_custom_resource_definition(ROLE_CRD)
    with h.operator():
        h.create_md(_targeted("ghost", {**TARGET, "name": "nope"}))
        ready = eventually(lambda: (c := h.condition("ghost", "Ready")) and c["reason"] == "ScaleTargetNotFound" and c)
        assert ready["status"] == "False"
        assert "InferenceRole nope" in ready["message"] and "does not exist in namespace team-a" in ready["message"]
        assert eventually(lambda: (c := h.condition("ghost", "Degraded")) and c["status"] == "True")
        warnings = eventually(lambda: [e for e in h.events("ghost") if e.reason == "ScaleTargetNotFound"])
        assert [e.type for e in warnings] == ["Warning"]

        # A kind without /scale (a ConfigMap) cannot be scaled: the message says what would work.
        h.patch_md("ghost", {"spec": {"pools": {"unified": {"scaleTargetRef": {
            "apiVersion": "v1", "kind": "ConfigMap", "name": "ghost-kv-policy"}}}}})
        ready = eventually(lambda: (c := h.condition("ghost", "Ready")) and c["reason"] == "ScaleTargetNotScalable" and c)
        assert "has no /scale subresource" in ready["message"] and "subresources.scale" in ready["message"]

        # A kind the API server does not serve.
        h.patch_md("ghost", {"spec": {"pools": {"unified": {"scaleTargetRef": {
            "apiVersion": "example.invalid/v1", "kind": "Nothing", "name": "x"}}}}})
        ready = eventually(lambda: (c := h.condition("ghost", "Ready")) and c["reason"] == "ScaleTargetNotFound"
                           and "serves no kind Nothing" in c["message"] and c)
        # A problem persisting over many ticks is one Warning Event, not one per tick.
        assert len([e for e in h.events("ghost") if e.reason == "ScaleTargetNotScalable"]) == 1

        # A scalable target whose controller has not reported a selector yet: its pods cannot be found.
        h.custom.create_namespaced_custom_object(GROUP, VERSION, OPERATOR_NS, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": "chat-decode"},
            "spec": {"replicas": 2}})
        h.patch_md("ghost", {"spec": {"pools": {"unified": {"scaleTargetRef": TARGET}}}})
        ready = eventually(lambda: (c := h.condition("ghost", "Ready")) and c["reason"] == "ScaleTargetHasNoSelector" and c)
        assert "labelSelectorPath" in ready["message"]
        assert _role_replicas(h) == 2  # never scaled blind


def test_a_deployment_target_is_observed_through_its_scale_selector(harness: OperatorHarness) -> None:
    """A built-in kind: the Deployment's /scale reports its spec.selector; its Ready pods are the pool's
    ready replicas, without any tidal label on them (no Prometheus here, so replicas are held)."""
    h = harness
    h.apps.create_namespaced_deployment(OPERATOR_NS, {
        "metadata": {"name": "their-vllm"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "their-vllm"}},
                 "template": {"metadata": {"labels": {"app": "their-vllm"}},
                              "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.33.0"}]}}}})
    h.ready_pod("their-vllm-0", {"app": "their-vllm"})
    h.ready_pod("their-vllm-1", {"app": "their-vllm"})
    h.ready_pod("someone-else-0", {"app": "other"})
    with h.operator():
        h.create_md(_targeted("theirs", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "their-vllm"}))
        eventually(lambda: ((h.read_md("theirs").get("status") or {}).get("pools") or {})
                   .get("unified", {}).get("ready") == 2)
        # missing metrics never scale: the target keeps its 2
        eventually(lambda: (c := h.condition("theirs", "MetricsAvailable")) and c["reason"] == "NoPrometheus")
        assert h.apps.read_namespaced_deployment("their-vllm", OPERATOR_NS).spec.replicas == 2
