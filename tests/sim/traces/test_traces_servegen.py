"""ServeGen: parsing the rate windows, the parameter mapping, and sampling arrivals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from traces_testkit import real_traces, write

from tidal.sim.traces import (
    EmpiricalTokenSampler,
    LLMRequest,
    RateWindow,
    TraceFormatError,
    load_servegen_client,
    sample_servegen_requests,
)
from tidal.sim.traces.servegen import (
    exact_count_arrivals,
    moments_of_fit,
    renewal_arrivals,
)

FIXED_TOKENS = EmpiricalTokenSampler(np.array([100]), np.array([10]))


def window(dist, shape, rate, *, start=0.0, duration=600.0, scale=None) -> RateWindow:
    if scale is None and dist == "Gamma":
        scale = 1.0 / (shape * rate)
    return RateWindow(start, rate, 1.0, dist, shape, scale or 1.0, duration_s=duration)


def test_real_client_has_two_weeks_of_ten_minute_windows() -> None:
    windows = load_servegen_client(real_traces() / "servegen" / "m-small" / "chunk-0-trace.csv")
    assert len(windows) == 2016  # 14 days * 144 windows
    assert [w.start_s for w in windows] == [600.0 * i for i in range(2016)]
    assert {w.duration_s for w in windows} == {600.0}
    busy = [w for w in windows if w.distribution]
    assert busy[0].start_s == 143400 and busy[0].distribution == "Gamma"
    assert busy[0].expected_requests == 46


def _all_windows(pool: str) -> list[RateWindow]:
    folder = real_traces() / "servegen" / pool
    return [w for p in sorted(folder.glob("chunk-*-trace.csv")) for w in load_servegen_client(p)]


def test_gamma_param1_is_shape_and_param2_scale_on_the_real_data() -> None:
    gamma = [w for w in _all_windows("m-small") if w.distribution == "Gamma"]
    assert len(gamma) > 1000
    cv_ratio = np.array([moments_of_fit(w)[1] / w.cv for w in gamma])
    np.testing.assert_allclose(cv_ratio, 1.0, rtol=1e-6)
    busy = [w for w in gamma if w.expected_requests > 1000]
    mean_times_rate = np.array([moments_of_fit(w)[0] * w.rate_rps for w in busy])
    assert np.median(mean_times_rate) == pytest.approx(1.0, abs=0.01)
    assert np.percentile(mean_times_rate, 5) > 0.98


def test_weibull_fit_only_roughly_matches_recorded_moments() -> None:
    """Documents why 'renewal' mode rescales Weibull gaps to the recorded rate."""
    weibull = [w for w in _all_windows("m-small") if w.distribution == "Weibull"]
    mean_times_rate = np.median([moments_of_fit(w)[0] * w.rate_rps for w in weibull])
    assert 1.0 < mean_times_rate < 1.5


def test_recorded_rates_are_whole_counts_per_window() -> None:
    windows = _all_windows("m-small")
    counts = np.array([w.rate_rps * w.duration_s for w in windows])
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)


def test_sampled_gamma_gaps_have_the_recorded_mean_and_cv() -> None:
    """Renewal gaps of shape param1 rescaled to 1/rate reproduce rate and cv (=1/sqrt(shape))."""
    shape, rate = 0.5, 40.0
    w = window("Gamma", shape, rate)
    gaps = np.diff(renewal_arrivals(w, np.random.default_rng(7)))
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1 / math.sqrt(shape), rel=0.05)


def test_exact_count_reproduces_each_window_count_and_burstiness() -> None:
    w = window("Gamma", 0.25, 50.0, start=1200.0)  # cv 2
    arrivals = exact_count_arrivals(w, np.random.default_rng(3))
    assert len(arrivals) == 30_000
    assert np.all((arrivals >= 1200.0) & (arrivals < 1800.0))
    assert np.all(np.diff(arrivals) >= 0)
    gaps = np.diff(arrivals)
    assert gaps.std() / gaps.mean() == pytest.approx(2.0, rel=0.1)


def test_renewal_mean_rate_matches_window_rate_within_tolerance() -> None:
    rng = np.random.default_rng(11)
    for dist, shape in (("Gamma", 0.8), ("Weibull", 0.6), (None, 1.0)):
        w = window(dist, shape, 5.0)
        counts = [len(renewal_arrivals(w, rng)) for _ in range(40)]
        assert np.mean(counts) / 600.0 == pytest.approx(5.0, rel=0.05), dist


def test_empty_law_with_positive_rate_is_poisson(tmp_path) -> None:
    path = write(tmp_path, "chunk-1-trace.csv", "0,2.0,1.0,,0,0\n600,0,0,,0,0\n")
    windows = load_servegen_client(path)
    requests = sample_servegen_requests(windows, seed=0, token_sampler=FIXED_TOKENS)
    assert len(requests) == 1200
    gaps = np.diff([r.arrival_s for r in requests])
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.1)


def test_sampling_is_reproducible_and_window_local(tmp_path) -> None:
    rows = "".join(f"{600 * i},{1 + i},1.2,Gamma,0.7,0.1\n" for i in range(4))
    windows = load_servegen_client(write(tmp_path, "c.csv", rows))
    first = sample_servegen_requests(windows, seed=5)
    assert first == sample_servegen_requests(windows, seed=5)
    assert first != sample_servegen_requests(windows, seed=6)
    assert len(first) == 600 * (1 + 2 + 3 + 4)
    assert [r.request_id for r in first] == list(range(len(first)))
    # A sub-range draws the same arrivals as the full run, re-based to its start.
    third = sample_servegen_requests(windows, seed=5, start_s=1200.0, duration_s=600.0)
    expected = [r.arrival_s - 1200.0 for r in first if 1200.0 <= r.arrival_s < 1800.0]
    assert [r.arrival_s for r in third] == pytest.approx(expected)


def test_default_tokens_come_from_the_bundled_azure_excerpt(tmp_path) -> None:
    windows = load_servegen_client(write(tmp_path, "c.csv", "0,1.0,1.0,Gamma,1.0,1.0\n"))
    requests = sample_servegen_requests(windows, seed=1)
    assert all(isinstance(r, LLMRequest) and r.prompt_tokens > 0 for r in requests)
    assert 500 < np.median([r.prompt_tokens for r in requests]) < 2000


def test_too_many_requests_is_refused_with_advice(tmp_path) -> None:
    windows = load_servegen_client(write(tmp_path, "c.csv", "0,1000.0,1.0,Gamma,1.0,0.001\n"))
    with pytest.raises(ValueError, match="max_requests"):
        sample_servegen_requests(windows, seed=0, max_requests=1000)


@pytest.mark.parametrize(
    ("row", "column", "expected"),
    [
        ("600,1.0,1.0,Gamma,1.0", None, "6 comma-separated fields"),
        ("600,1.0,1.0,Gamma,1.0,1.0,7", None, "6 comma-separated fields"),
        ("600,fast,1.0,Gamma,1.0,1.0", "rate_req_per_s", "non-negative number"),
        ("600,-1.0,1.0,Gamma,1.0,1.0", "rate_req_per_s", "non-negative"),
        ("600,1.0,nan,Gamma,1.0,1.0", "cv_of_interarrival", "non-negative number"),
        ("600,1.0,1.0,Pareto,1.0,1.0", "iat_distribution", "Gamma, Weibull or empty"),
        ("600,1.0,1.0,Weibull,0,1.0", "param1", "positive Weibull parameter"),
        ("600,1.0,1.0,Gamma,1.0,-2", "param2", "positive Gamma parameter"),
        ("0,1.0,1.0,Gamma,1.0,1.0", "window_start_s", "after the previous one"),
        ("x,1.0,1.0,Gamma,1.0,1.0", "window_start_s", "non-negative number"),
        ("600,1.0,1.0,Gamma,inf,1.0", "param1", "finite number"),
    ],
)
def test_malformed_rows_name_line_and_column(tmp_path, row, column, expected) -> None:
    path = write(tmp_path, "chunk-7-trace.csv", "0,0,0,,0,0\n" + row + "\n")
    with pytest.raises(TraceFormatError) as caught:
        load_servegen_client(path)
    assert str(caught.value).startswith("chunk-7-trace.csv line 2")
    assert caught.value.column == column
    assert expected in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(
    dist=st.sampled_from(["Gamma", "Weibull", None]),
    shape=st.floats(min_value=0.05, max_value=5.0),
    count=st.integers(min_value=0, max_value=3000),
    start=st.integers(min_value=0, max_value=10_000).map(lambda k: 600.0 * k),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_exact_count_arrivals_lie_in_their_window(dist, shape, count, start, seed) -> None:
    w = RateWindow(start, count / 600.0, 1.0, dist, shape, 1.0)
    arrivals = exact_count_arrivals(w, np.random.default_rng(seed))
    assert len(arrivals) == count
    assert np.all(arrivals >= start) and np.all(arrivals < start + 600.0)
    assert np.all(np.diff(arrivals) >= 0)


@settings(max_examples=40, deadline=None)
@given(
    dist=st.sampled_from(["Gamma", "Weibull", None]),
    shape=st.floats(min_value=0.2, max_value=5.0),
    rate=st.floats(min_value=0.01, max_value=20.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_renewal_arrivals_lie_in_their_window(dist, shape, rate, seed) -> None:
    w = RateWindow(600.0, rate, 1.0, dist, shape, 1.0)
    arrivals = renewal_arrivals(w, np.random.default_rng(seed))
    assert np.all(arrivals >= 600.0) and np.all(arrivals < 1200.0)
    assert np.all(np.diff(arrivals) >= 0)
