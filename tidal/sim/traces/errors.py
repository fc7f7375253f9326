"""Errors raised by the trace loaders.

A trace that cannot be read is a hard error, never a silently shorter trace:
a benchmark that quietly lost a tenth of its requests would report numbers for
a workload nobody asked for. Every error therefore names the file, the 1-based
line number, the column and what was expected, so the fix is obvious.
"""

from __future__ import annotations

from pathlib import Path


class TraceFormatError(ValueError):
    """A row of a trace file does not have the expected shape or values.

    The message reads like
    ``AzureLLMInferenceTrace_code.csv line 17, column ContextTokens: expected a
    non-negative integer, got 'abc'``. The parts are also kept as attributes
    so tests and tools can inspect them without parsing the message.
    """

    def __init__(
        self,
        path: str | Path,
        line: int | None,
        column: str | None,
        expected: str,
        got: object = None,
    ) -> None:
        self.path = Path(path)
        self.line = line
        self.column = column
        self.expected = expected
        self.got = got
        where = self.path.name
        if line is not None:
            where += f" line {line}"
        if column is not None:
            where += f", column {column}"
        message = f"{where}: expected {expected}"
        if got is not None:
            message += f", got {_show(got)}"
        super().__init__(message)


class TraceNotFoundError(FileNotFoundError):
    """A trace file or folder is missing (for example ``../shared`` is absent)."""


class UnknownTraceError(ValueError):
    """``load_trace`` was given a name it does not know; the message lists valid names."""


def _show(value: object) -> str:
    """Quote a bad value compactly: long rows are cut so the message stays readable."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
