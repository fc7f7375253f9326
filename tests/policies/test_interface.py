"""PoolObservation.arrival_rate_rps: arrivals from what engines export (completions + change in flight)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.interface import PoolObservation


def test_arrivals_are_completions_plus_the_growth_in_flight() -> None:
    assert PoolObservation(2, request_rate_rps=10.0, in_flight_change_rps=5.0).arrival_rate_rps == 15.0
    assert PoolObservation(2, request_rate_rps=10.0, in_flight_change_rps=-4.0).arrival_rate_rps == 6.0


def test_a_backlog_draining_faster_than_completions_is_zero_arrivals_not_negative() -> None:
    assert PoolObservation(2, request_rate_rps=3.0, in_flight_change_rps=-9.0).arrival_rate_rps == 0.0


@pytest.mark.parametrize("change", [None, math.nan, math.inf, -math.inf])
def test_unknown_change_falls_back_to_completions(change) -> None:
    assert PoolObservation(2, request_rate_rps=7.0, in_flight_change_rps=change).arrival_rate_rps == 7.0


@pytest.mark.parametrize("done", [None, -1.0, math.nan])
def test_unknown_or_garbage_completions_stay_as_they_are(done) -> None:
    # the guards treat them as unknown (hold); the estimate never turns garbage into a usable rate
    value = PoolObservation(2, request_rate_rps=done, in_flight_change_rps=3.0).arrival_rate_rps
    assert value is None if done is None else (value == done or math.isnan(value))


@given(st.floats(0, 1e6), st.floats(-1e6, 1e6))
def test_never_negative_and_monotone_in_the_change(done, change) -> None:
    low = PoolObservation(1, request_rate_rps=done, in_flight_change_rps=change).arrival_rate_rps
    high = PoolObservation(1, request_rate_rps=done, in_flight_change_rps=change + 1.0).arrival_rate_rps
    assert low is not None and high is not None and 0.0 <= low <= high
