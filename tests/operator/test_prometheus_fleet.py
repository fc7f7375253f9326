"""The fleet read against a real Prometheus: the same values as per-pool reads, a bounded number of queries.

Both reads are evaluated at the same instant (``at_s``), so they see identical samples and must
agree up to float summation order (``REL`` = 1e-9); a fleet query that mixed workloads, dropped a
pod or chose a different metric name would differ by whole requests per second.
"""

from __future__ import annotations

import re
import time
import urllib.request

import pytest

from tests.operator.conftest import WINDOW_S, Fleet
from tidal.operator.prometheus import OBSERVATION_FIELDS, FleetMetrics, PoolMetrics, PrometheusMetrics, PrometheusSettings
from tidal.operator.promql import SGLANG, VLLM, LabelScheme, fleet_queries

pytestmark = pytest.mark.prometheus

REL = 1e-9
QUERIES_PER_READ = len(OBSERVATION_FIELDS)
"""One per PoolObservation field (docs/metrics.md): a vLLM read."""
SGLANG_QUERIES_PER_READ = len(fleet_queries(SGLANG, LabelScheme(), window_s=60.0))
"""An SGLang read has no KV residency query (SGLang exports no such histograms)."""
assert len(fleet_queries(VLLM, LabelScheme(), window_s=60.0)) == QUERIES_PER_READ
assert SGLANG_QUERIES_PER_READ == QUERIES_PER_READ - 1
WORKLOADS = (
    # (namespace, deployment, pool, dialect): every pool of the session fleet, plus one that is not scraped.
    ("team-a", "llama", "unified", "vllm"),
    ("team-a", "llama-old", "unified", "vllm"),
    ("team-a", "idle", "unified", "vllm"),
    ("team-b", "qwen", "prefill", "sglang"),
    ("team-b", "qwen-old", "decode", "sglang"),
    ("team-a", "not-scraped", "unified", "vllm"),
)


@pytest.fixture(scope="module")
def adapter(engine_fleet: Fleet) -> PrometheusMetrics:
    return PrometheusMetrics(PrometheusSettings(url=engine_fleet.prometheus.url, query_timeout_s=5.0))


def assert_same(fleet: PoolMetrics, alone: PoolMetrics) -> None:
    for name, value in alone.observation_fields().items():
        assert fleet.observation_fields()[name] == (None if value is None else pytest.approx(value, rel=REL)), name
    assert set(fleet.pods) == set(alone.pods)
    for pod, values in alone.pods.items():
        for name, value in vars(values).items():
            other = getattr(fleet.pods[pod], name)
            assert other == (value if not isinstance(value, float) else pytest.approx(value, rel=REL)), (pod, name)
    for name in ("ttft_buckets", "tpot_buckets"):
        mine, theirs = getattr(fleet, name), getattr(alone, name)
        assert (mine is None) == (theirs is None), name
        if theirs is not None:
            assert [b for b, _ in mine] == [b for b, _ in theirs]
            assert [c for _, c in mine] == pytest.approx([c for _, c in theirs], rel=REL)
    assert [(f.field, f.kind) for f in fleet.failures] == [(f.field, f.kind) for f in alone.failures]


@pytest.mark.parametrize("percentile", [50.0, 90.0])
def test_fleet_read_equals_per_pool_reads(adapter, percentile) -> None:
    at = time.time()
    snapshots = {d: adapter.read_fleet(dialect=d, window_s=WINDOW_S, at_s=at) for d in ("vllm", "sglang")}
    read_any = False
    for namespace, deployment, pool, dialect in WORKLOADS:
        alone = adapter.read_pool(namespace=namespace, deployment=deployment, pool=pool, dialect=dialect,
                                  window_s=WINDOW_S, percentile=percentile, at_s=at)
        fleet = snapshots[dialect].pool_metrics(namespace=namespace, deployment=deployment, pool=pool,
                                                percentile=percentile)
        assert_same(fleet, alone)
        assert fleet.attainment(0.3, 0.05) == alone.attainment(0.3, 0.05)
        read_any = read_any or alone.complete
    assert read_any, "no workload was read completely: the comparison would be vacuous"


def test_workloads_of_one_dialect_do_not_see_each_other(adapter, engine_fleet: Fleet) -> None:
    at = time.time()
    snapshot = adapter.read_fleet(dialect="vllm", window_s=WINDOW_S, at_s=at)
    llama = snapshot.pool_metrics(namespace="team-a", deployment="llama", pool="unified", percentile=90)
    old = snapshot.pool_metrics(namespace="team-a", deployment="llama-old", pool="unified", percentile=90)
    assert set(llama.pods) == {"llama-0", "llama-1"} and set(old.pods) == {"llama-old-0"}
    # Against what each workload served in the window (raw samples; tests/operator/test_prometheus_real.py
    # explains the tolerances), and roughly its nominal 40 and 20 requests/s.
    for metrics, deployment, nominal in ((llama, "llama", 40.0), (old, "llama-old", 20.0)):
        served = engine_fleet.prometheus.counter_slope(
            VLLM.request_count, {"namespace": "team-a", "tidal_dev_deployment": deployment}, WINDOW_S, at)
        assert served == pytest.approx(nominal, rel=0.5)
        assert metrics.request_rate_rps == pytest.approx(served, rel=0.08)
    # The SGLang pools are not in the vLLM read, and the other way round.
    assert snapshot.pool_metrics(namespace="team-b", deployment="qwen", pool="prefill",
                                 percentile=90).request_rate_rps is None


def test_fleet_read_limited_to_namespaces(engine_fleet: Fleet) -> None:
    """A namespace-scoped operator reads only its namespaces (names with '-' need RE2 escapes)."""
    adapter = PrometheusMetrics(PrometheusSettings(url=engine_fleet.prometheus.url))
    fleet = FleetMetrics(adapter, max_age_s=60.0, namespaces=("team-b",))
    qwen = fleet.read_pool(namespace="team-b", deployment="qwen", pool="prefill", dialect="sglang",
                           window_s=WINDOW_S, percentile=90.0)
    assert qwen.complete, qwen.message()
    llama = fleet.read_pool(namespace="team-a", deployment="llama", pool="unified", dialect="vllm",
                            window_s=WINDOW_S, percentile=90.0)
    assert llama.request_rate_rps is None and llama.running_requests is None
    assert {f.kind.value for f in llama.failures} == {"EmptyResult"}


def _query_requests(fleet: Fleet) -> float:
    """Prometheus' own count of instant queries answered (its /metrics, not the TSDB)."""
    text = urllib.request.urlopen(f"{fleet.prometheus.url}/metrics", timeout=5).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        r'^prometheus_http_requests_total\{[^}]*handler="/api/v1/query"[^}]*\} (\S+)$', text, re.MULTILINE))


@pytest.mark.parametrize("workloads", [5, 500])
def test_queries_per_interval_do_not_grow_with_the_workload_count(engine_fleet: Fleet, workloads: int) -> None:
    """Any number of workloads ticking within one interval cost one query per observation field per dialect."""
    adapter = PrometheusMetrics(PrometheusSettings(url=engine_fleet.prometheus.url))
    fleet = FleetMetrics(adapter, max_age_s=60.0)
    names = [("team-a", "llama", "unified", "vllm"), ("team-b", "qwen", "prefill", "sglang")]
    names += [("team-c", f"model-{i}", "unified", ("vllm", "sglang")[i % 2]) for i in range(workloads - len(names))]
    before = _query_requests(engine_fleet)
    results = [fleet.read_pool(namespace=ns, deployment=d, pool=p, dialect=dialect, window_s=WINDOW_S,
                               percentile=90.0) for ns, d, p, dialect in names]
    after = _query_requests(engine_fleet)
    assert adapter.queries_sent == QUERIES_PER_READ + SGLANG_QUERIES_PER_READ and fleet.reads == 2
    assert after - before == QUERIES_PER_READ + SGLANG_QUERIES_PER_READ, "Prometheus saw a different number of queries than we sent"
    assert results[0].complete and results[1].complete, (results[0].message(), results[1].message())
    assert all(r.request_rate_rps is None for r in results[2:])  # not scraped: EmptyResult, as alone


def test_a_snapshot_is_reused_until_it_is_older_than_max_age(engine_fleet: Fleet) -> None:
    adapter = PrometheusMetrics(PrometheusSettings(url=engine_fleet.prometheus.url))
    now = [1000.0]
    fleet = FleetMetrics(adapter, max_age_s=7.5, clock=lambda: now[0])
    read = lambda: fleet.read_pool(namespace="team-a", deployment="llama", pool="unified",  # noqa: E731
                                   dialect="vllm", window_s=WINDOW_S, percentile=90.0)
    read()
    now[0] += 7.4
    read()
    assert fleet.reads == 1
    now[0] += 0.2
    read()
    assert fleet.reads == 2 and adapter.queries_sent == 2 * QUERIES_PER_READ
    # A different window is a different read.
    fleet.read_pool(namespace="team-a", deployment="llama", pool="unified", dialect="vllm", window_s=10.0,
                    percentile=90.0)
    assert fleet.reads == 3
