"""Writing a suite's result under ``tidal bench --out``: ``<suite>.md`` (tables and targets),
``<suite>.json`` (every row) and ``<suite>.png`` (its figure), and ``suites.md`` with every suite's
targets. Nothing written here depends on wall time, so the same seeded run gives the same files
(the placement rows' own ``wall_s`` aside).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidal.bench.suites.result import SuiteResult


def _plain(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN) and unknown objects as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return str(value)


def suite_markdown(result: SuiteResult) -> str:
    """The suite's section: title, tables, then its targets met or missed."""
    return (f"## {result.title}\n\n{result.markdown.rstrip()}\n\n**Targets**\n\n"
            + "\n".join(result.verdict_lines()) + "\n")


def write_suite(result: SuiteResult, out: Path) -> list[Path]:
    """Write one suite's files under ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{result.name}.md", out / f"{result.name}.json"]
    written[0].write_text(suite_markdown(result), encoding="utf-8")
    written[1].write_text(json.dumps(_plain({"suite": result.name, "data": result.data,
                                             "targets": [vars(t) for t in result.targets]}), indent=1),
                          encoding="utf-8")
    if result.figure_png is not None:
        written.append(out / f"{result.name}.png")
        written[-1].write_bytes(result.figure_png)
    return written


def write_summary(results: Sequence[SuiteResult], out: Path) -> Path:
    """``suites.md``: every suite's targets, met or missed, in one place."""
    lines = ["# tidal bench: targets of the suites", ""]
    for r in results:
        lines += [f"## {r.title} (`{r.name}.md`)", "", *r.verdict_lines(), ""]
    path = out / "suites.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
