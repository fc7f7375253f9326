"""The operator end to end: status.sloAttainment, SLOMet and tidal_slo_attainment_ratio from real
Prometheus data, and the ticks of several workloads sharing fleet reads.

Load: TTFT uniform on 0.1-0.5 s, TPOT uniform on 25-75 ms (tests/operator/conftest.py), 20 req/s per
engine. With targets 300 ms / 50 ms half of the requests meet each (both targets sit where vLLM's
buckets are filled uniformly, so the bucket interpolation is exact): attainment 0.5, below the
required 0.9. With 1 s / 100 ms every request meets both: attainment 1. ``CDF_TOL`` as in
test_slo_attainment_real.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.operator.conftest import (
    OPERATOR_NS,
    OUTPUT_TOKENS,
    PROMPT_TOKENS_CYCLE,
    TPOT,
    TTFT,
    OperatorHarness,
    eventually,
    free_port,
    model_deployment,
)
from tests.operator.test_operator_autoscaling import _scrape
from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import VLLM_V1, EngineExporter, EngineGauges, WorkloadReplayer, steady_workload
from tidal.operator.prometheus import OBSERVATION_FIELDS

pytestmark = pytest.mark.prometheus

CDF_TOL = 0.06
SCRAPE_INTERVAL_S = 0.5
WINDOW_S = 5.0
RATE_RPS = 20.0
DATA_TIMEOUT_S = 30.0
"""Targets appear after Prometheus' 5 s discovery throttle, then a full 5 s window must fill."""
WORKLOADS = {
    # name: (slo, traffic)
    "tight": ({"ttft": "300ms", "tpot": "50ms", "attainment": 0.9}, True),
    "slack": ({"ttft": "1s", "tpot": "100ms", "attainment": 0.9}, True),
    "quiet": ({"ttft": "300ms", "tpot": "50ms"}, False),
}


def _gauge(port: int, name: str) -> float | None:
    key = f'tidal_slo_attainment_ratio{{name="{name}",namespace="{OPERATOR_NS}",pool="unified"}}'
    return _scrape(port).get(key)


def test_slo_attainment_reaches_status_condition_and_metric(harness: OperatorHarness, tmp_path: Path) -> None:
    binary = require_prometheus_binary()
    h = harness
    exporters, replayers, targets = {}, [], []
    prometheus = None
    try:
        for index, (name, (_, traffic)) in enumerate(WORKLOADS.items()):
            exporter = EngineExporter(VLLM_V1, exposition="text").start()
            exporter.set_gauges(EngineGauges(1, 0, 0.1))  # one replica is enough for the utilization rule
            exporters[name] = exporter
            if traffic:
                records = steady_workload(rate_rps=RATE_RPS, duration_s=120.0, ttft=TTFT, tpot=TPOT,
                                          prompt_tokens_cycle=PROMPT_TOKENS_CYCLE, output_tokens=OUTPUT_TOKENS,
                                          phase=index / 5)
                replayers.append(WorkloadReplayer(exporter, records).start())
            targets.append(ScrapeTarget(exporter.address, {
                "namespace": OPERATOR_NS, "pod": f"{name}-0", "tidal_dev_deployment": name,
                "tidal_dev_pool": "unified"}))
        prometheus = PrometheusServer(targets, tmp_path / "prom", binary=binary,
                                      scrape_interval_s=SCRAPE_INTERVAL_S).start(wait_for_targets=True)
        metrics_port = free_port()
        with h.operator(prometheus_url=prometheus.url, metrics_port=metrics_port,
                        metrics_window_s=WINDOW_S) as controller:
            started = time.monotonic()
            for name, (slo, _) in WORKLOADS.items():
                h.create_md(model_deployment(name, max_replicas=2, slo=slo))
            for name in WORKLOADS:
                eventually(lambda n=name: h.apps.read_namespaced_deployment(f"{n}-unified-gpu-a", OPERATOR_NS))
                h.set_ready(f"{name}-unified-gpu-a", 1)

            def attained(name: str) -> float | None:
                # Wait until a window after the first tick: by then every tick reads a full window.
                value = (h.read_md(name).get("status") or {}).get("sloAttainment")
                return value if value is not None and time.monotonic() - started > WINDOW_S + 2 else None

            tight = eventually(lambda: attained("tight"), timeout_s=DATA_TIMEOUT_S)
            slack = eventually(lambda: attained("slack"), timeout_s=DATA_TIMEOUT_S)
            expected = min(TTFT.cdf(0.3), TPOT.cdf(0.05))
            assert tight == pytest.approx(expected, abs=CDF_TOL)
            assert slack == pytest.approx(1.0, abs=1e-9)

            cond = eventually(lambda: (c := h.condition("tight", "SLOMet")) and c["status"] == "False" and c)
            assert cond["reason"] == "TargetMissed" and "< 90% required" in cond["message"], cond
            cond = eventually(lambda: (c := h.condition("slack", "SLOMet")) and c["status"] == "True" and c)
            assert "100% of requests met the SLO" in cond["message"], cond

            # No requests: no attainment (never 0), SLOMet Unknown, no gauge series.
            quiet = eventually(lambda: (c := h.condition("quiet", "SLOMet")) and c)
            assert (quiet["status"], quiet["reason"]) == ("Unknown", "NoLatencyData"), quiet
            assert "sloAttainment" not in (h.read_md("quiet").get("status") or {})
            assert _gauge(metrics_port, "quiet") is None
            assert eventually(lambda: _gauge(metrics_port, "tight")) == pytest.approx(expected, abs=CDF_TOL)
            assert _gauge(metrics_port, "slack") == pytest.approx(1.0)

            # Three workloads ticking every second shared the fleet reads: one query per field per read and
            # at most one read per half interval (FLEET_MAX_AGE_FRACTION), however many workloads tick.
            # (Unshared, three workloads would read three times a second.) The operator keeps ticking
            # while this is read: `reads` first, then the queries, which may include one read in flight.
            # Enough ticks for the bound to mean something (a loaded machine ticks late: poll for them).
            eventually(lambda: sum(controller.workloads.peek(OPERATOR_NS, n).state.tick for n in WORKLOADS)
                       >= 3 * 5, timeout_s=60)
            elapsed = time.monotonic() - started
            reads = controller.metrics_reader.reads
            sent = controller.prometheus.queries_sent
            per_read = len(OBSERVATION_FIELDS)
            assert per_read * reads <= sent <= per_read * (reads + 1), (sent, reads)
            assert reads <= elapsed / (0.5 * 1.0) + 2, (reads, elapsed)
    finally:
        for replayer in replayers:
            replayer.stop()
        if prometheus is not None:
            prometheus.stop()
        for exporter in exporters.values():
            exporter.stop()
