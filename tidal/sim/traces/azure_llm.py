"""Loader for the Azure LLM inference trace 2023 (Splitwise, ISCA 2024).

Format: CSV with header ``TIMESTAMP,ContextTokens,GeneratedTokens``, one row
per request, timestamps like ``2023-11-16 18:15:46.6805900`` (7 fractional
digits; the 100 ns digit is below the simulator's resolution and is dropped).
Source: Microsoft Azure public dataset, CC-BY-4.0.

Arrival times are seconds after the earliest timestamp in the file, so the
first request arrives at 0. Rows are kept in timestamp order; a file whose rows
are out of order is sorted (stably), not rejected, because merged production
logs are routinely a few milliseconds out of order and the order carries no
information the timestamps do not. ``request_id`` keeps the row's position in
the file (0-based, header excluded) so every request can be traced back.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from tidal.sim.traces.errors import TraceFormatError
from tidal.sim.traces.parsing import csv_rows, nonnegative_int
from tidal.sim.traces.records import LLMRequest

AZURE_LLM_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def load_azure_llm(path: str | Path) -> list[LLMRequest]:
    """Read one Azure LLM 2023 CSV (``code`` or ``conv``) into requests sorted by arrival."""
    path = Path(path)
    stamps: list[datetime] = []
    prompts: list[int] = []
    outputs: list[int] = []
    for line, (stamp, context, generated) in csv_rows(path, AZURE_LLM_COLUMNS, header=True):
        stamps.append(_timestamp(stamp, path, line))
        prompts.append(nonnegative_int(context, path, line, "ContextTokens"))
        outputs.append(nonnegative_int(generated, path, line, "GeneratedTokens"))
    if not stamps:
        raise TraceFormatError(path, None, None, "at least one request row after the header")
    origin = min(stamps)
    order = sorted(range(len(stamps)), key=stamps.__getitem__)
    return [
        LLMRequest(
            arrival_s=(stamps[i] - origin).total_seconds(),
            prompt_tokens=prompts[i],
            output_tokens=outputs[i],
            request_id=i,
        )
        for i in order
    ]


def _timestamp(text: str, path: Path, line: int) -> datetime:
    """Parse ``YYYY-MM-DD HH:MM:SS[.fffffff]`` (naive; the trace has one time zone)."""
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is not None or len(text) < 19 or text[10] != " ":
        raise TraceFormatError(
            path, line, "TIMESTAMP", "a timestamp like '2023-11-16 18:15:46.6805900'", text
        )
    return stamp
