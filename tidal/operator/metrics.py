"""The operator's own Prometheus metrics (names and labels: docs/configuration.md, "Metrics").

Why an explicit ``CollectorRegistry`` per operator instead of prometheus-client's global one: two
operators in one process (tests, benchmarks) must not share or collide on series.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, start_http_server

LABELS = ("namespace", "name", "pool")
DECISION_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0)
"""From 1 ms (a pure decision) to the default 15 s interval; 7.5 s is the dashboard's alert threshold
(half the interval, docs/configuration.md)."""


class OperatorMetrics:
    """Every series the contract names, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_cpu_seconds_total and process_resident_memory_bytes: the operator's own budget
        # (docs/operator.md, Benchmark) can be watched in production, not only in bench/operator_fleet.py.
        ProcessCollector(registry=r)
        self.forecast_rps = Gauge("tidal_forecast_requests_per_second",
                                  "Forecast request rate (median) at the pre-warm horizon, req/s", LABELS, registry=r)
        self.observed_rps = Gauge("tidal_observed_requests_per_second",
                                  "Request rate observed over the last metrics window, req/s", LABELS, registry=r)
        self.desired = Gauge("tidal_desired_replicas", "Replicas tidal wants after this tick's decision",
                             LABELS, registry=r)
        self.ready = Gauge("tidal_ready_replicas", "Replicas ready now", LABELS, registry=r)
        self.slo_attainment = Gauge("tidal_slo_attainment_ratio",
                                    "Fraction (0..1) of recent requests meeting the SLO", LABELS, registry=r)
        self.cold_starts = Counter("tidal_cold_starts_total", "Replicas started (each pays a cold start)",
                                   LABELS, registry=r)
        self.decision_latency = Histogram("tidal_decision_latency_seconds",
                                          "Wall time from observation to decision, per workload per tick",
                                          LABELS, buckets=DECISION_LATENCY_BUCKETS, registry=r)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], set[str]] = {}

    def _track(self, namespace: str, name: str, pool: str) -> None:
        with self._lock:
            self._series.setdefault((namespace, name), set()).add(pool)

    def record_tick(self, namespace: str, name: str, pool: str, *, desired: int, ready: int,
                    observed_rps: float | None, forecast_rps: float | None, latency_s: float) -> None:
        self._track(namespace, name, pool)
        labels = (namespace, name, pool)
        self.desired.labels(*labels).set(desired)
        self.ready.labels(*labels).set(ready)
        if observed_rps is not None:
            self.observed_rps.labels(*labels).set(observed_rps)
        if forecast_rps is not None:
            self.forecast_rps.labels(*labels).set(forecast_rps)
        self.decision_latency.labels(*labels).observe(latency_s)

    def set_slo_attainment(self, namespace: str, name: str, pool: str, ratio: float | None) -> None:
        """The pool's SLO attainment; ``None`` (no requests in the window, metrics unreadable) removes
        the series rather than report 0 or keep a stale value."""
        self._track(namespace, name, pool)
        if ratio is not None:
            self.slo_attainment.labels(namespace, name, pool).set(ratio)
            return
        try:
            self.slo_attainment.remove(namespace, name, pool)
        except KeyError:
            pass

    def count_cold_start(self, namespace: str, name: str, pool: str) -> None:
        self._track(namespace, name, pool)
        self.cold_starts.labels(namespace, name, pool).inc()

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted workload's series so dashboards do not show ghosts."""
        with self._lock:
            pools = self._series.pop((namespace, name), set())
        metrics: list[Any] = [self.forecast_rps, self.observed_rps, self.desired, self.ready, self.slo_attainment,
                              self.cold_starts, self.decision_latency]
        for pool in pools:
            for metric in metrics:
                try:
                    metric.remove(namespace, name, pool)
                except KeyError:
                    pass


def serve_metrics(metrics: OperatorMetrics, port: int, addr: str = "0.0.0.0") -> Any:
    """Start ``/metrics`` on ``port`` in a daemon thread; returns the server (``shutdown()`` stops it)."""
    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
