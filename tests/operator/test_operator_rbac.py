"""The operator calls only what docs/configuration.md "Permissions" grants (the chart's RBAC contract).

The test API server's audit log records every request with its User-Agent; kopf sends ``kopf/...``
and the operator's own client ``tidal-operator``, so the test's own requests are left out.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.operator.conftest import OPERATOR_NS, REPO_ROOT, OperatorHarness, eventually, model_deployment
from tidal.operator.kube import USER_AGENT


def documented_grants() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) from the Permissions table; ``""`` is the core group."""
    text = (REPO_ROOT / "docs" / "configuration.md").read_text()
    section = text.split("## Permissions", 1)[1].split("\n## ", 1)[0]
    out: set[tuple[str, str, str]] = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        groups = ["" if g == '""' else g for g in re.findall(r"`([^`]*)`", cells[0])]
        resources = re.findall(r"`([^`]*)`", cells[1])
        verbs = cells[2].split()
        out |= {(g, r, v) for g in groups for r in resources for v in verbs}
    return out


@pytest.mark.parametrize("scope", ["cluster-wide", "namespaced-with-peering"])
def test_operator_requests_stay_within_the_documented_permissions(harness: OperatorHarness, scope: str) -> None:
    h = harness
    overrides: dict[str, Any] = {}
    if scope != "cluster-wide":
        from kubernetes import client

        from tests.kubeapi.test_kubeapi_kopf import PEERING_CRDS

        for crd in PEERING_CRDS:
            client.ApiextensionsV1Api(h.api).create_custom_resource_definition(crd)
        h.custom.create_namespaced_custom_object("kopf.dev", "v1", OPERATOR_NS, "kopfpeerings", {
            "apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "tidal"}})
        overrides = {"namespaces": (OPERATOR_NS,), "peering_name": "tidal"}
    with h.operator(**overrides):
        h.create_md(model_deployment("rbac", min_replicas=1))
        eventually(lambda: h.apps.read_namespaced_deployment("rbac-unified-gpu-a", OPERATOR_NS))
        h.patch_md("rbac", {"spec": {"replicas": 2}})
        eventually(lambda: h.apps.read_namespaced_deployment("rbac-unified-gpu-a", OPERATOR_NS).spec.replicas == 2)
        eventually(lambda: [e for e in h.events("rbac") if e.reason == "ScaledUp"])
        eventually(lambda: h.core.read_namespaced_config_map("rbac-tidal-state", OPERATOR_NS))
        h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments", "rbac")
        eventually(lambda: not h.apps.list_namespaced_deployment(OPERATOR_NS).items)
    ours = [r for r in h.kube_api.audit.records() if r.user_agent.startswith(("kopf/", USER_AGENT))]
    used = {(r.group, r.resource + (f"/{r.subresource}" if r.subresource else ""), r.verb) for r in ours}
    granted = documented_grants()
    assert granted, "the Permissions table should parse"
    assert used <= granted, f"not granted by docs/configuration.md: {sorted(used - granted)}"
    # The calls the runtime cannot work without (a regression that drops one would go unnoticed).
    assert {("apps", "deployments", "patch"), ("tidal.dev", "modeldeployments/status", "patch"),
            ("", "configmaps", "patch"), ("", "pods", "watch"), ("", "events", "create"),
            ("tidal.dev", "acceleratorclasses", "get")} <= used, sorted(used)
    if scope != "cluster-wide":
        assert ("kopf.dev", "kopfpeerings", "patch") in used
        namespaced = {(r.resource, r.namespace) for r in ours if r.namespace}
        assert {ns for _, ns in namespaced} == {OPERATOR_NS}, namespaced
    print(scope, "operator API calls:", sorted(used))
