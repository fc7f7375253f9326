"""Shared helpers for the trace-loader tests: where real traces are, and writing bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.sim.traces import TraceNotFoundError, traces_dir


def real_traces() -> Path:
    """``../shared/traces``, or skip the calling test with the reason it is absent."""
    try:
        return traces_dir()
    except TraceNotFoundError as absent:
        pytest.skip(f"real traces not available: {absent}")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path
