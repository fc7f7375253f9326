"""SLO attainment read from a real Prometheus scraping real exporters under a known load.

The reference is the fraction of the served latency distribution within the target, as the
bucket interpolation sees it (``bucket_fraction``: the known CDF at the two bucket bounds around
the target, joined linearly); ``true`` is the CDF itself, to show the interpolation error.
Tolerance ``CDF_TOL`` = 6 % absolute, the same budget as the percentile tests
(test_prometheus_real.py): the ~100-200 requests in the 5 s window follow Weyl sequences whose
empirical CDF stays within ~3 % of the true one, plus a request or two straddling the window
edges. An interpolated fraction is a convex combination of the errors at two bounds, so it stays
inside the same budget. A wrong bucket (the upper one's count) or no interpolation is off by
>= 15 % at the targets chosen here.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest

from tests.operator.conftest import TPOT, TTFT, WINDOW_S, Fleet
from tests.support.vllm_exporter import UniformLatency
from tidal.controllers.slo_attainment import histogram_quantile
from tidal.operator.prometheus import FailureKind, PrometheusMetrics, PrometheusSettings

pytestmark = pytest.mark.prometheus

CDF_TOL = 0.06
TTFT_TARGETS_S = (0.2, 0.3, 0.45)
"""Inside buckets, not on bounds (except SGLang's 0.2), so interpolation is exercised."""
TPOT_TARGETS_S = (0.035, 0.045, 0.06)

POOLS = (
    pytest.param("team-a", "llama", "unified", "vllm", id="vllm-new-names-colon"),
    pytest.param("team-a", "llama-old", "unified", "vllm", id="vllm-old-names-underscore"),
    pytest.param("team-b", "qwen", "prefill", "sglang", id="sglang-new-names-colon"),
    pytest.param("team-b", "qwen-old", "decode", "sglang", id="sglang-old-names-underscore"),
)


def bucket_fraction(bounds: tuple[float, ...], dist: UniformLatency, target_s: float) -> float:
    """The CDF at the bounds around ``target_s``, linear in between (0 at 0 s)."""
    lower = 0.0
    for upper in bounds:
        if target_s <= upper:
            low_f, high_f = dist.cdf(lower), dist.cdf(upper)
            return low_f + (high_f - low_f) * (target_s - lower) / (upper - lower)
        lower = upper
    return dist.cdf(bounds[-1])


@pytest.fixture(scope="module")
def adapter(engine_fleet: Fleet) -> PrometheusMetrics:
    return PrometheusMetrics(PrometheusSettings(url=engine_fleet.prometheus.url, query_timeout_s=5.0))


def read(adapter: PrometheusMetrics, namespace: str, deployment: str, pool: str, dialect: str,
         at_s: float | None = None):
    return adapter.read_pool(namespace=namespace, deployment=deployment, pool=pool, dialect=dialect,
                             window_s=WINDOW_S, percentile=90.0, at_s=at_s or time.time())


@pytest.mark.parametrize(("namespace", "deployment", "pool", "dialect"), POOLS)
def test_attainment_matches_the_served_latencies(adapter, engine_fleet: Fleet, namespace, deployment, pool,
                                                 dialect) -> None:
    flavour = engine_fleet.pods_of(deployment)[0].flavour
    metrics = read(adapter, namespace, deployment, pool, dialect)
    assert metrics.complete, metrics.message()
    for ttft_target, tpot_target in zip(TTFT_TARGETS_S, TPOT_TARGETS_S):
        got = metrics.attainment(ttft_target, tpot_target)
        want_ttft = bucket_fraction(flavour.ttft_buckets_s, TTFT, ttft_target)
        want_tpot = bucket_fraction(flavour.itl_buckets_s, TPOT, tpot_target)
        assert got.ttft == pytest.approx(want_ttft, abs=CDF_TOL), (
            f"TTFT within {ttft_target}s: got {got.ttft}, buckets of the served data give {want_ttft} "
            f"(true {TTFT.cdf(ttft_target)})")
        assert got.tpot == pytest.approx(want_tpot, abs=CDF_TOL), (
            f"TPOT within {tpot_target}s: got {got.tpot}, buckets of the served data give {want_tpot} "
            f"(true {TPOT.cdf(tpot_target)})")
        assert got.combined == min(got.ttft, got.tpot)


def test_attainment_on_a_bucket_bound_equals_prometheus_bucket_ratio(adapter, engine_fleet: Fleet) -> None:
    """Where the target is a bound, the fraction is the brief's PromQL ratio, computed by Prometheus."""
    at = time.time()
    metrics = read(adapter, "team-a", "llama", "unified", "vllm", at_s=at)
    sel = 'tidal_dev_deployment="llama", tidal_dev_pool="unified"'
    raw = _query_at(engine_fleet, f'sum(rate(vllm:time_to_first_token_seconds_bucket{{{sel}, le="0.25"}}[5s])) '
                                  f'/ sum(rate(vllm:time_to_first_token_seconds_count{{{sel}}}[5s]))', at)
    assert metrics.attainment(0.25, None).ttft == pytest.approx(raw, rel=1e-9)
    assert raw == pytest.approx(TTFT.cdf(0.25), abs=CDF_TOL)


def test_quantile_from_buckets_equals_prometheus_histogram_quantile(adapter, engine_fleet: Fleet) -> None:
    """The percentile is now computed from the bucket rates; it must be what PromQL's own function says."""
    at = time.time()
    metrics = read(adapter, "team-b", "qwen", "prefill", "sglang", at_s=at)
    sel = 'tidal_dev_deployment="qwen", tidal_dev_pool="prefill"'
    for q in (0.5, 0.9, 0.99):
        promql = f'histogram_quantile({q}, sum by (le) (rate(sglang:time_to_first_token_seconds_bucket{{{sel}}}[5s])))'
        assert histogram_quantile(q, metrics.ttft_buckets) == pytest.approx(_query_at(engine_fleet, promql, at),
                                                                              rel=1e-9)


def test_no_traffic_means_no_attainment_never_zero(adapter) -> None:
    metrics = read(adapter, "team-a", "idle", "unified", "vllm")
    assert metrics.request_rate_rps == 0.0
    attained = metrics.attainment(0.5, 0.05)
    assert attained.ttft is None and attained.tpot is None and attained.combined is None
    assert {f.field: f.kind for f in metrics.failures} == {"ttft_s": FailureKind.NOT_A_NUMBER,
                                                            "tpot_s": FailureKind.NOT_A_NUMBER}


def test_unknown_workload_has_no_attainment(adapter) -> None:
    metrics = read(adapter, "team-a", "does-not-exist", "unified", "vllm")
    assert metrics.attainment(0.5, 0.05).combined is None


def _query_at(fleet: Fleet, promql: str, at_s: float) -> float:
    """One scalar-valued instant query at ``at_s`` (PrometheusServer.query has no time parameter)."""
    url = f"{fleet.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": repr(at_s)})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.loads(response.read())["data"]["result"]
    assert len(result) == 1, result
    return float(result[0]["value"][1])
