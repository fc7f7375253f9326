"""Histogram buckets -> pauses: reuse gaps ended at their bucket's upper edge, idle-before-evict
times right-censored at their lower edge, and what that does to the distribution."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.interface import KvResidency
from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S, bucket_counts, learn_residency
from tidal.predictors.pauses import SessionPausePredictor

BOUNDS = (*VLLM_RESIDENCY_BUCKETS_S, math.inf)
EMPTY = tuple((le, 0.0) for le in BOUNDS)


def _hist(values: dict[float, float]) -> tuple[tuple[float, float], ...]:
    """Cumulative buckets holding ``values`` (bucket upper bound -> count)."""
    total, out = 0.0, []
    for le in BOUNDS:
        total += values.get(le, 0.0)
        out.append((le, total))
    return tuple(out)


def test_bucket_counts_undo_the_cumulation() -> None:
    assert bucket_counts(((1.0, 2.0), (5.0, 2.0), (math.inf, 7.0))) == [
        (0.0, 1.0, 2.0), (1.0, 5.0, 0.0), (5.0, math.inf, 5.0)]


def test_gaps_are_ended_at_the_upper_edge_and_idle_times_censored_at_the_lower() -> None:
    p = SessionPausePredictor()
    ended, censored = learn_residency(p, 100.0, KvResidency(_hist({2.0: 10.0, math.inf: 1.0}),
                                                            _hist({60.0: 4.0}), 60.0))
    assert (ended, censored) == (10.0, 5.0)  # the +Inf gap counts as censored (longer than 30 min)
    assert p.ended_weight() == pytest.approx(10.0) and p.censored_weight() == pytest.approx(5.0)
    # Ten gaps in (1, 2] placed at 2 s: the learnt CDF rises through the bin holding 2 s, not below 1 s.
    assert p.cdf(0.9) < 0.05 < 0.5 < p.cdf(2.3)


def test_a_weight_scales_what_is_learnt() -> None:
    one, half = SessionPausePredictor(), SessionPausePredictor()
    residency = KvResidency(_hist({5.0: 8.0}), _hist({30.0: 2.0}), 60.0)
    learn_residency(one, 0.0, residency)
    learn_residency(half, 0.0, residency, weight=0.5)
    assert half.ended_weight() == pytest.approx(one.ended_weight() / 2)
    assert half.censored_weight() == pytest.approx(one.censored_weight() / 2)


@given(st.floats(0.5, 1000.0), st.sampled_from(VLLM_RESIDENCY_BUCKETS_S[6:]))
def test_censored_pauses_never_raise_the_cdf(weight: float, idle_le: float) -> None:
    """Blocks evicted after idling say only that pauses can be long: the CDF can only fall."""
    gaps = KvResidency(_hist({1.0: 50.0, 5.0: 20.0}), EMPTY, 60.0)
    plain, censored = SessionPausePredictor(), SessionPausePredictor()
    learn_residency(plain, 0.0, gaps)
    learn_residency(censored, 0.0, gaps)
    learn_residency(censored, 0.0, KvResidency(EMPTY, _hist({idle_le: weight}), 60.0))
    for x in (0.5, 1.0, 3.0, 10.0, 60.0, 600.0):
        assert censored.cdf_function()(x) <= plain.cdf_function()(x) + 1e-12


def test_censored_pauses_survive_the_state_round_trip_and_old_states_still_load() -> None:
    p = SessionPausePredictor()
    learn_residency(p, 10.0, KvResidency(_hist({2.0: 30.0}), _hist({120.0: 7.0}), 60.0))
    back = SessionPausePredictor.from_state(p.to_state())
    assert back.censored_weight() == pytest.approx(7.0)
    assert back.cdf_function()(3.0) == pytest.approx(p.cdf_function()(3.0))
    old = p.to_state()
    del old["censored"]  # a state written before censored pauses were stored
    assert SessionPausePredictor.from_state(old).censored_weight() == 0.0
