"""The Grafana dashboard (panels over the operator's metric contract) and the kopf peering objects."""

from __future__ import annotations

import json
import re

import pytest

from tests.charts.chart_support import CHART_DIR, by_kind, one, render

DASHBOARD = CHART_DIR / "dashboards" / "tidal-overview.json"
# The operator's own metrics (documented in docs/configuration.md#metrics).
CONTRACT_METRICS = {
    "tidal_forecast_requests_per_second", "tidal_observed_requests_per_second", "tidal_desired_replicas",
    "tidal_ready_replicas", "tidal_slo_attainment_ratio", "tidal_cold_starts_total",
    "tidal_decision_latency_seconds",
}
METRIC_NAME = re.compile(r"\btidal_[a-z_]+\b")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def exprs(panel: dict) -> list[str]:
    return [t["expr"] for t in panel["targets"]]


def base_metric(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


def test_dashboard_is_well_formed():
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {panel['title']} overflows the 24-column grid"
        area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & area, f"panel {panel['title']} overlaps another"
        cells |= area
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in board["panels"]:
        for expr in exprs(panel):
            for used in re.findall(r"\$(\w+)", expr):
                assert used in variables or used.startswith("__"), f"{panel['title']}: unknown variable ${used}"


@pytest.mark.parametrize(("title_part", "needed"), [
    ("Forecast vs actual", {"tidal_forecast_requests_per_second", "tidal_observed_requests_per_second"}),
    ("Replicas per pool", {"tidal_desired_replicas", "tidal_ready_replicas"}),
    ("SLO attainment", {"tidal_slo_attainment_ratio"}),
    ("Cold starts", {"tidal_cold_starts_total"}),
    ("Decision latency", {"tidal_decision_latency_seconds"}),
])
def test_dashboard_has_the_required_panels(title_part, needed):
    panels = [p for p in dashboard()["panels"] if title_part in p["title"]]
    assert len(panels) == 1, f"no single panel titled like {title_part!r}"
    used = {base_metric(m) for e in exprs(panels[0]) for m in METRIC_NAME.findall(e)}
    assert used == needed


def test_dashboard_uses_only_contract_metrics_and_balanced_queries():
    for panel in dashboard()["panels"]:
        for expr in exprs(panel):
            assert {base_metric(m) for m in METRIC_NAME.findall(expr)} <= CONTRACT_METRICS, expr
            for opening, closing in ("()", "{}", "[]"):
                assert expr.count(opening) == expr.count(closing), f"unbalanced {opening}{closing}: {expr}"
    replicas = next(p for p in dashboard()["panels"] if "Replicas per pool" in p["title"])
    assert all("pool" in e for e in exprs(replicas)), "replicas must be broken down by pool"


def test_dashboard_configmap_carries_the_file_and_sidecar_label():
    objects = render(CHART_DIR / "ci" / "servicemonitor-values.yaml")
    config_map = one(objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert json.loads(config_map["data"]["tidal-overview.json"]) == dashboard()


def test_cluster_wide_peering_object_is_the_one_the_operator_joins():
    objects = render()
    args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    peering = one(objects, "ClusterKopfPeering")
    assert f"--peering={peering['metadata']['name']}" in args
    assert peering["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert not by_kind(objects, "KopfPeering")
    crds = {c["metadata"]["name"]: c for c in by_kind(objects, "CustomResourceDefinition")}
    assert set(crds) == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    assert all(c["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for c in crds.values())


def test_namespaced_peering_objects_one_per_watched_namespace():
    objects = render(CHART_DIR / "ci" / "namespaced-values.yaml", sets=("peering.name=autoscaler",))
    peerings = by_kind(objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {"autoscaler"}
    assert not by_kind(objects, "ClusterKopfPeering")


def test_peering_crds_can_be_left_to_another_owner():
    objects = render(sets=("peering.installCRDs=false",))
    assert not by_kind(objects, "CustomResourceDefinition")
    assert by_kind(objects, "ClusterKopfPeering")
