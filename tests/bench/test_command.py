"""``tidal bench`` on the command line: bad options are named with the accepted values."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

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
    result = runner.invoke(app, ["bench", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert option in text and accepted in text, text


def test_missing_traces_dir_is_reported(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--traces-dir", str(tmp_path / "absent"),
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--traces-dir" in " ".join(result.output.split())


def test_bad_policy_parameter_is_reported_with_the_policy(traces_dir: Path,
                                                          tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--traces-dir", str(traces_dir), "--traces",
                                 "azure-code", "--modes", "unified", "--policies",
                                 "fixed:size=3", "--workers", "1", "--no-progress",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--policies" in text and "'fixed:size=3'" in text and "replicas" in text, text


def test_quick_run_on_a_private_traces_folder_writes_the_tables(traces_dir: Path,
                                                                tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "--traces-dir", str(traces_dir), "--traces",
                                 "azure-code", "--modes", "unified", "--policies",
                                 "fixed,oracle", "--quick", "--workers", "1", "--no-progress",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "8b-h100_azure-code_unified.csv").is_file()
    assert "| oracle |" in (tmp_path / "bench.md").read_text()


def test_traces_dir_without_the_trace_file_names_the_option_and_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "traces"
    empty.mkdir()
    result = runner.invoke(app, ["bench", "--traces-dir", str(empty), "--traces", "azure-code",
                                 "--workers", "1", "--no-progress", "--out", str(tmp_path)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "--traces-dir" in text and "AzureLLMInferenceTrace_code.csv" in text, text
