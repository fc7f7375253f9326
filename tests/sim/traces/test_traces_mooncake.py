"""Mooncake JSONL loader: the real synthetic trace and malformed lines."""

from __future__ import annotations

import json

import pytest
from traces_testkit import real_traces, write

from tidal.sim.traces import KV_BLOCK_TOKENS, TraceFormatError, load_mooncake


def line(**overrides) -> str:
    row = {"timestamp": 0, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}
    row.update(overrides)
    return json.dumps(row)


def test_real_synthetic_trace_loads_every_line() -> None:
    requests = load_mooncake(real_traces() / "mooncake-synthetic" / "synthetic_trace.jsonl")
    assert len(requests) == 3_993
    assert requests[0].prompt_tokens == 40_160 and requests[0].output_tokens == 6
    assert requests[0].hash_ids == tuple(range(79))
    assert requests[-1].arrival_s == pytest.approx(1022.025)  # 17 minutes, ms -> s
    assert all(len(r.hash_ids) == -(-r.prompt_tokens // KV_BLOCK_TOKENS) for r in requests)
    # The trace has shared prefixes: some block ids recur across requests.
    seen: set[int] = set()
    reused = 0
    for r in requests:
        reused += sum(1 for h in r.hash_ids if h in seen)
        seen.update(r.hash_ids)
    assert reused > 0


def test_unsorted_lines_are_sorted_stably(tmp_path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        "\n".join(
            [line(timestamp=2000), line(timestamp=1000), line(timestamp=2000, output_length=9)]
        ),
    )
    requests = load_mooncake(path)
    assert [r.request_id for r in requests] == [1, 0, 2]
    assert [r.arrival_s for r in requests] == [1.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ('{"timestamp": 0, "input_length": 600,', "character", "JSON object"),
        ("[1, 2, 3]", None, "a JSON object"),
        (line(timestamp=-5), "timestamp", "non-negative number of milliseconds"),
        (line(timestamp="soon"), "timestamp", "non-negative number of milliseconds"),
        (line(input_length=12.5), "input_length", "non-negative integer"),
        (line(output_length=-1), "output_length", "non-negative integer"),
        (line(output_length=True), "output_length", "non-negative integer"),
        (line(hash_ids=[1, "b"]), "hash_ids", "list of non-negative integers"),
        (line(hash_ids=[1]), "hash_ids", "= 2 block ids"),
        (
            json.dumps({"timestamp": 0, "input_length": 1, "output_length": 1}),
            "hash_ids",
            "the fields",
        ),
        (line(extra=1), "extra", "only the fields"),
    ],
)
def test_malformed_lines_name_line_and_column(tmp_path, text, column, expected) -> None:
    path = write(tmp_path, "trace.jsonl", line() + "\n" + text + "\n")
    with pytest.raises(TraceFormatError) as caught:
        load_mooncake(path)
    assert str(caught.value).startswith("trace.jsonl line 2")
    if column == "character":
        assert caught.value.column.startswith("character")
    else:
        assert caught.value.column == column
    assert expected in str(caught.value)
