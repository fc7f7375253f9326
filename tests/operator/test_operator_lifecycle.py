"""The operator's ModelDeployment lifecycle: real kopf + kubernetes client + the test API server."""

from __future__ import annotations

from typing import Any

from kubernetes.client.rest import ApiException

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment


def _deployment(h: OperatorHarness, name: str) -> Any:
    return h.apps.read_namespaced_deployment(name, OPERATOR_NS)


def test_create_update_delete_children(harness: OperatorHarness) -> None:
    h = harness
    with h.operator():
        md = h.create_md(model_deployment("llama", classes=("gpu-b", "gpu-a"), min_replicas=2))
        uid = md["metadata"]["uid"]

        # Children: a Deployment per (pool, class), one Service, the KV-policy ConfigMap.
        cheap = eventually(lambda: _deployment(h, "llama-unified-gpu-a"))
        dear = eventually(lambda: _deployment(h, "llama-unified-gpu-b"))
        assert cheap.spec.replicas == 2, "minReplicas go to the cheapest allowed class"
        assert dear.spec.replicas == 0
        container = cheap.spec.template.spec.containers[0]
        assert container.image == "vllm/vllm-openai:v0.11.0"
        assert container.resources.limits == {"nvidia.com/gpu": "1"}
        terms = cheap.spec.template.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
        assert terms.node_selector_terms[0].match_expressions[0].values == ["GPU-A"]
        assert [(r.kind, r.uid, r.controller) for r in cheap.metadata.owner_references] == [
            ("ModelDeployment", uid, True)]
        managers = {m.manager for m in cheap.metadata.managed_fields}
        assert "tidal" in managers
        service = eventually(lambda: h.core.read_namespaced_service("llama-unified", OPERATOR_NS))
        assert service.spec.selector == {"tidal.dev/deployment": "llama", "tidal.dev/pool": "unified"}
        kv = eventually(lambda: h.core.read_namespaced_config_map("llama-kv-policy", OPERATOR_NS))
        assert kv.data["mode"] == "auto"

        # Status: observedGeneration, conditions in the documented set.
        def reconciled() -> dict[str, Any]:
            st = h.read_md("llama").get("status") or {}
            assert st.get("observedGeneration") == md["metadata"]["generation"]
            assert {c["type"] for c in st["conditions"]} >= {"Ready", "CapacityLimited", "Degraded",
                                                              "MetricsAvailable"}
            return st

        eventually(reconciled)
        # Without Prometheus: MetricsAvailable=False with the reason, replicas held at 2.
        cond = eventually(lambda: (c := h.condition("llama", "MetricsAvailable")) and c["status"] == "False" and c)
        assert cond["reason"] == "NoPrometheus"
        # The forecaster runs even without metrics (no observations: its prior), bounds ordered.
        forecast = eventually(lambda: h.read_md("llama")["status"].get("forecast"))
        assert forecast["lowerRps"] <= forecast["rps"] <= forecast["upperRps"]
        assert forecast["horizonSeconds"] >= 1.0
        assert h.read_md("llama")["status"]["predictedColdStartSeconds"] > 0
        assert _deployment(h, "llama-unified-gpu-a").spec.replicas == 2

        # A spec change rolls out to the children, replicas untouched.
        h.patch_md("llama", {"spec": {"engine": {"image": "vllm/vllm-openai:v0.11.1"}}})
        eventually(lambda: _deployment(h, "llama-unified-gpu-a").spec.template.spec.containers[0].image
                   == "vllm/vllm-openai:v0.11.1")
        assert _deployment(h, "llama-unified-gpu-a").spec.replicas == 2
        gen = h.read_md("llama")["metadata"]["generation"]
        eventually(lambda: h.read_md("llama")["status"]["observedGeneration"] == gen)

        # Deletion: owner references garbage-collect every child (the test server's GC).
        h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments", "llama")

        def gone() -> bool:
            assert not h.apps.list_namespaced_deployment(OPERATOR_NS).items
            assert not h.core.list_namespaced_service(OPERATOR_NS).items
            assert not [c for c in h.core.list_namespaced_config_map(OPERATOR_NS).items
                        if c.metadata.name.startswith("llama-")]
            return True

        eventually(gone)
        try:
            h.read_md("llama")
            raise AssertionError("the ModelDeployment should be gone (no finalizer blocks it)")
        except ApiException as exc:
            assert exc.status == 404


def test_peering_joins_the_named_cluster_peering(harness: OperatorHarness) -> None:
    from kubernetes import client

    from tests.kubeapi.test_kubeapi_kopf import PEERING_CRDS

    h = harness
    for crd in PEERING_CRDS:
        client.ApiextensionsV1Api(h.api).create_custom_resource_definition(crd)
    h.custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "tidal"}})
    with h.operator(peering_name="tidal"):
        eventually(lambda: h.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings",
                                                              "tidal").get("status"))
        h.create_md(model_deployment("peer"))
        eventually(lambda: _deployment(h, "peer-unified-gpu-a"))


def test_full_registry_serves_model_deployments_next_to_the_other_resources(harness: OperatorHarness) -> None:
    """``tidal run`` registers every resource's handlers on one registry; none gets in the way."""
    h = harness
    with h.operator(include_others=True):
        h.create_md(model_deployment("mixed"))
        dep = eventually(lambda: _deployment(h, "mixed-unified-gpu-a"))
        assert dep.spec.replicas == 1
        eventually(lambda: (h.condition("mixed", "MetricsAvailable") or {}).get("reason") == "NoPrometheus")
    watched = {r.resource for r in h.kube_api.audit.records() if r.verb == "watch"}
    assert "modeldeployments" in watched
    assert "serverlessfunctions" in watched, "the ServerlessFunction handlers should be registered too"
