"""`tidal simulate` through a Typer app built here (tidal/cli.py registers the same function)."""

from __future__ import annotations

import json

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
    assert data["finished"] + data["rejected"] + data["unfinished"] == data["requests"] > 0
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


def test_zero_duration_blames_duration(tmp_path) -> None:
    result = CliRunner().invoke(app, ["simulate", "--duration", "0", "--report", str(tmp_path / "r.html")],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "--duration" in out and "--trace" not in out, result.output
