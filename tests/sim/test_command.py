"""`tidal simulate` through a Typer app built here (tidal/cli.py registers the same function)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import typer
from typer.testing import CliRunner

from tidal.sim.command import simulate

app = typer.Typer()
app.command()(simulate)


@app.command()
def _other() -> None:  # a second command keeps `simulate` as a named subcommand
    pass


def test_simulate_demo_writes_summary_and_report(tmp_path) -> None:
    report = tmp_path / "r.html"
    summary = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["simulate", "--trace", "demo", "--policy",
                                      "utilization:8:1:6", "--duration", "240", "--report",
                                      str(report), "--json", str(summary), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "TTFT SLO attainment" in result.output
    data = json.loads(summary.read_text())
    assert data["finished"] + data["rejected"] + data["dropped"] + data["unfinished"] == data["requests"] > 0
    text = report.read_text()
    assert "data:image/png;base64" in text and "Scaling decisions" in text


def test_bad_policy_is_a_usage_error(tmp_path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--policy", "magic:3", "--report",
                                      str(tmp_path / "r.html")])
    assert result.exit_code != 0
    assert "unknown policy" in result.output


def test_unknown_trace_lists_valid_names(tmp_path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--trace", "nope", "--report",
                                      str(tmp_path / "r.html")])
    assert result.exit_code != 0
    assert "demo" in result.output


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _flat(output: str) -> str:
    """CLI output without rich's line wrapping and box borders."""
    return " ".join(output.replace("│", " ").split())


def test_simulate_runs_a_modeldeployment_manifest_through_the_core(tmp_path) -> None:
    summary = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["simulate", "-f", str(EXAMPLES / "modeldeployment-unified.yaml"),
                                      "-f", str(EXAMPLES / "accelerator-classes.yaml"), "--trace", "demo",
                                      "--duration", "240", "--report", str(tmp_path / "r.html"),
                                      "--json", str(summary), "--no-progress"])
    assert result.exit_code == 0, result.output
    # strategy cheapest ranks by cost per goodput: h100-80gb (hourlyCost 4.0) serves 2.2x the A100's
    # goodput at 1.6x its price
    assert "class h100-80gb simulated as H100-80GB" in _flat(result.output)
    data = json.loads(summary.read_text())
    assert data["policy"] == "tidal"
    assert data["cost_usd"] == pytest.approx(data["gpu_hours"] * 4.0, rel=1e-6), "the class's hourlyCost"


def test_manifest_problems_name_the_fix(tmp_path) -> None:
    md = EXAMPLES / "modeldeployment-unified.yaml"
    alone = CliRunner().invoke(app, ["simulate", "-f", str(md), "--report", str(tmp_path / "r.html")])
    assert alone.exit_code != 0 and "accelerator-classes.yaml" in _flat(alone.output)
    both = CliRunner().invoke(app, ["simulate", "-f", str(md), "--policy", "fixed:2",
                                    "--report", str(tmp_path / "r.html")])
    assert both.exit_code != 0 and "drop --policy" in _flat(both.output)
    bad = tmp_path / "bad.yaml"
    bad.write_text(md.read_text().replace("maxReplicas: 8", "maxReplicas: 0"))
    invalid = CliRunner().invoke(app, ["simulate", "-f", str(bad), "--report", str(tmp_path / "r.html")])
    assert invalid.exit_code != 0 and "spec.pools.unified.maxReplicas" in _flat(invalid.output)


def test_zero_duration_blames_duration(tmp_path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--duration", "0", "--report", str(tmp_path / "r.html")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "--duration" in out and "--trace" not in out, result.output


def test_simulate_a_mixed_cluster_from_the_manifests(tmp_path) -> None:
    summary = tmp_path / "s.json"
    result = CliRunner().invoke(app, ["simulate", "-f", str(EXAMPLES / "modeldeployment-unified.yaml"),
                                      "-f", str(EXAMPLES / "accelerator-classes.yaml"), "--trace", "demo",
                                      "--rate-scale", "3", "--duration", "240", "--class-nodes", "h100-80gb=1x1",
                                      "--class-nodes", "a100-80gb=1", "--report", str(tmp_path / "r.html"),
                                      "--json", str(summary), "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads(summary.read_text())
    by = data["by_class"]
    assert set(by) == {"h100-80gb", "a100-80gb"} and by["h100-80gb"]["gpu_hours"] > 0
    assert data["cost_usd"] == pytest.approx(by["h100-80gb"]["gpu_hours"] * 4.0 + by["a100-80gb"]["gpu_hours"] * 2.5)
    assert "class a100-80gb: GPU-hours" in _flat(result.output)
    bad = CliRunner().invoke(app, ["simulate", "-f", str(EXAMPLES / "modeldeployment-unified.yaml"),
                                   "-f", str(EXAMPLES / "accelerator-classes.yaml"), "--class-nodes", "h100-80gb",
                                   "--report", str(tmp_path / "r.html")])
    assert bad.exit_code != 0 and "CLASS=NODES" in _flat(bad.output)
    alone = CliRunner().invoke(app, ["simulate", "--class-nodes", "h100-80gb=1", "--report", str(tmp_path / "r.html")])
    assert alone.exit_code != 0 and "-f" in _flat(alone.output)
