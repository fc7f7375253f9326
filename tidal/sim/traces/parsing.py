"""Strict field parsers shared by the loaders.

Each parser either returns a value or raises ``TraceFormatError`` naming the
file, line and column. They are deliberately stricter than ``int()`` and
``float()``: ``int(" 1_0")`` is 10 and ``float("nan")`` is a float, but neither
is a token count a trace should contain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from tidal.sim.traces.errors import TraceFormatError, TraceNotFoundError


def nonnegative_int(text: str, path: Path, line: int, column: str) -> int:
    """A base-10 integer >= 0 written with ASCII digits only."""
    if text.isascii() and text.isdigit():
        return int(text)
    raise TraceFormatError(path, line, column, "a non-negative integer", text)


def nonnegative_float(text: str, path: Path, line: int, column: str) -> float:
    """A finite real number >= 0."""
    try:
        value = finite_float(text, path, line, column)
    except TraceFormatError:
        value = -1.0
    if value < 0:
        raise TraceFormatError(path, line, column, "a non-negative number", text)
    return value


def finite_float(text: str, path: Path, line: int, column: str) -> float:
    """A finite real number (no ``nan``/``inf``, no surrounding blanks)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or text != text.strip() or not text:
        raise TraceFormatError(path, line, column, "a finite number", text)
    return value


def csv_rows(
    path: Path, columns: tuple[str, ...], *, header: bool
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for every data row of a plain CSV file.

    The trace CSVs contain no quoting, so a split on commas is exact and much
    faster than the ``csv`` module. With ``header=True`` the first line must
    name exactly ``columns``. Every data row must have ``len(columns)`` fields.
    Blank lines carry no data and are passed over; anything else that is not a
    well-formed row raises ``TraceFormatError``.
    """
    expected_fields = len(columns)
    if not path.is_file():
        raise TraceNotFoundError(f"trace file not found: {path}")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line_number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if line_number == 1 and header:
                found = tuple(name.strip() for name in line.split(","))
                if found != columns:
                    raise TraceFormatError(path, 1, None, f"the header {','.join(columns)}", line)
                continue
            if not line.strip():
                continue
            fields = line.split(",")
            if len(fields) != expected_fields:
                raise TraceFormatError(
                    path,
                    line_number,
                    None,
                    f"{expected_fields} comma-separated fields ({','.join(columns)}),"
                    f" found {len(fields)}",
                    line,
                )
            yield line_number, fields
