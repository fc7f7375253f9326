"""Azure LLM 2023 loader: the real files, the bundled excerpt, and malformed rows."""

from __future__ import annotations

import pytest
from traces_testkit import real_traces, write

from tidal.sim.traces import TraceFormatError, load_azure_llm, load_demo_trace

HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


@pytest.mark.parametrize(("service", "rows"), [("conv", 19_366), ("code", 8_819)])
def test_real_file_loads_every_row(service: str, rows: int) -> None:
    path = real_traces() / "azure-llm-2023" / f"AzureLLMInferenceTrace_{service}.csv"
    requests = load_azure_llm(path)
    assert len(requests) == rows
    arrivals = [r.arrival_s for r in requests]
    assert arrivals[0] == 0.0
    assert arrivals == sorted(arrivals)
    # The README gives a span of about one hour.
    assert 3000 < arrivals[-1] < 3700
    assert sorted(r.request_id for r in requests) == list(range(rows))
    assert all(r.prompt_tokens > 0 and r.output_tokens > 0 for r in requests)


def test_real_first_rows_match_the_file() -> None:
    path = real_traces() / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
    first_two = load_azure_llm(path)[:2]
    # 2023-11-16 18:15:46.6805900,374,44 and 18:15:50.9951690,396,109
    assert (first_two[0].prompt_tokens, first_two[0].output_tokens) == (374, 44)
    assert (first_two[1].prompt_tokens, first_two[1].output_tokens) == (396, 109)
    assert first_two[1].arrival_s == pytest.approx(4.314579, abs=1e-6)


def test_demo_excerpt_is_packaged_and_small() -> None:
    requests = load_demo_trace()
    assert len(requests) == 5_078
    assert requests[0].arrival_s == 0.0
    assert 700 < requests[-1].arrival_s < 720  # a 12-minute window
    assert [r.arrival_s for r in requests] == sorted(r.arrival_s for r in requests)


def test_demo_excerpt_is_a_verbatim_slice_of_the_real_trace() -> None:
    path = real_traces() / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
    full = load_azure_llm(path)
    demo = load_demo_trace()
    start = next(i for i, r in enumerate(full) if r.arrival_s >= 1200.0)
    window = full[start : start + len(demo)]
    assert [(r.prompt_tokens, r.output_tokens) for r in window] == [
        (r.prompt_tokens, r.output_tokens) for r in demo
    ]
    offset = window[0].arrival_s
    assert [round(r.arrival_s - offset, 6) for r in window] == [round(r.arrival_s, 6) for r in demo]


def test_unsorted_rows_are_sorted_and_keep_their_row_index(tmp_path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        HEADER
        + "2023-11-16 18:00:02.5000000,20,2\n"
        + "2023-11-16 18:00:01.0000000,10,1\n"
        + "2023-11-16 18:00:03.0000000,30,3\n",
    )
    requests = load_azure_llm(path)
    assert [r.prompt_tokens for r in requests] == [10, 20, 30]
    assert [r.request_id for r in requests] == [1, 0, 2]
    assert [r.arrival_s for r in requests] == [0.0, 1.5, 2.0]


@pytest.mark.parametrize(
    ("row", "line_column", "expected"),
    [
        ("2023-11-16 18:00:01.0,abc,5", "line 3, column ContextTokens", "non-negative integer"),
        ("2023-11-16 18:00:01.0,-4,5", "line 3, column ContextTokens", "non-negative integer"),
        ("2023-11-16 18:00:01.0,4,2.5", "line 3, column GeneratedTokens", "non-negative integer"),
        ("2023-11-16 18:00:01.0,4, 5", "line 3, column GeneratedTokens", "non-negative integer"),
        ("yesterday,4,5", "line 3, column TIMESTAMP", "timestamp"),
        ("2023-11-16T18:00:01,4,5", "line 3, column TIMESTAMP", "timestamp"),
        ("2023-11-16 18:00:01.0,4", "line 3:", "3 comma-separated fields"),
        ("2023-11-16 18:00:01.0,4,5,6", "line 3:", "3 comma-separated fields"),
    ],
)
def test_malformed_row_names_file_line_and_column(
    tmp_path, row: str, line_column: str, expected: str
) -> None:
    path = write(tmp_path, "azure_code.csv", HEADER + "2023-11-16 18:00:00.0,1,1\n" + row + "\n")
    with pytest.raises(TraceFormatError) as caught:
        load_azure_llm(path)
    message = str(caught.value)
    assert message.startswith(f"azure_code.csv {line_column}")
    assert expected in message
    assert caught.value.line == 3


def test_error_message_quotes_the_bad_value(tmp_path) -> None:
    path = write(tmp_path, "azure_code.csv", HEADER + "2023-11-16 18:00:00.0,abc,1\n")
    with pytest.raises(
        TraceFormatError,
        match=r"azure_code.csv line 2, column ContextTokens: "
        r"expected a non-negative integer, got 'abc'",
    ):
        load_azure_llm(path)


def test_wrong_header_is_rejected(tmp_path) -> None:
    path = write(tmp_path, "t.csv", "time,prompt,output\n2023-11-16 18:00:00.0,1,1\n")
    with pytest.raises(TraceFormatError, match="line 1.*TIMESTAMP,ContextTokens,GeneratedTokens"):
        load_azure_llm(path)


def test_header_only_file_is_an_error_not_an_empty_trace(tmp_path) -> None:
    with pytest.raises(TraceFormatError, match="at least one request"):
        load_azure_llm(write(tmp_path, "t.csv", HEADER))


def test_blank_lines_carry_no_rows_but_every_data_row_is_kept(tmp_path) -> None:
    path = write(
        tmp_path, "t.csv", HEADER + "2023-11-16 18:00:00.0,1,1\n\n2023-11-16 18:00:01.0,2,2\n\n"
    )
    assert [r.prompt_tokens for r in load_azure_llm(path)] == [1, 2]
