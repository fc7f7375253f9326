"""The chart's PrometheusRule (prometheusRule.enabled): rendered by helm, checked by promtool
(``check rules``), and its alerts unit-tested with ``promtool test rules`` on synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.charts.chart_support import CHART_DIR, render

DOCUMENTED_ALERTS = {"TidalSLOAttainmentLow", "TidalReplicasNotReady", "TidalDecisionsSlow", "TidalOperatorDown"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool (Prometheus) is not installed")
    return path


def _rule_groups() -> dict:
    objects = render(CHART_DIR / "ci" / "servicemonitor-values.yaml")
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    return rule["spec"]


def test_rules_are_the_documented_alerts_and_pass_promtool(tmp_path: Path) -> None:
    spec = _rule_groups()
    alerts = {r["alert"] for g in spec["groups"] for r in g["rules"]}
    assert alerts == DOCUMENTED_ALERTS
    docs = (CHART_DIR.parents[1] / "docs" / "configuration.md").read_text()
    assert all(name in docs for name in DOCUMENTED_ALERTS), "document every shipped alert"
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(spec))
    result = subprocess.run([_promtool(), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_per_workload_with_its_own_namespace(tmp_path: Path) -> None:
    """With honorLabels the series keep the workload's namespace; the alerts group by it."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule_groups()))
    op = 'job="tidal", namespace="team-a", pool="unified"'
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'tidal_slo_attainment_ratio{{{op}, name="llama"}}', "values": "0.8x30"},
                {"series": f'tidal_slo_attainment_ratio{{{op}, name="qwen"}}', "values": "0.95x30"},
                {"series": f'tidal_desired_replicas{{{op}, name="llama"}}', "values": "4x30"},
                {"series": f'tidal_ready_replicas{{{op}, name="llama"}}', "values": "2x30"},
                {"series": 'up{job="tidal", namespace="tidal-system"}', "values": "1x30"},
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "TidalSLOAttainmentLow", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "team-a", "name": "llama"},
                    "exp_annotations": {
                        "summary": "team-a/llama: fewer than 90% of requests meet the SLO",
                        "description": "SLO attainment is 80%. kubectl describe the workload: SLOMet, "
                                       "CapacityLimited and the last decision say why (docs/troubleshooting.md)."}}]},
                {"eval_time": "5m", "alertname": "TidalReplicasNotReady", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "TidalReplicasNotReady", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "team-a", "name": "llama"},
                    "exp_annotations": {
                        "summary": "team-a/llama: desired replicas not ready for 10m",
                        "description": "Look at the CapacityLimited and Ready conditions and the pods "
                                       "(docs/troubleshooting.md)."}}]},
                {"eval_time": "20m", "alertname": "TidalOperatorDown", "exp_alerts": []},
            ],
        }],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([_promtool(), "test", "rules", "tests.yaml"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
