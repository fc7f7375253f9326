"""Bucket arithmetic behind SLO attainment and the percentile latencies (no Prometheus needed).

The real-Prometheus tests (tests/operator/test_slo_attainment_real.py) check the same functions
against Prometheus' own ``histogram_quantile`` and the served data.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.support.vllm_exporter import (
    SGLANG_TTFT_BUCKETS_S,
    VLLM_TTFT_BUCKETS_S,
    UniformLatency,
    interpolated_quantile,
)
from tidal.controllers.slo_attainment import (
    Attainment,
    fraction_within,
    histogram_quantile,
    normalise_buckets,
    pool_attainment,
    total_observations,
    workload_attainment,
)

INF = math.inf
# 10 observations: 2 at or below 0.1 s, 6 at or below 0.25 s, 9 at or below 0.5 s, one beyond.
HAND = ((0.1, 2.0), (0.25, 6.0), (0.5, 9.0), (INF, 10.0))


def cumulative(bounds, counts_per_bucket):
    """Cumulative buckets (with +Inf) from per-bucket counts (the last one is the +Inf bucket's own)."""
    out, running = [], 0.0
    for bound, count in zip((*bounds, INF), counts_per_bucket):
        running += count
        out.append((bound, running))
    return tuple(out)


# Bucket rates are counts over a window of seconds: never subnormal (5e-324 loses every digit the
# interpolation needs, which is a property of the floats, not of the code).
histograms = st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False, allow_subnormal=False),
                      min_size=4, max_size=8).map(
    lambda counts: cumulative((0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)[: len(counts) - 1], counts))


def test_hand_computed_fractions() -> None:
    assert fraction_within(0.1, HAND) == pytest.approx(0.2)
    assert fraction_within(0.05, HAND) == pytest.approx(0.1)  # first bucket interpolates from 0 s
    assert fraction_within(0.175, HAND) == pytest.approx(0.4)  # half way through (0.1, 0.25]: 2 + 4/2
    assert fraction_within(0.5, HAND) == pytest.approx(0.9)
    assert fraction_within(30.0, HAND) == pytest.approx(0.9)  # beyond the last finite bound: a lower bound
    assert fraction_within(0.0, HAND) == 0.0 and fraction_within(-1.0, HAND) == 0.0


def test_hand_computed_quantiles_match_prometheus_rules() -> None:
    assert histogram_quantile(0.5, HAND) == pytest.approx(0.1 + 0.15 * 3 / 4)
    assert histogram_quantile(0.1, HAND) == pytest.approx(0.05)
    assert histogram_quantile(0.95, HAND) == 0.5  # rank in the +Inf bucket: the highest finite bound
    assert histogram_quantile(-0.1, HAND) == -INF and histogram_quantile(1.1, HAND) == INF


def test_no_observations_is_none_never_zero() -> None:
    empty = ((0.1, 0.0), (0.5, 0.0), (INF, 0.0))
    assert fraction_within(0.2, empty) is None
    assert math.isnan(histogram_quantile(0.9, empty))
    assert pool_attainment(empty, empty, 0.2, 0.05) == Attainment(None, None)
    assert Attainment(None, None).combined is None


def test_unusable_histograms() -> None:
    assert fraction_within(0.2, ((0.1, 1.0), (0.5, 2.0))) is None  # no +Inf bucket
    assert fraction_within(0.2, ((INF, 3.0),)) is None  # a single bucket
    assert fraction_within(0.2, ((0.1, math.nan), (INF, 1.0))) is None
    assert total_observations(HAND) == 10.0 and total_observations(()) is None
    with pytest.raises(ValueError, match="NaN"):
        fraction_within(math.nan, HAND)


def test_equal_bounds_are_merged_and_counts_made_monotonic() -> None:
    """'1' and '1.0' (two exposition formats in one pool) are one bound; float noise cannot lower a count."""
    assert normalise_buckets([(1.0, 2.0), (INF, 5.0), (1.0, 3.0), (INF, 5.0)]) == ((1.0, 5.0), (INF, 10.0))
    assert normalise_buckets([(0.1, 4.0), (0.2, 3.9999), (INF, 5.0)]) == ((0.1, 4.0), (0.2, 4.0), (INF, 5.0))


@pytest.mark.parametrize("bounds", [VLLM_TTFT_BUCKETS_S, SGLANG_TTFT_BUCKETS_S])
@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99])
def test_quantile_agrees_with_the_test_oracle(bounds, q) -> None:
    """The oracle the real-Prometheus tests use mimics histogram_quantile independently."""
    dist = UniformLatency(0.1, 0.5)
    filled = tuple((b, 1000 * dist.cdf(b)) for b in bounds) + ((INF, 1000.0),)
    assert histogram_quantile(q, filled) == pytest.approx(interpolated_quantile(bounds, dist.cdf, q))


@pytest.mark.parametrize("target", [0.1, 0.2, 0.3, 0.45, 0.5])
def test_fraction_is_exact_for_a_distribution_uniform_inside_each_bucket(target) -> None:
    """TTFT uniform on 0.1-0.5 s fills vLLM's buckets (0.1, 0.25] and (0.25, 0.5] uniformly."""
    dist = UniformLatency(0.1, 0.5)
    filled = tuple((b, 1000 * dist.cdf(b)) for b in VLLM_TTFT_BUCKETS_S) + ((INF, 1000.0),)
    assert fraction_within(target, filled) == pytest.approx(dist.cdf(target))


@given(histograms, st.floats(min_value=-1, max_value=10), st.floats(min_value=-1, max_value=10))
def test_fraction_is_monotone_in_the_target_and_within_0_1(buckets, a, b) -> None:
    low, high = sorted((a, b))
    f_low, f_high = fraction_within(low, buckets), fraction_within(high, buckets)
    if buckets[-1][1] == 0:
        assert f_low is None and f_high is None
        return
    assert 0.0 <= f_low <= f_high <= 1.0


@given(histograms, st.floats(min_value=0.01, max_value=0.99))
def test_fraction_inverts_the_quantile(buckets, q) -> None:
    """Inside the finite buckets the fraction at the q-quantile is q: both interpolate the same way."""
    total = buckets[-1][1]
    assume(total > 0 and buckets[-2][1] >= q * total * (1 + 1e-9))  # the rank is not in the +Inf bucket
    quantile = histogram_quantile(q, buckets)
    assert fraction_within(quantile, buckets) == pytest.approx(q, abs=1e-9)


@given(histograms, st.floats(min_value=1e-6, max_value=1), st.floats(min_value=1e-6, max_value=1))
def test_quantile_is_monotone_in_q(buckets, a, b) -> None:
    """For 0 < q <= 1 (spec.slo.percentile is strictly between 0 and 100)."""
    assume(buckets[-1][1] > 0)
    low, high = sorted((a, b))
    assert histogram_quantile(low, buckets) <= histogram_quantile(high, buckets)


def test_combined_is_the_minimum_and_ignores_unset_targets() -> None:
    assert Attainment(0.95, 0.8).combined == 0.8
    assert Attainment(0.95, None).combined == 0.95
    got = pool_attainment(HAND, HAND, 0.1, None)
    assert got.ttft == pytest.approx(0.2) and got.tpot is None and got.combined == pytest.approx(0.2)


def test_workload_attainment_is_the_worst_pool_that_saw_requests() -> None:
    pools = {"prefill": Attainment(0.97, None), "decode": Attainment(None, 0.91), "idle": Attainment(None, None)}
    assert workload_attainment(pools) == 0.91
    assert workload_attainment({"idle": Attainment()}) is None
    assert workload_attainment({}) is None
