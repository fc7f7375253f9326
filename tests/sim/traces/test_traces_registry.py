"""load_trace names, the shared-folder error, and the pure transforms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from traces_testkit import real_traces

from tidal.sim.traces import (
    TRACE_NAMES,
    LLMRequest,
    TraceNotFoundError,
    UnknownTraceError,
    load_demo_trace,
    load_trace,
    rate_scale,
    superpose,
    time_window,
)


def test_demo_needs_no_shared_folder(tmp_path) -> None:
    requests = load_trace("demo", shared=tmp_path / "absent")
    assert requests == load_demo_trace()


def test_unknown_name_lists_the_valid_names() -> None:
    with pytest.raises(UnknownTraceError) as caught:
        load_trace("azure-chat")
    for name in TRACE_NAMES:
        assert name in str(caught.value)


def test_missing_shared_folder_says_where_it_looked(tmp_path) -> None:
    with pytest.raises(TraceNotFoundError, match="TIDAL_SHARED") as caught:
        load_trace("azure-conv", shared=tmp_path / "absent")
    assert str(tmp_path / "absent" / "traces") in str(caught.value)


def test_env_var_points_at_shared(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TIDAL_SHARED", str(tmp_path))
    with pytest.raises(TraceNotFoundError, match=str(tmp_path)):
        load_trace("mooncake")


@pytest.mark.parametrize("name", ["azure-conv", "azure-code", "mooncake"])
def test_real_names_load(name: str) -> None:
    real_traces()
    requests = load_trace(name)
    assert len(requests) > 1000
    assert [r.arrival_s for r in requests] == sorted(r.arrival_s for r in requests)


def test_window_cuts_and_rebases_the_demo() -> None:
    full = load_demo_trace()
    window = load_trace("demo", start_s=60.0, duration_s=120.0)
    expected = [r for r in full if 60.0 <= r.arrival_s < 180.0]
    assert len(window) == len(expected) > 0
    assert all(0.0 <= r.arrival_s < 120.0 for r in window)
    assert [r.request_id for r in window] == [r.request_id for r in expected]


arrival_lists = st.lists(st.floats(min_value=0.0, max_value=1e6, allow_nan=False), max_size=50).map(
    sorted
)


@given(arrivals=arrival_lists, factor=st.floats(min_value=1e-3, max_value=1e3))
def test_rate_scale_preserves_count_order_and_tokens(arrivals: list[float], factor: float) -> None:
    requests = [
        LLMRequest(a, prompt_tokens=i, output_tokens=1, request_id=i)
        for i, a in enumerate(arrivals)
    ]
    scaled = rate_scale(requests, factor)
    assert len(scaled) == len(requests)
    assert [r.request_id for r in scaled] == [r.request_id for r in requests]
    assert [r.arrival_s for r in scaled] == sorted(r.arrival_s for r in scaled)
    for before, after in zip(requests, scaled, strict=True):
        assert after.arrival_s == pytest.approx(before.arrival_s / factor)
        assert after.prompt_tokens == before.prompt_tokens


def test_rate_scale_doubles_the_rate_of_the_demo() -> None:
    requests = load_demo_trace()
    faster = rate_scale(requests, 2.0)
    assert faster[-1].arrival_s == pytest.approx(requests[-1].arrival_s / 2)


@pytest.mark.parametrize("factor", [0.0, -1.0, float("nan"), float("inf")])
def test_rate_scale_rejects_bad_factors(factor: float) -> None:
    with pytest.raises(ValueError, match="factor"):
        rate_scale([], factor)


@given(
    arrivals=arrival_lists,
    start=st.floats(min_value=0, max_value=1e6),
    duration=st.floats(min_value=1e-3, max_value=1e6),
)
def test_time_window_keeps_exactly_the_requests_inside(
    arrivals: list[float], start: float, duration: float
) -> None:
    requests = [LLMRequest(a, 1, 1, request_id=i) for i, a in enumerate(arrivals)]
    window = time_window(requests, start, duration)
    inside = [r.request_id for r in requests if start <= r.arrival_s < start + duration]
    assert [r.request_id for r in window] == inside
    assert all(r.arrival_s >= 0 for r in window)


def test_servegen_name_samples_one_client_window() -> None:
    real_traces()
    requests = load_trace("servegen-m-small:0", seed=1, start_s=337_800.0, duration_s=600.0)
    assert len(requests) == 6_796  # rate 11.3267 req/s in that 10-minute window
    assert requests == load_trace("servegen-m-small:0", seed=1, start_s=337_800.0, duration_s=600.0)
    assert all(0.0 <= r.arrival_s < 600.0 for r in requests)


@pytest.mark.parametrize("name", ["servegen-m-small:999", "servegen-m-big:1", "servegen-m-mid:x"])
def test_bad_servegen_names_explain_themselves(name: str) -> None:
    real_traces()
    with pytest.raises(UnknownTraceError, match="m-small"):
        load_trace(name)


def test_missing_trace_file_is_a_not_found_error(tmp_path) -> None:
    from tidal.sim.traces import load_azure_llm, load_mooncake, load_servegen_client

    for loader in (load_azure_llm, load_mooncake, load_servegen_client):
        with pytest.raises(TraceNotFoundError, match="nothing.csv"):
            loader(tmp_path / "nothing.csv")


@given(arrivals=arrival_lists, copies=st.integers(1, 5))
def test_superpose_multiplies_the_load_over_the_same_span(arrivals: list[float], copies: int) -> None:
    requests = [LLMRequest(a, prompt_tokens=i + 1, output_tokens=1, request_id=i) for i, a in enumerate(arrivals)]
    stacked = superpose(requests, copies)
    assert len(stacked) == copies * len(requests)
    assert [r.request_id for r in stacked] == list(range(len(stacked)))
    assert [r.arrival_s for r in stacked] == sorted(r.arrival_s for r in stacked)
    span = max(arrivals, default=0.0)
    assert all(0.0 <= r.arrival_s <= span for r in stacked)
    assert sorted(r.prompt_tokens for r in stacked) == sorted(r.prompt_tokens for r in requests for _ in range(copies))
    times = [r.arrival_s for r in stacked]
    assert all(any(t == a for t in times) for a in arrivals), "copy 0 is the trace itself"


def test_superpose_rejects_no_copies() -> None:
    with pytest.raises(ValueError, match="copies"):
        superpose(load_demo_trace(), 0)
