"""What ``tidal bench`` writes for a suite: tables with targets, rows as strict JSON, the figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from tidal.bench.suites import SuiteResult, Target
from tidal.bench.suites.output import suite_markdown, write_suite, write_summary

PNG = b"\x89PNG\r\n\x1a\nfake"


def _result(**over) -> SuiteResult:
    base = dict(name="kv-ttl", title="KV-cache TTL", markdown="| a |\n|---|\n| 1 |",
                data={"rows": [{"x": math.nan, "y": np.float64(2.5), "z": (1, 2)}]}, figure_png=PNG,
                targets=(Target("net >= 90 %", True, "34 vs 37"), Target("above fixed", False)))
    base.update(over)
    return SuiteResult(**base)


def test_markdown_has_the_tables_and_every_target_met_or_missed() -> None:
    text = suite_markdown(_result())
    assert text.startswith("## KV-cache TTL")
    assert "| 1 |" in text
    assert "- net >= 90 %: met (34 vs 37)" in text
    assert "- above fixed: MISSED" in text


def test_write_suite_writes_strict_json_and_the_png(tmp_path: Path) -> None:
    written = write_suite(_result(), tmp_path / "out")
    assert [p.name for p in written] == ["kv-ttl.md", "kv-ttl.json", "kv-ttl.png"]
    data = json.loads((tmp_path / "out" / "kv-ttl.json").read_text(), parse_constant=lambda c: 1 / 0)
    assert data["data"]["rows"] == [{"x": None, "y": 2.5, "z": [1, 2]}]
    assert data["targets"][1] == {"name": "above fixed", "met": False, "detail": ""}
    assert (tmp_path / "out" / "kv-ttl.png").read_bytes() == PNG


def test_no_figure_no_png(tmp_path: Path) -> None:
    written = write_suite(_result(figure_png=None), tmp_path)
    assert not (tmp_path / "kv-ttl.png").exists() and len(written) == 2


def test_summary_lists_every_suite_and_its_targets(tmp_path: Path) -> None:
    path = write_summary([_result(), _result(name="placement", title="Placement", targets=())], tmp_path)
    text = path.read_text()
    assert "## KV-cache TTL (`kv-ttl.md`)" in text and "## Placement (`placement.md`)" in text
    assert text.count("MISSED") == 1
