"""The KV residency guard: histogram increments that are not cumulative counts are never learnt."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.guards import kv_residency_problem
from tidal.policies.interface import KvResidency

BOUNDS = (0.5, 1.0, 2.0, 5.0, math.inf)


def _cumulative(counts: list[float]) -> tuple[tuple[float, float], ...]:
    total, out = 0.0, []
    for le, c in zip(BOUNDS, counts):
        total += c
        out.append((le, total))
    return tuple(out)


counts = st.lists(st.floats(0, 1e6), min_size=len(BOUNDS), max_size=len(BOUNDS))


@given(counts, counts, st.floats(1e-3, 1e4))
def test_cumulative_counts_pass(reuse: list[float], idle: list[float], window_s: float) -> None:
    assert kv_residency_problem(KvResidency(_cumulative(reuse), _cumulative(idle), window_s)) is None


@given(counts, st.integers(0, len(BOUNDS) - 1), st.sampled_from([math.nan, math.inf, -math.inf, -1.0]))
def test_a_non_finite_or_negative_count_is_named(reuse: list[float], at: int, bad: float) -> None:
    broken = list(_cumulative(reuse))
    broken[at] = (broken[at][0], bad)
    problem = kv_residency_problem(KvResidency(tuple(broken), _cumulative(reuse), 60.0))
    assert problem is not None and "kv_block_reuse_gap_seconds" in problem


@given(st.lists(st.floats(1, 1e6), min_size=len(BOUNDS), max_size=len(BOUNDS)), st.integers(1, len(BOUNDS) - 1),
       st.floats(1e-3, 0.999))
def test_a_falling_cumulative_count_is_named(idle: list[float], at: int, fall: float) -> None:
    broken = list(_cumulative(idle))
    before = broken[at - 1][1]
    broken[at] = (broken[at][0], before * (1 - fall))
    problem = kv_residency_problem(KvResidency(_cumulative(idle), tuple(broken), 60.0))
    assert problem is not None and "falls" in problem and "idle_before_evict" in problem


def test_bounds_must_increase_up_to_inf_and_the_window_be_positive() -> None:
    good = _cumulative([1.0] * len(BOUNDS))
    assert "+Inf" in (kv_residency_problem(KvResidency(good[:-1], good, 60.0)) or "")
    assert "not strictly increasing" in (kv_residency_problem(KvResidency(good[::-1], good, 60.0)) or "")
    assert "no buckets" in (kv_residency_problem(KvResidency((), good, 60.0)) or "")
    for window in (0.0, -1.0, math.nan, math.inf):
        assert "window" in (kv_residency_problem(KvResidency(good, good, window)) or "")
