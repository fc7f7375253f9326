"""``tidal bench`` on the command line: bad options are named with the accepted values."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.sim.traces.traces_testkit import real_traces
from tidal.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args, option, accepted", [
    (["--traces", "azure-conv,nope"], "--traces", "azure-code"),
    (["--modes", "both"], "--modes", "disaggregated"),
    (["--policies", "utilization,hpa2"], "--policies", "static-peak"),
    (["--policies", "fixed:replicas"], "--policies", "key=value"),
    (["--models", "405b"], "--models", "8b-h100"),
    (["--seeds", "0,x"], "--seeds", "integers"),
    (["--traces", ""], "--traces", "agent"),
    (["--perturb", "1.5"], "--perturb", "0.4"),
    (["--modes", "unified", "--policies", "heteroscale"], "--modes", "disaggregated"),
])
def test_bad_option_names_the_option_and_the_accepted_values(args: list[str], option: str,
                                                             accepted: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--suites", "policies", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert option in text and accepted in text, text


def test_missing_traces_dir_is_reported(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--suites", "policies", "--traces-dir", str(tmp_path / "absent"),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--traces-dir" in " ".join(result.output.split())


def test_bad_policy_parameter_is_reported_with_the_policy(traces_dir: Path,
                                                          tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--suites", "policies", "--traces-dir", str(traces_dir), "--traces",
                                 "azure-code", "--modes", "unified", "--policies",
                                 "fixed:size=3", "--workers", "1", "--no-progress",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--policies" in text and "'fixed:size=3'" in text and "replicas" in text, text


def test_quick_run_on_a_private_traces_folder_writes_the_tables(traces_dir: Path,
                                                                tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--suites", "policies", "--traces-dir", str(traces_dir), "--traces",
                                 "azure-code", "--modes", "unified", "--policies",
                                 "fixed,oracle", "--quick", "--workers", "1", "--no-progress",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "8b-h100_azure-code_unified.csv").is_file()
    assert "| oracle |" in (tmp_path / "bench.md").read_text()


def test_traces_dir_without_the_trace_file_names_the_option_and_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "traces"
    empty.mkdir()
    result = runner.invoke(app, ["bench", "--suites", "policies", "--traces-dir", str(empty), "--traces", "azure-code",
                                 "--workers", "1", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--traces-dir" in text and "AzureLLMInferenceTrace_code.csv" in text, text


def test_unknown_suite_names_the_accepted_ones(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--suites", "policies,kv", "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--suites" in text and "fair-share" in text, text


def test_a_suite_whose_trace_is_missing_fails_before_anything_runs(traces_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--traces-dir", str(traces_dir), "--suites", "policies,fair-share",
                                 "--no-progress", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--traces-dir" in text and "servegen" in text, text
    assert not (tmp_path / "out").exists()


def test_suites_on_the_real_traces_write_their_files_and_targets(tmp_path: Path) -> None:
    real = real_traces()
    result = runner.invoke(app, ["bench", "--traces-dir", str(real), "--suites", "fair-share,kv-ttl", "--quick",
                                 "--workers", "1", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("fair-share", "kv-ttl"):
        assert (tmp_path / f"{name}.md").read_text().count("**Targets**") == 1
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    summary = (tmp_path / "suites.md").read_text()
    assert "Jain >= 0.95: met" in summary and "mooncake: above every fixed TTL" in summary
    assert not (tmp_path / "bench.md").exists()  # the policy comparison was not chosen
