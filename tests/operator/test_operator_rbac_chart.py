"""RBAC is tested, not guessed: the Helm chart grants exactly what the running operator uses.

The whole operator (every resource's handlers, cluster-wide, with kopf peering) runs against the
test API server through a scenario that touches all four kinds; the server's audit log records each
request the operator makes (kopf's and tidal's own User-Agents). The chart's rendered ClusterRole is
then compared both ways: every recorded call is granted, and every grant is either used or listed
in ``GRANTED_WITHOUT_A_CALL`` with the reason it cannot show up as a request.
"""

from __future__ import annotations

from typing import Any

import yaml
from kubernetes import client

from tests.charts.chart_support import render
from tests.charts.rbac_rules import grants
from tests.operator.conftest import (
    OPERATOR_NS,
    REPO_ROOT,
    OperatorHarness,
    eventually,
    model_deployment,
)
from tidal.operator.kube import USER_AGENT

SERVICE_ACCOUNT, RELEASE_NS = "tidal", "tidal-system"
PEERING = "tidal"

GRANTED_WITHOUT_A_CALL: dict[tuple[str, str, str], str] = {
    # Checked by the OwnerReferencesPermissionEnforcement admission plugin when a child carries
    # blockOwnerDeletion; no request ever uses the verb.
    ("tidal.dev", "modeldeployments/finalizers", "update"): "admission check for blockOwnerDeletion",
    ("tidal.dev", "serverlessfunctions/finalizers", "update"): "admission check for blockOwnerDeletion",
    # RBAC's escalation check: a subject may create a Role (the P/D router's: get, list, watch on pods)
    # only with every permission the Role grants; the operator itself only lists and watches pods.
    ("", "pods", "get"): "escalation check when applying a P/D router's Role",
}


def _node(api: client.CoreV1Api, name: str, product: str, gpus: int) -> None:
    api.create_node({"metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}}})
    api.patch_node_status(name, {"status": {"allocatable": {"cpu": "64", "nvidia.com/gpu": str(gpus)}}})


def _function(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "tidal.dev/v1alpha1", "kind": "ServerlessFunction",
        "metadata": {"name": name, "namespace": OPERATOR_NS},
        "spec": {"container": {"image": "registry.invalid/fn:1", "port": 8080}, "memory": "256Mi",
                 "slo": {"latency": "1500ms", "percentile": 99}, "minInstances": 1, "maxInstances": 4,
                 "scaleToZero": False},
    }


def _fair_share() -> dict[str, Any]:
    return {
        "apiVersion": "tidal.dev/v1alpha1", "kind": "FairSharePolicy", "metadata": {"name": "gpus"},
        "spec": {"capacity": {"acceleratorClasses": ["gpu-a"]}, "rebalance": "immediate",
                 "tenants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 2}]},
    }


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("status") or {}


def exercise_every_resource(h: OperatorHarness) -> None:
    """Create, scale, change and delete one object of each kind while the operator runs."""
    core = h.core
    _node(core, "node-a", "GPU-A", 8)
    custom = h.custom
    custom.create_cluster_custom_object("tidal.dev", "v1alpha1", "fairsharepolicies", _fair_share())
    h.create_md(model_deployment("rbac", min_replicas=1, tenant={"name": "a"}))
    custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "serverlessfunctions",
                                           _function("fn"))
    eventually(lambda: h.apps.read_namespaced_deployment("rbac-unified-gpu-a", OPERATOR_NS))
    eventually(lambda: h.apps.read_namespaced_deployment("fn", OPERATOR_NS))
    h.set_ready("rbac-unified-gpu-a", 1)
    h.patch_md("rbac", {"spec": {"replicas": 2}})
    # The tenant is governed by a FairSharePolicy, which caps even spec.replicas: the second replica
    # waits for the policy to grant what the ModelDeployment now asks for (two ticks, one per kind).
    eventually(lambda: h.apps.read_namespaced_deployment("rbac-unified-gpu-a", OPERATOR_NS).spec.replicas == 2)
    eventually(lambda: core.read_namespaced_config_map("rbac-tidal-state", OPERATOR_NS))
    # A mode switch removes the unified pool: its Deployment and Service are pruned.
    h.patch_md("rbac", {"spec": {"mode": "disaggregated", "replicas": None, "pools": {
        "unified": None, "prefill": {"minReplicas": 1, "maxReplicas": 2},
        "decode": {"minReplicas": 1, "maxReplicas": 2}}}})
    eventually(lambda: h.apps.read_namespaced_deployment("rbac-decode-gpu-a", OPERATOR_NS))
    eventually(lambda: "rbac-unified" not in {s.metadata.name for s in core.list_namespaced_service(OPERATOR_NS).items})
    assert "rbac-unified-gpu-a" not in {d.metadata.name for d in h.apps.list_namespaced_deployment(OPERATOR_NS).items}
    eventually(lambda: _status(custom.get_cluster_custom_object(
        "tidal.dev", "v1alpha1", "acceleratorclasses", "gpu-a")).get("allocatable") == 8)
    eventually(lambda: _status(custom.get_cluster_custom_object(
        "tidal.dev", "v1alpha1", "fairsharepolicies", "gpus")).get("tenants"))
    custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments", "rbac")
    custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "serverlessfunctions", "fn")
    eventually(lambda: not h.apps.list_namespaced_deployment(OPERATOR_NS).items)


def test_chart_grants_exactly_what_the_operator_uses(harness: OperatorHarness) -> None:
    h = harness
    extensions = client.ApiextensionsV1Api(h.api)
    peering_crds = REPO_ROOT / "deploy" / "crds" / "kopf-peering.yaml"
    for crd in yaml.safe_load_all(peering_crds.read_text()):
        if crd:
            extensions.create_custom_resource_definition(crd)
    h.custom.create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": PEERING}})
    h.kube_api.audit.clear()

    with h.operator(include_others=True, peering_name=PEERING):
        exercise_every_resource(h)

    ours = [r for r in h.kube_api.audit.records() if r.user_agent.startswith(("kopf/", USER_AGENT))]
    used = {(r.group, r.resource + (f"/{r.subresource}" if r.subresource else ""), r.verb) for r in ours}
    chart = {(g.api_group, g.resource, g.verb)
             for g in grants(render(), SERVICE_ACCOUNT, RELEASE_NS) if g.namespace is None}

    assert used <= chart, f"the operator calls what the chart does not grant: {sorted(used - chart)}"
    unused = chart - used - set(GRANTED_WITHOUT_A_CALL)
    assert not unused, f"the chart grants what the operator never uses: {sorted(unused)}"
    assert set(GRANTED_WITHOUT_A_CALL) <= chart, "an explained grant is no longer in the chart: drop it here"
