"""The fluid FIFO queue: conservation, bounds and monotonicity (hypothesis), and worked cases."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from tidal.bench.fluid_queue import fluid_step

rates = st.floats(0, 500, allow_nan=False)
backlogs = st.floats(0, 1e5, allow_nan=False)
ttfts = st.floats(0, 10, allow_nan=False)


def test_enough_capacity_and_no_backlog_meets_every_request() -> None:
    out = fluid_step(10.0, 12.0, 0.0, 1.0, 60.0)
    assert out.arrived == out.met == 600.0 and out.backlog == 0.0


def test_sustained_overload_meets_only_until_the_queue_passes_the_target() -> None:
    # 2 req/s over capacity, the target allows a queue of 10 requests: met for the first 5 s
    out = fluid_step(12.0, 10.0, 0.0, 1.0, 60.0)
    assert out.met == pytest.approx(12.0 * 5.0) and out.backlog == pytest.approx(120.0)


def test_a_backlog_drains_before_requests_meet_the_target_again() -> None:
    # 100 queued, 5 req/s spare, limit 10: 18 s to drain to the limit, then met
    out = fluid_step(5.0, 10.0, 100.0, 1.0, 60.0)
    assert out.met == pytest.approx(5.0 * 42.0) and out.backlog == 0.0


def test_no_capacity_meets_nothing_and_queues_everything() -> None:
    out = fluid_step(3.0, 0.0, 7.0, 1.0, 60.0)
    assert out.met == 0.0 and out.backlog == 187.0


def test_requests_that_would_wait_past_the_timeout_leave() -> None:
    out = fluid_step(12.0, 10.0, 0.0, 1.0, 60.0, abandon_s=5.0)
    assert out.backlog == pytest.approx(50.0)
    assert fluid_step(3.0, 0.0, 7.0, 1.0, 60.0, abandon_s=30.0).backlog == 0.0


@given(rates, rates, backlogs, ttfts)
def test_met_within_arrivals_and_backlog_conserved(rate: float, capacity: float, backlog: float, ttft: float) -> None:
    out = fluid_step(rate, capacity, backlog, ttft, 60.0)
    assert 0.0 <= out.met <= out.arrived * (1 + 1e-12) + 1e-9
    assert out.backlog >= 0.0
    assert out.backlog >= backlog + (rate - capacity) * 60.0 - 1e-6 * max(1.0, backlog)


@given(rates, rates, backlogs, ttfts, st.floats(0, 600, allow_nan=False))
def test_the_carried_backlog_waits_at_most_the_timeout(rate: float, capacity: float, backlog: float, ttft: float,
                                                        abandon: float) -> None:
    out = fluid_step(rate, capacity, backlog, ttft, 60.0, abandon_s=abandon)
    assert 0.0 <= out.backlog <= capacity * abandon + 1e-9


@given(rates, rates, st.floats(0, 100, allow_nan=False), backlogs, ttfts)
def test_more_capacity_never_meets_fewer(rate: float, capacity: float, extra: float, backlog: float,
                                         ttft: float) -> None:
    low, high = fluid_step(rate, capacity, backlog, ttft, 60.0), fluid_step(rate, capacity + extra, backlog, ttft, 60.0)
    assert high.met >= low.met - 1e-6 * max(1.0, low.met)
    assert high.backlog <= low.backlog + 1e-9


@given(rates, rates, backlogs, st.floats(0, 1e4, allow_nan=False), ttfts)
def test_a_larger_backlog_never_meets_more(rate: float, capacity: float, backlog: float, extra: float,
                                           ttft: float) -> None:
    assert (fluid_step(rate, capacity, backlog + extra, ttft, 60.0).met
            <= fluid_step(rate, capacity, backlog, ttft, 60.0).met + 1e-6)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        fluid_step(-1.0, 1.0, 0.0, 1.0, 60.0)
