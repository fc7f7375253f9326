"""The activator's own Prometheus series (``tidal_activator_*``), on a registry per activator so
two activators in one process (tests, benchmarks) never share series."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LABELS = ("namespace", "service")
WAIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
                  120.0, 300.0)
"""From a warm forward (ms) to the default 300 s hold timeout: function cold starts are 0.1-10 s
(Huawei Cloud traces, tidal/sim/serverless/coldstart.py), model loads minutes."""


class ActivatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.held = Gauge("tidal_activator_held_requests",
                          "Requests held now, waiting for a ready instance", LABELS, registry=r)
        self.wait_s = Histogram("tidal_activator_wait_seconds",
                                "Time a request waited in the activator before it was forwarded, s",
                                LABELS, buckets=WAIT_BUCKETS_S, registry=r)
        self.rejected = Counter("tidal_activator_rejected_total",
                                "Requests answered 503 by the activator (reason: queue-full, timeout)",
                                (*LABELS, "reason"), registry=r)
        self.proxied = Counter("tidal_activator_proxied_total",
                               "Requests forwarded to an instance, by the instance's status code "
                               "(502/504: the instance failed or did not answer)",
                               (*LABELS, "code"), registry=r)
        self.demand_signals = Counter("tidal_activator_demand_signals_total",
                                      "Demand annotations written (result: ok, error)",
                                      (*LABELS, "result"), registry=r)
