"""`tidal simulate-functions` through a Typer app built here, on a tiny trace the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from tidal.sim.functions_command import simulate_functions

app = typer.Typer()
app.command("simulate-functions")(simulate_functions)


@app.command()
def _other() -> None:  # a second command keeps `simulate-functions` a named subcommand
    pass


MINUTES = 6
COUNTS = {"fa": [3, 0, 0, 0, 0, 4], "fb": [20, 18, 25, 0, 30, 22], "fc": [0, 1, 0, 0, 0, 1]}


def write_trace(folder: Path) -> Path:
    """A three-function Azure Functions sample in the real file format."""
    folder.mkdir(parents=True)
    minutes = ",".join(f"minute_{m}" for m in range(1, MINUTES + 1))
    inv = [f"HashFunction,HashApp,HashOwner,{minutes}"]
    inv += [f"{f},{f},{f}," + ",".join(map(str, c)) for f, c in COUNTS.items()]
    (folder / "inv.csv").write_text("\n".join(inv) + "\n")
    pcts = ",".join(f"percentile_Average_{q}" for q in (0, 1, 25, 50, 75, 99, 100))
    run = [f"HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,{pcts}"]
    run += [f"{f},{f},{f},10,500,100,2000,100,120,300,500,800,1800,2000" for f in COUNTS]
    (folder / "run.csv").write_text("\n".join(run) + "\n")
    mpcts = ",".join(f"AverageAllocatedMb_pct{q}" for q in (1, 5, 25, 50, 75, 95, 99, 100))
    mem = [f"HashApp,HashOwner,SampleCount,AverageAllocatedMb,{mpcts}"]
    mem += [f"{f},{f},5,256,200,210,240,256,270,300,310,320" for f in COUNTS]
    (folder / "mem.csv").write_text("\n".join(mem) + "\n")
    return folder


def test_compares_policies_on_a_tiny_trace(tmp_path) -> None:
    folder = write_trace(tmp_path / "trace")
    report, out = tmp_path / "r.html", tmp_path / "s.json"
    result = CliRunner().invoke(app, [
        "simulate-functions", "--trace", f"azure-functions:dir={folder}:select=first",
        "--policy", "fixed-keepalive:10m", "--policy", "no-keepalive", "--functions", "3",
        "--minutes", str(MINUTES), "--seed", "1", "--report", str(report), "--json", str(out),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Cold-start ratio" in result.output and "Wasted idle GB-hours" in result.output
    data = json.loads(out.read_text())
    assert set(data) == {"fixed-keepalive:10m", "no-keepalive"}
    total = sum(sum(c) for c in COUNTS.values())
    for summary in data.values():
        assert summary["invocations"] == total
    assert data["no-keepalive"]["cold_start_ratio"] == 1.0
    assert data["fixed-keepalive:10m"]["cold_starts"] < data["no-keepalive"]["cold_starts"]
    assert data["no-keepalive"]["wasted_gb_hours"] == 0.0
    text = report.read_text()
    assert text.count("data:image/png;base64") == 3 and "no-keepalive" in text


def test_trace_from_shared_folder_and_same_seed_same_numbers(tmp_path, monkeypatch) -> None:
    write_trace(tmp_path / "shared" / "traces" / "azure-functions-2019")
    monkeypatch.setenv("TIDAL_SHARED", str(tmp_path / "shared"))
    outs = []
    for i in range(2):
        out = tmp_path / f"s{i}.json"
        result = CliRunner().invoke(app, ["simulate-functions", "--functions", "2", "--minutes",
                                          "4", "--cold-start", "huawei-r2", "--slo", "2s",
                                          "--json", str(out), "--no-progress"])
        assert result.exit_code == 0, result.output
        outs.append(json.loads(out.read_text()))
    assert outs[0] == outs[1]
    assert outs[0]["fixed-keepalive:10m"]["functions"] == 2


def test_missing_shared_folder_says_where_it_looked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TIDAL_SHARED", str(tmp_path / "nowhere"))
    result = CliRunner().invoke(app, ["simulate-functions", "--no-progress"])
    assert result.exit_code != 0
    assert "not found" in result.output and "TIDAL_SHARED" in result.output


def test_bad_options_are_usage_errors(tmp_path) -> None:
    folder = write_trace(tmp_path / "trace")
    for args, needle in ((["--policy", "magic"], "unknown policy"),
                         (["--policy", "fixed-keepalive:soon"], "invalid duration"),
                         (["--trace", "azure-llm"], "unknown trace"),
                         (["--trace", f"azure-functions:dir={folder}:pick=top"], "select="),
                         (["--cold-start", "lambda"], "huawei-r1"),
                         (["--slo", "fast"], "+DURATION")):
        result = CliRunner().invoke(app, ["simulate-functions", *args, "--no-progress"])
        assert result.exit_code != 0, args
        assert needle in result.output, (args, result.output)


def test_auto_policy_in_the_same_run(tmp_path) -> None:
    import pytest

    pytest.importorskip("tidal.policies.keepalive")
    folder = write_trace(tmp_path / "trace")
    out = tmp_path / "s.json"
    result = CliRunner().invoke(app, [
        "simulate-functions", "--trace", f"azure-functions:dir={folder}", "--policy",
        "fixed-keepalive:10m", "--policy", "auto", "--functions", "3", "--minutes",
        str(MINUTES), "--json", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["auto"]["invocations"] == data["fixed-keepalive:10m"]["invocations"]


def test_warm_up_needs_room_before_the_start(tmp_path) -> None:
    folder = write_trace(tmp_path / "trace")
    base = ["simulate-functions", "--functions", "3", "--minutes", "3", "--no-progress"]
    bad = CliRunner().invoke(app, [*base, "--trace", f"azure-functions:dir={folder}",
                                   "--warmup", "2"])
    assert bad.exit_code != 0 and "warm-up" in bad.output
    out = tmp_path / "s.json"
    ok = CliRunner().invoke(app, [*base, "--trace", f"azure-functions:dir={folder}:start=3",
                                  "--warmup", "2", "--json", str(out)])
    assert ok.exit_code == 0, ok.output
    data = json.loads(out.read_text())["fixed-keepalive:10m"]
    assert data["invocations"] == sum(sum(c[3:6]) for c in COUNTS.values())
    assert data["warmup_invocations"] == sum(sum(c[1:3]) for c in COUNTS.values())


def test_policy_spellings() -> None:
    import math

    from tidal.policies.baselines.fixed import FixedReplicas
    from tidal.policies.baselines.keepalive_fixed import FixedKeepAlive
    from tidal.policies.utilization import UtilizationTarget
    from tidal.sim.functions_command import parse_function_policy
    from tidal.sim.serverless import FunctionSimConfig

    cfg = FunctionSimConfig()
    cases = {"fixed-keepalive": 600.0, "fixed-keepalive:90s": 90.0, "fixed-keepalive:0": 0.0,
             "fixed-keepalive:inf": math.inf, "no-keepalive": 0.0}
    for spec, seconds in cases.items():
        policy = parse_function_policy(spec, cfg)
        assert isinstance(policy, FixedKeepAlive) and policy.keep_alive_s == seconds
        assert policy.name == spec
    fixed = parse_function_policy("fixed:2", cfg)
    assert isinstance(fixed, FixedReplicas) and fixed.replicas == {"function": 2}
    util = parse_function_policy("utilization:2:0:50", cfg)
    assert isinstance(util, UtilizationTarget) and util.max_replicas == 50
