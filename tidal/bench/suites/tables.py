"""Markdown tables of row dictionaries, shared by the suites (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Column = tuple  # (key, header, format) or (key, header, format, scale)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """``rows`` as a markdown table: one column per ``(key, header, format[, scale])``; a value the
    format rejects (None, NaN as text) is shown as ``str(value)``."""
    lines = ["| " + " | ".join(c[1] for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for col in columns:
            value = row[col[0]]
            if len(col) > 3 and value is not None:
                value = value * col[3]
            try:
                cells.append(col[2].format(value))
            except (TypeError, ValueError):
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
