"""spec.slo's floor on the learned keep-alive window (KeepAlivePolicy.slo_tail_percentile)."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tidal.core.serverlessfunction import slo_tail_percentile
from tidal.policies.keepalive import (
    HISTOGRAM_BIN_S,
    WINDOW_MARGIN,
    IdleHistogram,
    KeepAlivePolicy,
    KeepAliveWindow,
    keepalive_window,
)

BINS = 240

histograms = st.builds(
    lambda bins, oob: IdleHistogram(
        counts=tuple(bins.get(i, 0) for i in range(BINS)), out_of_range=oob
    ),
    st.dictionaries(st.integers(0, BINS - 1), st.integers(1, 60), min_size=1, max_size=12),
    st.integers(0, 6),
)
costs = st.sampled_from([None, 30.0, 600.0, 3600.0])
holds = st.sampled_from([0.0, 60.0])
percentiles = st.floats(1.0, 99.9, allow_nan=False)


def window(h: IdleHistogram, cost: float | None, hold: float, pct: float | None) -> KeepAliveWindow:
    return keepalive_window(h, cold_start_cost_s=cost, hold_s=hold, slo_tail_percentile=pct)


@settings(max_examples=300, deadline=None)
@given(histograms, costs, holds, percentiles)
def test_the_floor_never_shortens_the_window(h, cost, hold, pct) -> None:
    plain, floored = window(h, cost, hold, None), window(h, cost, hold, pct)
    assert floored.end_s >= plain.end_s - 1e-9
    assert floored.prewarm_s <= plain.prewarm_s + 1e-9  # the window only widens
    assert floored.mode == plain.mode


@settings(max_examples=300, deadline=None)
@given(histograms, costs, holds, percentiles, percentiles)
def test_the_window_grows_with_the_percentile(h, cost, hold, p1, p2) -> None:
    low, high = sorted((p1, p2))
    assert window(h, cost, hold, high).end_s >= window(h, cost, hold, low).end_s - 1e-9


def _misses(h: IdleHistogram, w: KeepAliveWindow, hold: float) -> int:
    """Recorded idle times that end in a cold start under ``w``, as the floor accounts them (bins
    while unloaded before a pre-warm, bins past the end, out-of-range ones)."""
    bin_s = h.bin_s
    if w.mode == "histogram":
        head_bin = round(w.prewarm_s / (1.0 - WINDOW_MARGIN) / bin_s)
        tail_bin = round(w.end_s / (1.0 + WINDOW_MARGIN) / bin_s) - 1
    else:
        head_bin, tail_bin = 0, round(w.end_s / bin_s) - 1
    gap = sum(h.counts[math.ceil(hold / bin_s):head_bin]) if head_bin > 0 else 0
    return gap + sum(h.counts[tail_bin + 1:]) + h.out_of_range


@settings(max_examples=300, deadline=None)
@given(histograms, costs, holds, percentiles)
@example(h=IdleHistogram(counts=tuple({0: 1, 1: 20}.get(i, 0) for i in range(BINS)), out_of_range=1),
         cost=None, hold=0.0, pct=91.0)  # the gap before the pre-warm plus the out-of-range idle time
def test_at_most_the_slo_budget_of_idle_times_end_in_a_cold_start(h, cost, hold, pct) -> None:
    w = window(h, cost, hold, pct)
    budget = (100.0 - pct) / 100.0 * h.total
    if w.mode not in ("histogram", "standard") or h.out_of_range > budget:
        return  # out-of-range idle times miss whatever the window: the floor cannot help
    assert _misses(h, w, hold) <= budget + 1e-9


@settings(max_examples=200, deadline=None)
@given(histograms, st.floats(0.0, 10.0), st.floats(0.0, 10.0), percentiles)
def test_no_effect_when_the_cold_start_fits_the_target(h, cold_start_s, latency_s, pct) -> None:
    floor = slo_tail_percentile(latency_s, pct, cold_start_s)
    policy = KeepAlivePolicy(cold_start_s=cold_start_s, slo_tail_percentile=floor)
    plain = KeepAlivePolicy(cold_start_s=cold_start_s)
    if cold_start_s <= latency_s:
        assert floor is None and policy.learn(h) == plain.learn(h)
    else:
        assert floor == pct


def test_a_rare_long_idle_time_is_kept_for_under_the_slo() -> None:
    """Idle times of 2 minutes, one in ten of 20 minutes: the cost-chosen end for a large instance
    lets the long ones cold-start; at p99 the window must cover them, at p85 it need not."""
    counts = [0] * BINS
    counts[2], counts[20] = 90, 10
    h = IdleHistogram(counts=tuple(counts))
    cost = 600.0 * 1280.0 / (16 * 1024.0)  # a 16 GiB instance at the default price
    plain = window(h, cost, 60.0, None)
    assert plain.end_s < 20 * HISTOGRAM_BIN_S
    assert window(h, cost, 60.0, 99.0).end_s >= 21 * HISTOGRAM_BIN_S
    assert "spec.slo" in window(h, cost, 60.0, 99.0).message
    assert window(h, cost, 60.0, 85.0).end_s == plain.end_s


def test_an_invalid_percentile_names_the_field() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"spec\.slo\.percentile"):
        KeepAlivePolicy(slo_tail_percentile=100.0)
