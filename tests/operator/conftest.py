"""Fixtures for the operator tests: a fleet of fake engine pods scraped by one real Prometheus."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import (
    SGLANG_NEW,
    SGLANG_OLD,
    VLLM_V0,
    VLLM_V1,
    EngineExporter,
    EngineGauges,
    Exposition,
    ExporterFlavour,
    UniformLatency,
    WorkloadReplayer,
    steady_workload,
)

SCRAPE_INTERVAL_S = 0.5
"""Short so a few seconds of wall time hold enough samples; Prometheus accepts sub-second intervals."""
WINDOW_S = 5.0
"""rate() window for the tests: ten scrapes, and 100-200 requests per pool at the rates below."""
WORKLOAD_DURATION_S = 300.0
"""Longer than the test session, so the load is steady whenever a test queries."""
TTFT = UniformLatency(0.1, 0.5)
TPOT = UniformLatency(0.025, 0.075)
PROMPT_TOKENS_CYCLE = (100, 150, 200, 250, 300)
OUTPUT_TOKENS = 16
CUSTOM_DEPLOYMENT_LABEL = "model_deployment"
"""An extra target label on the SGLang pool, to check that label names are configurable."""


@dataclass(frozen=True)
class PodSpec:
    """One fake engine replica: identity, exporter flavour, load and gauges."""

    namespace: str
    deployment: str
    pool: str
    pod: str
    flavour: ExporterFlavour
    exposition: Exposition
    rate_rps: float
    gauges: EngineGauges

    def target_labels(self) -> dict[str, str]:
        labels = {
            "namespace": self.namespace,
            "pod": self.pod,
            "tidal_dev_deployment": self.deployment,
            "tidal_dev_pool": self.pool,
            "tidal_dev_accelerator": "test-gpu",
        }
        if self.flavour is SGLANG_NEW:
            labels[CUSTOM_DEPLOYMENT_LABEL] = self.deployment
        return labels


FLEET = (
    # vLLM 0.11 names, classic text exposition: Prometheus stores vllm:x. Two pods, one pool.
    PodSpec("team-a", "llama", "unified", "llama-0", VLLM_V1, "text", 30.0, EngineGauges(7, 2, 0.40)),
    PodSpec("team-a", "llama", "unified", "llama-1", VLLM_V1, "text", 10.0, EngineGauges(3, 0, 0.20)),
    # Old vLLM names (gpu_cache_usage_perc, time_per_output_token), OpenMetrics: stored as vllm_x.
    PodSpec("team-a", "llama-old", "unified", "llama-old-0", VLLM_V0, "openmetrics", 20.0,
            EngineGauges(5, 4, 0.55)),
    # SGLang names, text exposition.
    PodSpec("team-b", "qwen", "prefill", "qwen-0", SGLANG_NEW, "text", 20.0, EngineGauges(6, 1, 0.35)),
    # Older SGLang names, OpenMetrics: stored as sglang_x.
    PodSpec("team-b", "qwen-old", "decode", "qwen-old-0", SGLANG_OLD, "openmetrics", 20.0,
            EngineGauges(9, 3, 0.65)),
    # Exported but idle: counters exist at 0, histograms have no observations.
    PodSpec("team-a", "idle", "unified", "idle-0", VLLM_V1, "text", 0.0, EngineGauges(0, 0, 0.0)),
)


@dataclass
class Fleet:
    """The running fleet: Prometheus plus each pod's spec and exporter."""

    prometheus: PrometheusServer
    pods: tuple[PodSpec, ...]
    exporters: dict[str, EngineExporter]

    def pods_of(self, deployment: str) -> list[PodSpec]:
        return [p for p in self.pods if p.deployment == deployment]


@pytest.fixture(scope="session")
def engine_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Six engine exporters under load and one real Prometheus scraping them, shared by all tests.

    Ready once Prometheus has a full ``WINDOW_S`` of samples from every pod in steady state.
    """
    binary = require_prometheus_binary()
    exporters: dict[str, EngineExporter] = {}
    replayers: list[WorkloadReplayer] = []
    prometheus: PrometheusServer | None = None
    try:
        for index, spec in enumerate(FLEET):
            exporter = EngineExporter(spec.flavour, exposition=spec.exposition).start()
            exporter.set_gauges(spec.gauges)
            exporters[spec.pod] = exporter
            if spec.rate_rps > 0:
                records = steady_workload(
                    rate_rps=spec.rate_rps, duration_s=WORKLOAD_DURATION_S, ttft=TTFT, tpot=TPOT,
                    prompt_tokens_cycle=PROMPT_TOKENS_CYCLE, output_tokens=OUTPUT_TOKENS, phase=index / 7,
                )
                replayers.append(WorkloadReplayer(exporter, records).start())
        targets = [ScrapeTarget(exporters[p.pod].address, p.target_labels()) for p in FLEET]
        prometheus = PrometheusServer(
            targets, tmp_path_factory.mktemp("prometheus"), binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S
        ).start(wait_for_targets=True)
        # Every target has been scraped at least once; wait for a full window of samples after that.
        time.sleep(WINDOW_S + 2 * SCRAPE_INTERVAL_S)
        yield Fleet(prometheus=prometheus, pods=FLEET, exporters=exporters)
    finally:
        for replayer in replayers:
            replayer.stop()
        if prometheus is not None:
            prometheus.stop()
        for exporter in exporters.values():
            exporter.stop()
