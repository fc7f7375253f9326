"""The KV residency read against a real Prometheus: vLLM's two residency histograms, one pod
scraped as ``vllm:x`` (text format) and one as ``vllm_x`` (OpenMetrics), summed over the pool's pods
as bucket increments over the window, and absent for a pool that does not export them."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from prometheus_client import Histogram

from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import VLLM_V1, EngineExporter
from tidal.operator.prometheus import PoolMetrics, PrometheusMetrics, PrometheusSettings
from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S

pytestmark = pytest.mark.prometheus

SCRAPE_S = 0.5
WINDOW_S = 5.0
GAPS_PER_POD = 40       # reuse gaps of 1.5 s: bucket (1, 2]
IDLE_PER_POD = 10       # idle times of 45 s before eviction: bucket (30, 60]


def _labels(pod: str) -> dict[str, str]:
    return {"namespace": "ns", "pod": pod, "tidal_dev_deployment": "agent", "tidal_dev_pool": "unified"}


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusMetrics, list[dict[str, Histogram]]]]:
    binary = require_prometheus_binary()
    exporters, histograms = [], []
    prometheus = None
    try:
        for exposition in ("text", "openmetrics"):
            exporter = EngineExporter(VLLM_V1, exposition=exposition)
            labels = {"model_name": "test-model", "engine": "0"}
            # As vllm/v1/metrics/loggers.py declares them (only with --kv-cache-metrics).
            histograms.append({name: Histogram(f"vllm:kv_block_{name}_seconds", "test", list(labels),
                                               registry=exporter.registry,
                                               buckets=list(VLLM_RESIDENCY_BUCKETS_S)).labels(**labels)
                               for name in ("reuse_gap", "idle_before_evict")})
            exporters.append(exporter.start())
        plain = EngineExporter(VLLM_V1).start()  # a vLLM pod without --kv-cache-metrics
        exporters.append(plain)
        targets = [ScrapeTarget(e.address, _labels(f"agent-{i}")) for i, e in enumerate(exporters[:2])]
        targets.append(ScrapeTarget(plain.address, {**_labels("plain-0"), "tidal_dev_deployment": "plain"}))
        prometheus = PrometheusServer(targets, tmp_path_factory.mktemp("prometheus-kv"), binary=binary,
                                      scrape_interval_s=SCRAPE_S).start(wait_for_targets=True)
        time.sleep(4 * SCRAPE_S)  # a few scrapes of the empty histograms: the increments' baseline
        yield PrometheusMetrics(PrometheusSettings(url=prometheus.url, query_timeout_s=5.0)), histograms
    finally:
        if prometheus is not None:
            prometheus.stop()
        for exporter in exporters:
            exporter.stop()


def _read(adapter: PrometheusMetrics, deployment: str) -> PoolMetrics:
    return adapter.read_pool(namespace="ns", deployment=deployment, pool="unified", dialect="vllm",
                             window_s=WINDOW_S, percentile=90.0)


def test_increments_of_both_spellings_are_summed_per_bucket(pool) -> None:
    adapter, histograms = pool
    for per_pod in histograms:
        for _ in range(GAPS_PER_POD):
            per_pod["reuse_gap"].observe(1.5)
        for _ in range(IDLE_PER_POD):
            per_pod["idle_before_evict"].observe(45.0)
    deadline = time.monotonic() + 30.0
    while True:  # poll until both pods' new counts were scraped (within the window)
        residency = _read(adapter, "agent").kv_residency
        if residency is not None and residency.reuse_gap[-1][1] >= 1.5 * GAPS_PER_POD or time.monotonic() > deadline:
            break
        time.sleep(SCRAPE_S)
    assert residency is not None and residency.window_s == WINDOW_S
    gaps, idle = dict(residency.reuse_gap), dict(residency.idle_before_evict)
    assert set(gaps) == set(idle) == {*VLLM_RESIDENCY_BUCKETS_S, math.inf}
    # increase() extrapolates to the window's edges: the step of 2 x 40 reads as 80 to ~1.3 x 80
    assert gaps[1.0] == 0 and 2 * GAPS_PER_POD * 0.9 <= gaps[2.0] <= 2 * GAPS_PER_POD * 1.4
    assert gaps[2.0] == pytest.approx(gaps[math.inf])
    assert idle[30.0] == 0 and 2 * IDLE_PER_POD * 0.9 <= idle[60.0] <= 2 * IDLE_PER_POD * 1.4


def test_a_pool_without_the_histograms_has_none_and_no_failure(pool) -> None:
    adapter, _ = pool
    metrics = _read(adapter, "plain")
    assert metrics.kv_residency is None
    assert "kv_residency" not in {f.field for f in metrics.failures}
