"""The Prometheus adapter against a real Prometheus scraping real exporters under a known load.

Tolerances (why a correct adapter lands inside them and a wrong one does not):

* Rates are compared with what was served: the slope of the counters' raw samples in the same
  window at the same evaluation time (``PrometheusServer.counter_slope``, no rate(), no adapter).
  rate() estimates the same slope, extrapolated to the window's edges by up to half a scrape
  interval: <= 5 % of a 5 s window of 0.5 s scrapes. ``RATE_RTOL`` = 8 %. A wrong aggregation (one
  pod only, double counting both spellings or both TPOT names) is off by >= 25 %. The nominal load
  (requests every 1/rate seconds) is only a sanity check (``LOAD_RTOL``): on a busy 2-core machine
  the replayer driving the exporters is starved unevenly and serves up to ~25 % less in a window.
* Quantiles: ``histogram_quantile`` interpolates linearly inside the bucket holding the
  rank. The reference is what it returns for a histogram filled exactly by the known
  latency distribution (``interpolated_quantile``); that differs from the true quantile
  by the bucket interpolation error (reported, bounded by the bucket width). What remains
  is the empirical CDF of the ~100-200 requests in the window versus the true CDF: the
  latencies follow a Weyl sequence, whose runs of N >= 100 draws stay within ~3 % of
  the CDF, plus a request or two straddling the window edges. ``CDF_TOL`` = 6 %, turned
  into seconds through the bucket's width and probability mass.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from tests.operator.conftest import (
    CUSTOM_DEPLOYMENT_LABEL,
    PROMPT_TOKENS_CYCLE,
    TPOT,
    TTFT,
    WINDOW_S,
    Fleet,
    eventually,
)
from tests.support.vllm_exporter import UniformLatency, interpolated_quantile
from tidal.operator.prometheus import OBSERVATION_FIELDS, FailureKind, PrometheusMetrics, PrometheusSettings
from tidal.operator.promql import SGLANG, LabelScheme, dialect_named
from tidal.policies.interface import PoolObservation

pytestmark = pytest.mark.prometheus

RATE_RTOL = 0.08
LOAD_RTOL = 0.5
CDF_TOL = 0.06
PERCENTILES = (50.0, 90.0, 99.0)
GAUGE_ATOL = 1e-9
"""Gauges are served and stored as float64 and only summed or averaged: exact up to rounding."""

POOLS = (
    # (namespace, deployment, pool, dialect)
    pytest.param("team-a", "llama", "unified", "vllm", id="vllm-new-names-colon"),
    pytest.param("team-a", "llama-old", "unified", "vllm", id="vllm-old-names-underscore"),
    pytest.param("team-b", "qwen", "prefill", "sglang", id="sglang-new-names-colon"),
    pytest.param("team-b", "qwen-old", "decode", "sglang", id="sglang-old-names-underscore"),
)


@pytest.fixture(scope="module")
def adapter(engine_fleet: Fleet) -> PrometheusMetrics:
    return PrometheusMetrics(PrometheusSettings(url=engine_fleet.prometheus.url, query_timeout_s=5.0))


def quantile_tolerance_s(bounds: tuple[float, ...], dist: UniformLatency, q: float) -> float:
    """CDF_TOL expressed in seconds inside the bucket that holds quantile ``q``."""
    lower = 0.0
    for bound in bounds:
        if dist.cdf(bound) >= q:
            mass = dist.cdf(bound) - dist.cdf(lower)
            return CDF_TOL * (bound - lower) / mass
        lower = bound
    raise AssertionError("quantile beyond the last finite bucket")


def read(adapter: PrometheusMetrics, namespace: str, deployment: str, pool: str, dialect: str,
         percentile: float = 90.0, at_s: float | None = None):
    return adapter.read_pool(namespace=namespace, deployment=deployment, pool=pool, dialect=dialect,
                             window_s=WINDOW_S, percentile=percentile, at_s=time.time() if at_s is None else at_s)


def served(fleet: Fleet, counters: tuple[str, ...], at_s: float, **matchers: str) -> float:
    """What the matched pods served per second in the window ending at ``at_s`` (raw samples)."""
    return fleet.prometheus.counter_slope(counters, matchers, WINDOW_S, at_s)


def test_fleet_serves_both_spellings(engine_fleet: Fleet) -> None:
    """Precondition for the spelling tests: Prometheus really holds vllm:x for some pods and vllm_x for others."""
    prom = engine_fleet.prometheus
    assert prom.query('count({__name__="vllm:num_requests_running", tidal_dev_deployment="llama"})')
    assert not prom.query('count({__name__="vllm_num_requests_running", tidal_dev_deployment="llama"})')
    assert prom.query('count({__name__="vllm_gpu_cache_usage_perc", tidal_dev_deployment="llama-old"})')
    assert not prom.query('count({__name__="vllm:gpu_cache_usage_perc", tidal_dev_deployment="llama-old"})')
    assert prom.query('count({__name__="sglang:num_queue_reqs", tidal_dev_deployment="qwen"})')
    assert prom.query('count({__name__="sglang_num_queue_reqs", tidal_dev_deployment="qwen-old"})')


@pytest.mark.parametrize(("namespace", "deployment", "pool", "dialect"), POOLS)
def test_rates_and_gauges_match_served_load(adapter, engine_fleet: Fleet, namespace, deployment, pool,
                                            dialect) -> None:
    pods = engine_fleet.pods_of(deployment)

    names = dialect_named(dialect)
    where = {"namespace": namespace, "tidal_dev_deployment": deployment, "tidal_dev_pool": pool}

    def every_pod_counted() -> tuple[float, Any, float]:
        # On starved CPUs a pod's scrapes can stall past the 5 s window, so rate() has fewer than two
        # of its samples and drops it for one read, or covers only part of the window and
        # extrapolates short of the samples' own slope: read again until each pod has a rate that
        # covers the window (a read whose rate never matches the served load fails at the deadline).
        at = time.time()
        read_now = read(adapter, namespace, deployment, pool, dialect, at_s=at)
        assert read_now.complete, read_now.message()
        assert all(read_now.pods.get(p.pod) and read_now.pods[p.pod].request_rate_rps is not None for p in pods)
        served_now = served(engine_fleet, names.request_count, at, **where)
        assert read_now.request_rate_rps == pytest.approx(served_now, rel=RATE_RTOL)
        return at, read_now, served_now

    at, metrics, served_rps = eventually(every_pod_counted, timeout_s=30.0)
    nominal_rps = sum(p.rate_rps for p in pods)
    mean_prompt = sum(PROMPT_TOKENS_CYCLE) / len(PROMPT_TOKENS_CYCLE)
    assert served_rps == pytest.approx(nominal_rps, rel=LOAD_RTOL), "the replayed load is not flowing"
    assert metrics.request_rate_rps == pytest.approx(served_rps, rel=RATE_RTOL)
    assert metrics.prompt_tokens_rps == pytest.approx(served(engine_fleet, names.prompt_tokens, at, **where),
                                                      rel=RATE_RTOL)
    assert metrics.prompt_tokens_rps == pytest.approx(served_rps * mean_prompt, rel=RATE_RTOL)
    assert metrics.output_tokens_rps == pytest.approx(served(engine_fleet, names.output_tokens, at, **where),
                                                      rel=RATE_RTOL)

    assert metrics.running_requests == pytest.approx(sum(p.gauges.running_requests for p in pods), abs=GAUGE_ATOL)
    assert metrics.waiting_requests == pytest.approx(sum(p.gauges.waiting_requests for p in pods), abs=GAUGE_ATOL)
    mean_kv = sum(p.gauges.kv_cache_usage_ratio for p in pods) / len(pods)
    assert metrics.kv_cache_usage_ratio == pytest.approx(mean_kv, abs=GAUGE_ATOL)
    # The busiest quarter window's arrivals: with the gauges still, its completions, about the mean.
    assert served_rps * (1 - LOAD_RTOL) <= metrics.peak_request_rate_rps <= served_rps * 4
    # The gauges hold still, so nothing piled up: arrivals are the completions.
    assert metrics.in_flight_change_rps == pytest.approx(0.0, abs=GAUGE_ATOL)
    observed = metrics.observe(PoolObservation(ready_replicas=len(pods)))
    assert observed.arrival_rate_rps == pytest.approx(metrics.request_rate_rps)

    assert set(metrics.pods) == {p.pod for p in pods}
    for spec in pods:
        pod = metrics.pods[spec.pod]
        assert pod.request_rate_rps == pytest.approx(served(engine_fleet, names.request_count, at, **where,
                                                            pod=spec.pod), rel=RATE_RTOL)
        assert pod.running_requests == pytest.approx(spec.gauges.running_requests, abs=GAUGE_ATOL)
        assert pod.waiting_requests == pytest.approx(spec.gauges.waiting_requests, abs=GAUGE_ATOL)
        assert pod.kv_cache_usage_ratio == pytest.approx(spec.gauges.kv_cache_usage_ratio, abs=GAUGE_ATOL)


@pytest.mark.parametrize("percentile", PERCENTILES)
@pytest.mark.parametrize(("namespace", "deployment", "pool", "dialect"), POOLS)
def test_latency_percentiles_match_served_histograms(adapter, engine_fleet: Fleet, namespace, deployment, pool,
                                                     dialect, percentile) -> None:
    flavour = engine_fleet.pods_of(deployment)[0].flavour
    q = percentile / 100
    metrics = read(adapter, namespace, deployment, pool, dialect, percentile=percentile)
    assert metrics.complete, metrics.message()

    expected_ttft = interpolated_quantile(flavour.ttft_buckets_s, TTFT.cdf, q)
    expected_tpot = interpolated_quantile(flavour.itl_buckets_s, TPOT.cdf, q)
    ttft_tol = quantile_tolerance_s(flavour.ttft_buckets_s, TTFT, q)
    tpot_tol = quantile_tolerance_s(flavour.itl_buckets_s, TPOT, q)
    assert metrics.ttft_s == pytest.approx(expected_ttft, abs=ttft_tol), (
        f"ttft p{percentile}: got {metrics.ttft_s}, histogram of the served data gives {expected_ttft} "
        f"(true quantile {TTFT.quantile(q)})"
    )
    assert metrics.tpot_s == pytest.approx(expected_tpot, abs=tpot_tol), (
        f"tpot p{percentile}: got {metrics.tpot_s}, histogram of the served data gives {expected_tpot} "
        f"(true quantile {TPOT.quantile(q)})"
    )


def test_percentile_changes_the_answer(adapter) -> None:
    """p50 and p99 differ by far more than the tolerance, so the percentile really reaches the query."""
    p50 = read(adapter, "team-a", "llama", "unified", "vllm", percentile=50.0)
    p99 = read(adapter, "team-a", "llama", "unified", "vllm", percentile=99.0)
    assert p99.ttft_s - p50.ttft_s > 0.15
    assert p99.tpot_s - p50.tpot_s > 0.02


def test_idle_engine_reads_zero_rates_but_no_latency(adapter) -> None:
    """Zero is reported only where Prometheus says zero; an empty histogram is unknown, not 0 s."""
    metrics = read(adapter, "team-a", "idle", "unified", "vllm")
    assert metrics.request_rate_rps == 0.0
    assert metrics.output_tokens_rps == 0.0
    assert metrics.running_requests == 0.0
    assert metrics.ttft_s is None and metrics.tpot_s is None
    kinds = {f.field: f.kind for f in metrics.failures}
    assert kinds == {"ttft_s": FailureKind.NOT_A_NUMBER, "tpot_s": FailureKind.NOT_A_NUMBER}
    assert not metrics.complete and metrics.prometheus_reachable


def test_unknown_workload_is_all_none_never_zero(adapter) -> None:
    metrics = read(adapter, "team-a", "does-not-exist", "unified", "vllm")
    assert all(v is None for v in metrics.observation_fields().values())
    assert metrics.pods == {}
    assert {f.kind for f in metrics.failures} == {FailureKind.EMPTY}
    # Every field fails but kv_residency: opt-in (vLLM --kv-cache-metrics), so absent is not a failure.
    assert {f.field for f in metrics.failures} == set(OBSERVATION_FIELDS) - {"kv_residency"}
    assert metrics.reason() == "EmptyResult"
    assert metrics.prometheus_reachable


def test_wrong_dialect_finds_nothing(adapter) -> None:
    """An SGLang pool read as vLLM matches no series; nothing is invented."""
    metrics = read(adapter, "team-b", "qwen", "prefill", "vllm")
    assert all(v is None for v in metrics.observation_fields().values())


def test_label_names_are_configurable(engine_fleet: Fleet) -> None:
    custom = PrometheusMetrics(PrometheusSettings(
        url=engine_fleet.prometheus.url, labels=LabelScheme(deployment=CUSTOM_DEPLOYMENT_LABEL)))
    at = time.time()
    metrics = custom.read_pool(namespace="team-b", deployment="qwen", pool="prefill", dialect="sglang",
                               window_s=WINDOW_S, percentile=90.0, at_s=at)
    assert metrics.complete, metrics.message()
    served_rps = served(engine_fleet, SGLANG.request_count, at, namespace="team-b", model_deployment="qwen")
    assert served_rps == pytest.approx(20.0, rel=LOAD_RTOL)
    assert metrics.request_rate_rps == pytest.approx(served_rps, rel=RATE_RTOL)
    # The vLLM pods do not carry the custom label, so the same scheme finds nothing there.
    assert custom.read_pool(namespace="team-a", deployment="llama", pool="unified", dialect="vllm",
                            window_s=WINDOW_S, percentile=90.0).request_rate_rps is None


def test_result_fills_a_pool_observation(adapter) -> None:
    metrics = read(adapter, "team-a", "llama", "unified", "vllm")
    observation = metrics.apply_to(PoolObservation(ready_replicas=2))
    assert observation.ready_replicas == 2
    assert observation.request_rate_rps == metrics.request_rate_rps
    assert observation.ttft_s == metrics.ttft_s and math.isfinite(observation.ttft_s)


async def test_async_read(adapter) -> None:
    metrics = await adapter.read_pool_async(namespace="team-a", deployment="llama", pool="unified",
                                            dialect="vllm", window_s=WINDOW_S, percentile=90.0)
    assert metrics.complete, metrics.message()
