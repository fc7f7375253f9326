"""`tidal simulate` engine-limit flags: defaults per GPU, explicit values, bad input."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from tidal.sim.command import simulate

app = typer.Typer()
app.command()(simulate)


@app.command()
def _other() -> None:  # a second command keeps `simulate` as a named subcommand
    pass


def _run(tmp_path, *extra: str):
    return CliRunner().invoke(app, ["simulate", "--trace", "demo", "--policy", "fixed:1",
                                    "--duration", "60", "--report", str(tmp_path / "r.html"),
                                    "--no-progress", *extra])


def test_defaults_follow_the_gpu(tmp_path) -> None:
    h100 = _run(tmp_path, "--accelerator", "H100-80GB")
    assert h100.exit_code == 0, h100.output
    assert "max_num_batched_tokens 8192, max_num_seqs 1024" in h100.output
    a100 = _run(tmp_path, "--accelerator", "A100-80GB")
    assert a100.exit_code == 0, a100.output
    assert "max_num_batched_tokens 2048, max_num_seqs 256" in a100.output


def test_explicit_limits_and_engine_version_are_used(tmp_path) -> None:
    result = _run(tmp_path, "--max-num-batched-tokens", "4096", "--max-num-seqs", "32",
                  "--engine-version", "vllm-v0.6")
    assert result.exit_code == 0, result.output
    assert "engine: vllm-v0.6, max_num_batched_tokens 4096, max_num_seqs 32" in result.output


def test_inconsistent_limits_name_the_flags_and_the_fix(tmp_path) -> None:
    result = _run(tmp_path, "--max-num-batched-tokens", "64", "--max-num-seqs", "128")
    assert result.exit_code != 0
    assert "max_num_batched_tokens (64) must be >= max_num_seqs (128)" in result.output


def test_unknown_engine_version_lists_the_known_ones(tmp_path) -> None:
    result = _run(tmp_path, "--engine-version", "vllm-v9")
    assert result.exit_code != 0
    assert "vllm-v1" in result.output


def test_engine_speed_flag(tmp_path) -> None:
    slow = _run(tmp_path, "--engine-speed", "0.7")
    assert slow.exit_code == 0, slow.output
    bad = _run(tmp_path, "--engine-speed", "0")
    assert bad.exit_code == 2 and "--engine-speed" in bad.output and "engine_speed must be in" in bad.output
