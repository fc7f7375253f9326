"""The chart's RBAC: exactly the operator's contract (docs/configuration.md#permissions), no wildcards,
cluster-wide or per namespace.

The comparison with the API calls the operator really makes lives with the operator's API tests
(it needs the operator); they can reuse tests.charts.rbac_rules.
"""

from __future__ import annotations

import pytest

from tests.charts.chart_support import CHART_DIR, by_kind, render
from tests.charts.rbac_rules import Grant, allows, grants

SA, NS = "tidal", "tidal-system"

R = ("list", "watch")
# (api group, resource) -> verbs: the operator's contract, written out independently of the chart.
NAMESPACED = {
    ("tidal.dev", "modeldeployments"): R + ("patch",),
    ("tidal.dev", "serverlessfunctions"): R + ("patch",),
    ("tidal.dev", "modeldeployments/status"): ("patch",),
    ("tidal.dev", "serverlessfunctions/status"): ("patch",),
    # Not an API call: OwnerReferencesPermissionEnforcement checks it for blockOwnerDeletion.
    ("tidal.dev", "modeldeployments/finalizers"): ("update",),
    ("tidal.dev", "serverlessfunctions/finalizers"): ("update",),
    ("apps", "deployments"): ("get",) + R + ("create", "patch", "delete"),
    ("", "services"): ("list", "create", "patch", "delete"),
    ("", "configmaps"): ("get", "create", "patch"),
    # get: no API call; RBAC's escalation check when applying the P/D router's Role (get list watch).
    ("", "pods"): ("get",) + R,
    ("", "serviceaccounts"): ("create", "patch"),
    ("rbac.authorization.k8s.io", "roles"): ("create", "patch"),
    ("rbac.authorization.k8s.io", "rolebindings"): ("create", "patch"),
}
EVENTS = {("", "events"): ("create",)}
CLUSTER = {
    ("tidal.dev", "acceleratorclasses"): ("get",) + R,
    ("tidal.dev", "fairsharepolicies"): ("list", "watch"),
    ("tidal.dev", "acceleratorclasses/status"): ("patch",),
    ("tidal.dev", "fairsharepolicies/status"): ("patch",),
    ("", "nodes"): ("list",),
    ("apiextensions.k8s.io", "customresourcedefinitions"): R,
}


def expand(table, namespace):
    return {Grant(namespace, g, r, v) for (g, r), verbs in table.items() for v in verbs}


def test_no_wildcards_in_any_mode():
    for values in [(), (CHART_DIR / "ci" / "namespaced-values.yaml",)]:
        for role in by_kind(render(*values), "ClusterRole") + by_kind(render(*values), "Role"):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field] and not any("*" in x for x in rule[field]), (role, rule)
                assert set(rule) == {"apiGroups", "resources", "verbs"}, rule


def test_cluster_wide_grants_exactly_the_contract():
    granted = grants(render(), SA, NS)
    expected = (expand(NAMESPACED, None) | expand(EVENTS, None) | expand(CLUSTER, None)
                | {Grant(None, "kopf.dev", "clusterkopfpeerings", v) for v in R + ("patch",)})
    assert granted == expected, f"missing {expected - granted}; extra {granted - expected}"


def test_namespaced_scope_grants_exactly_the_contract_per_namespace():
    granted = grants(render(CHART_DIR / "ci" / "namespaced-values.yaml"), SA, NS)
    expected = expand(CLUSTER, None) | expand(EVENTS, NS)  # events about cluster-scoped objects
    for namespace in ("team-a", "team-b"):
        expected |= expand(NAMESPACED, namespace) | expand(EVENTS, namespace)
        expected |= {Grant(namespace, "kopf.dev", "kopfpeerings", v) for v in R + ("patch",)}
    assert granted == expected, f"missing {expected - granted}; extra {granted - expected}"


def test_namespaced_scope_cannot_touch_other_namespaces():
    granted = grants(render(CHART_DIR / "ci" / "namespaced-values.yaml"), SA, NS)
    assert allows(granted, "patch", "apps", "deployments", "team-a")
    assert not allows(granted, "patch", "apps", "deployments", "kube-system")
    assert not allows(granted, "list", "", "pods", "default")
    assert not allows(granted, "list", "", "namespaces", None)
    assert allows(granted, "create", "", "events", NS)
    assert not allows(granted, "create", "", "configmaps", NS)


def test_release_namespace_that_is_watched_gets_one_role():
    objects = render(CHART_DIR / "ci" / "namespaced-values.yaml", sets=("watchNamespaces={team-a,tidal-system}",))
    roles = by_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "tidal-system"]
    granted = grants(objects, SA, NS)
    assert allows(granted, "patch", "apps", "deployments", "tidal-system")


def test_standalone_has_no_peering_permissions_or_objects():
    objects = render(CHART_DIR / "ci" / "standalone-pdb-values.yaml")
    granted = grants(objects, "tidal-operator", NS)
    assert not {g for g in granted if g.api_group == "kopf.dev"}
    assert not [o for o in objects if o["apiVersion"].startswith("kopf.dev") or
                o["metadata"]["name"].endswith("kopf.dev")]


def test_rbac_create_false_renders_no_roles():
    objects = render(sets=("rbac.create=false",))
    assert not [o for o in objects if o["apiVersion"].startswith("rbac.authorization.k8s.io")]


@pytest.mark.parametrize("values", [(), (CHART_DIR / "ci" / "namespaced-values.yaml",)])
def test_bindings_name_the_pod_service_account(values):
    objects = render(*values)
    pod_sa = by_kind(objects, "Deployment")[0]["spec"]["template"]["spec"]["serviceAccountName"]
    (sa,) = by_kind(objects, "ServiceAccount")
    assert sa["metadata"]["name"] == pod_sa
    for binding in by_kind(objects, "RoleBinding") + by_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod_sa, "namespace": NS}]


SCALE_TARGETS = ("rbac.scaleTargets[0].apiGroup=apps", "rbac.scaleTargets[0].resources={deployments,statefulsets}",
                 "rbac.scaleTargets[1].apiGroup=leaderworkerset.x-k8s.io",
                 "rbac.scaleTargets[1].resources={leaderworkersets}")


@pytest.mark.parametrize("namespaced", [False, True], ids=["cluster-wide", "namespaced"])
def test_scale_targets_grant_get_and_patch_on_their_scale_subresource_only(namespaced):
    values = (CHART_DIR / "ci" / "namespaced-values.yaml",) if namespaced else ()
    granted = grants(render(*values, sets=SCALE_TARGETS), SA, NS) - grants(render(*values), SA, NS)
    namespaces = ("team-a", "team-b") if namespaced else (None,)
    expected = {Grant(ns, group, f"{resource}/scale", verb)
                for ns in namespaces for verb in ("get", "patch")
                for group, resource in [("apps", "deployments"), ("apps", "statefulsets"),
                                        ("leaderworkerset.x-k8s.io", "leaderworkersets")]}
    assert granted == expected
