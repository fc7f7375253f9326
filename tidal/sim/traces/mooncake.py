"""Loader for the Mooncake (FAST'25) JSONL traces with prefix-block hashes.

Format: one JSON object per line with exactly the fields ``timestamp``
(milliseconds from trace start), ``input_length``, ``output_length`` and
``hash_ids`` (one id per 512-token prompt block, so
``len(hash_ids) == ceil(input_length / 512)``; equal ids are a shared prefix).
Source: Mooncake trace release, Apache-2.0.

Arrival times keep the trace's own origin (its timestamps already start at 0)
and are converted to seconds. Out-of-order rows are sorted stably, for the
reason given in ``azure_llm.py``; ``request_id`` is the 0-based row position.
Unknown fields are an error rather than being ignored, so a file with a
different schema is noticed instead of half-read.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from tidal.sim.traces.errors import TraceFormatError, TraceNotFoundError
from tidal.sim.traces.records import KV_BLOCK_TOKENS, LLMRequest

MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
MS_PER_S = 1000.0


def load_mooncake(path: str | Path) -> list[LLMRequest]:
    """Read a Mooncake JSONL trace into requests sorted by arrival."""
    path = Path(path)
    requests: list[LLMRequest] = []
    if not path.is_file():
        raise TraceNotFoundError(f"trace file not found: {path}")
    with open(path, encoding="utf-8") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            requests.append(_request(raw, path, line_number, row_index=len(requests)))
    if not requests:
        raise TraceFormatError(path, None, None, "at least one request line")
    requests.sort(key=lambda r: r.arrival_s)
    return requests


def _request(raw: str, path: Path, line: int, row_index: int) -> LLMRequest:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as bad:
        raise TraceFormatError(
            path, line, f"character {bad.colno}", f"a JSON object ({bad.msg})", raw.strip()
        ) from None
    if not isinstance(row, dict):
        raise TraceFormatError(path, line, None, "a JSON object", raw.strip())
    missing = [name for name in MOONCAKE_FIELDS if name not in row]
    if missing:
        raise TraceFormatError(
            path, line, missing[0], f"the fields {', '.join(MOONCAKE_FIELDS)}", raw.strip()
        )
    unknown = sorted(set(row) - set(MOONCAKE_FIELDS))
    if unknown:
        raise TraceFormatError(
            path, line, unknown[0], f"only the fields {', '.join(MOONCAKE_FIELDS)}", raw.strip()
        )
    timestamp_ms = row["timestamp"]
    if (
        isinstance(timestamp_ms, bool)
        or not isinstance(timestamp_ms, int | float)
        or not math.isfinite(timestamp_ms)
        or timestamp_ms < 0
    ):
        raise TraceFormatError(
            path, line, "timestamp", "a non-negative number of milliseconds", timestamp_ms
        )
    prompt_tokens = _count(row["input_length"], path, line, "input_length")
    output_tokens = _count(row["output_length"], path, line, "output_length")
    hash_ids = row["hash_ids"]
    if not isinstance(hash_ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in hash_ids
    ):
        raise TraceFormatError(path, line, "hash_ids", "a list of non-negative integers", hash_ids)
    blocks = math.ceil(prompt_tokens / KV_BLOCK_TOKENS)
    if len(hash_ids) != blocks:
        raise TraceFormatError(
            path,
            line,
            "hash_ids",
            f"ceil(input_length / {KV_BLOCK_TOKENS}) = {blocks} block ids",
            f"{len(hash_ids)} ids",
        )
    return LLMRequest(
        arrival_s=timestamp_ms / MS_PER_S,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        hash_ids=tuple(hash_ids),
        request_id=row_index,
    )


def _count(value: object, path: Path, line: int, column: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TraceFormatError(path, line, column, "a non-negative integer", value)
    return value
