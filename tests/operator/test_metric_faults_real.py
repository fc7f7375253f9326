"""Metric faults through a real Prometheus: the queries tag stale series, validation names the pod,
and the operator never scales down on garbage or on a partially observed pool.

Each fault here scaled a workload down before per-pod validation existed: a negative gauge from one
pod (5 -> 1), a stale series (5 -> 3), garbage function metrics (3 -> 0).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment
from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tidal.operator.handlers_serverless import PrometheusFunctionMetrics
from tidal.operator.metric_validation import SampleProblem
from tidal.operator.prometheus import PrometheusMetrics, PrometheusSettings

pytestmark = pytest.mark.prometheus

SCRAPE_INTERVAL_S = 0.5
WINDOW_S = 5.0
STALE_AGE_S = 120.0
"""Older than the window, younger than Prometheus' 5 min lookback: an instant query still returns it."""


class TextExporter:
    """A /metrics endpoint serving whatever ``body()`` returns (text exposition), on loopback."""

    def __init__(self, body: Callable[[], str]) -> None:
        self.body = body
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                data = owner.body().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def vllm_gauges(running: float, waiting: float = 0.0, timestamp_ms: int | None = None) -> str:
    stamp = "" if timestamp_ms is None else f" {timestamp_ms}"
    return (f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name=\"m\"}} {running}{stamp}\n"
            f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{{model_name=\"m\"}} {waiting}{stamp}\n")


def engine_target(exporter: TextExporter, deployment: str, pod: str) -> ScrapeTarget:
    return ScrapeTarget(exporter.address, {"namespace": OPERATOR_NS, "pod": pod, "tidal_dev_deployment": deployment,
                                           "tidal_dev_pool": "unified"})


def test_stale_and_negative_pods_are_rejected_by_name_the_rest_is_used(tmp_path: Path) -> None:
    binary = require_prometheus_binary()
    stale_ms = int((time.time() - STALE_AGE_S) * 1000)
    bodies = {f"llama-{i}": (lambda: vllm_gauges(16)) for i in range(3)}
    bodies["llama-3"] = lambda: vllm_gauges(16, timestamp_ms=stale_ms)
    bodies["llama-4"] = lambda: vllm_gauges(-1000)
    exporters = {pod: TextExporter(body) for pod, body in bodies.items()}
    try:
        targets = [engine_target(e, "llama", pod) for pod, e in exporters.items()]
        with PrometheusServer(targets, tmp_path, binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S) as prometheus:
            adapter = PrometheusMetrics(PrometheusSettings(url=prometheus.url))

            def read() -> Any:
                metrics = adapter.read_pool(namespace=OPERATOR_NS, deployment="llama", pool="unified",
                                            dialect="vllm", window_s=WINDOW_S, percentile=90)
                problems = {(r.pod, r.problem) for r in metrics.rejections if r.field == "running_requests"}
                assert problems == {("llama-3", SampleProblem.STALE), ("llama-4", SampleProblem.NEGATIVE)}, \
                    metrics.message()
                return metrics

            metrics = eventually(read, timeout_s=30)
            assert metrics.running_requests == 48.0  # llama-0..2 only
            assert metrics.pods["llama-3"].running_requests is None
            assert "pod llama-3: running_requests = 16 stale" in metrics.message()
    finally:
        for exporter in exporters.values():
            exporter.close()


def function_body(rps_counter: Callable[[], float], in_flight: str) -> Callable[[], str]:
    return lambda: (f"# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {rps_counter()}\n"
                    f"# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight {in_flight}\n")


def test_garbage_function_metrics_are_never_idle(tmp_path: Path) -> None:
    """NaN and negative in-flight gauges used to read as idle (3 -> 0 instances)."""
    binary = require_prometheus_binary()
    started = time.monotonic()
    counter = lambda: int(2 * (time.monotonic() - started))  # noqa: E731 - 2 requests/s
    exporters = {
        "fn.v1-7d9f8c-aaaaa": TextExporter(function_body(counter, "NaN")),
        "fn.v1-7d9f8c-bbbbb": TextExporter(function_body(counter, "-5")),
        "fn.v1-7d9f8c-ccccc": TextExporter(function_body(counter, "1")),
        # Another function whose pods an unescaped "fn.v1" would match: the pod matcher is regex-escaped.
        "fnxv1-7d9f8c-ddddd": TextExporter(function_body(counter, "500")),
    }
    try:
        targets = [ScrapeTarget(e.address, {"namespace": OPERATOR_NS, "pod": pod}) for pod, e in exporters.items()]
        with PrometheusServer(targets, tmp_path, binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S) as prometheus:
            source = PrometheusFunctionMetrics(prometheus.url, WINDOW_S)

            def read() -> Any:
                metrics = source(OPERATOR_NS, "fn.v1", 3, 3)
                assert metrics.running_requests == 1.0 and metrics.unobserved_instances == 2, metrics
                return metrics

            metrics = eventually(read, timeout_s=30)
            assert metrics.available
            assert "fn.v1-7d9f8c-aaaaa: running_requests = nan not finite" in metrics.message
            assert "fn.v1-7d9f8c-bbbbb: running_requests = -5 negative" in metrics.message
            assert "scale-down held" in metrics.message
    finally:
        for exporter in exporters.values():
            exporter.close()


def _replicas(h: OperatorHarness, name: str) -> int:
    return h.apps.read_namespaced_deployment(name, OPERATOR_NS).spec.replicas


def _last_codes(h: OperatorHarness, name: str) -> list[str]:
    decision = (h.read_md(name).get("status") or {}).get("lastDecision") or {}
    return [r["code"] for r in decision.get("reasons") or ()]


def test_one_pods_negative_gauge_holds_the_pool_and_names_the_pod(harness: OperatorHarness, tmp_path: Path) -> None:
    """Five Ready replicas at 16 in flight each; one pod starts exporting -1000: the pool stays at 5."""
    binary = require_prometheus_binary()
    h = harness
    running = {f"big-{i}": 16.0 for i in range(5)}
    exporters = {pod: TextExporter(lambda pod=pod: vllm_gauges(running[pod])) for pod in running}
    prometheus = PrometheusServer([engine_target(e, "big", pod) for pod, e in exporters.items()], tmp_path / "prom",
                                  binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S).start(wait_for_targets=True)
    try:
        with h.operator(prometheus_url=prometheus.url):
            h.create_md(model_deployment("big", min_replicas=1, max_replicas=8,
                                         autoscaling={"predictor": "holt-winters", "scaleDownDelay": "0s"}))
            eventually(lambda: _replicas(h, "big-unified-gpu-a") == 1)
            h.set_ready("big-unified-gpu-a", 1)
            eventually(lambda: _replicas(h, "big-unified-gpu-a") == 5)  # 80 in flight / 16 per replica
            h.set_ready("big-unified-gpu-a", 5)
            running["big-4"] = -1000.0
            cond = eventually(lambda: (c := h.condition("big", "MetricsAvailable")) and
                              c["reason"] == "PartiallyObserved" and c)
            assert cond["status"] == "False"
            assert "pod big-4: running_requests = -1000 negative" in cond["message"], cond
            assert "scale-down held" in cond["message"]
            # The rule alone would now want 64 / 16 = 4; the guard holds 5, tick after tick.
            eventually(lambda: "hold-partial-metrics" in _last_codes(h, "big"))
            assert _replicas(h, "big-unified-gpu-a") == 5
            # The pod recovers with less load: scale-down is allowed again (a fully observed pool).
            running.update({pod: 8.0 for pod in running})
            eventually(lambda: _replicas(h, "big-unified-gpu-a") == 3)  # 40 / 16 -> 3
            # The status patch follows the replica write of the same tick: poll for it.
            eventually(lambda: h.condition("big", "MetricsAvailable")["status"] == "True")
    finally:
        prometheus.stop()
        for exporter in exporters.values():
            exporter.close()


def test_a_restart_never_shortens_the_scale_down_window(harness: OperatorHarness, tmp_path: Path) -> None:
    """State is saved on decision changes (or every 300 s), not on every steady tick: a crash lost the
    recent recommendations and the restarted operator scaled down before the window had passed."""
    binary = require_prometheus_binary()
    h = harness
    delay_s = 10.0
    running = {f"win-{i}": 16.0 for i in range(5)}
    exporters = {pod: TextExporter(lambda pod=pod: vllm_gauges(running[pod])) for pod in running}
    prometheus = PrometheusServer([engine_target(e, "win", pod) for pod, e in exporters.items()], tmp_path / "prom",
                                  binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S).start(wait_for_targets=True)
    production_saves = {"prometheus_url": prometheus.url, "state_save_interval_s": 300.0}
    try:
        with h.operator(**production_saves):
            h.create_md(model_deployment("win", min_replicas=1, max_replicas=8,
                                         autoscaling={"predictor": "holt-winters", "scaleDownDelay": "10s"}))
            eventually(lambda: _replicas(h, "win-unified-gpu-a") == 1)
            h.set_ready("win-unified-gpu-a", 1)
            eventually(lambda: _replicas(h, "win-unified-gpu-a") == 5)
            h.set_ready("win-unified-gpu-a", 5)
            time.sleep(delay_s + 2.0)  # steady: the saved recommendations age out of the window
        running.update({pod: 2.0 for pod in running})  # load drops while the operator is down: the rule wants 1
        eventually(lambda: (answer := prometheus.query('sum(vllm:num_requests_running{tidal_dev_deployment="win"})'))
                   and float(answer[0]["value"][1]) == 10.0)
        restarted = time.monotonic()
        with h.operator(**production_saves):
            eventually(lambda: _replicas(h, "win-unified-gpu-a") == 1, timeout_s=delay_s + 15.0)
            waited = time.monotonic() - restarted
            assert waited >= delay_s - 1.5, f"scaled down {waited:.1f}s after the restart, window {delay_s:g}s"
    finally:
        prometheus.stop()
        for exporter in exporters.values():
            exporter.close()
