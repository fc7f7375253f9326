"""What a monitoring stack could see: per-tick metric buckets and windowed aggregates.

The runner builds every :class:`~tidal.policies.interface.Observation` from
these buckets only -- counts and latencies of things that already happened,
as Prometheus would scrape them from vLLM (request counters, token counters,
TTFT and TPOT histograms). Future arrivals never enter a bucket before they
arrive.

Like vLLM's ``request_success_total``, the request rate a pool reports counts *completions*;
the requests in flight at each tick give the change in flight over the window, from which the
core estimates arrivals (``PoolObservation.arrival_rate_rps``) exactly as it does from the
operator's reads. Arrivals themselves are counted only for the pool's entry signal (what a
gateway or activator in front of the pool sees).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from tidal.policies.interface import KvResidency
from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S
from tidal.sim.prefix_cache import ResidencyHistograms


@dataclass
class Bucket:
    """Events of one pool between two ticks."""

    end_s: float = 0.0
    start_s: float = 0.0
    arrivals: int = 0
    completions: int = 0
    in_flight_at_start: float = 0.0
    """Requests in flight in the pool (running + waiting) when the bucket opened."""
    prompt_tokens: int = 0
    output_tokens: int = 0
    ttft_s: list[float] = field(default_factory=list)
    tpot_s: list[float] = field(default_factory=list)
    residency: ResidencyHistograms | None = None
    """KV-block residency values the pool's engines reported in the bucket (``None``: the engines do
    not report them, vLLM without ``--kv-cache-metrics``)."""


class PoolMetrics:
    """Rolling window of buckets for one pool."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.current = Bucket()
        self.closed: deque[Bucket] = deque()

    def close(self, now_s: float, in_flight: float = 0.0) -> None:
        """End the current bucket at ``now_s``; ``in_flight`` is the pool's requests in flight now."""
        self.current.end_s = now_s
        self.closed.append(self.current)
        self.current = Bucket(start_s=now_s, in_flight_at_start=in_flight)
        while self.closed and self.closed[0].end_s <= now_s - self.window_s:
            self.closed.popleft()

    def window_span_s(self, now_s: float, start_s: float) -> float:
        """Length of the window actually covered (shorter right after the start)."""
        return max(1e-9, min(self.window_s, now_s - start_s))

    def rates(self, now_s: float, start_s: float) -> tuple[float, float, float]:
        """Completed requests, prompt tokens and output tokens per second over the window."""
        span = self.window_span_s(now_s, start_s)
        done = sum(b.completions for b in self.closed)
        prompt = sum(b.prompt_tokens for b in self.closed)
        output = sum(b.output_tokens for b in self.closed)
        return done / span, prompt / span, output / span

    def arrival_rate(self, now_s: float, start_s: float) -> float:
        """Requests that reached the pool per second over the window (its entry's view)."""
        return sum(b.arrivals for b in self.closed) / self.window_span_s(now_s, start_s)

    def in_flight_change(self, now_s: float, start_s: float, in_flight: float) -> float | None:
        """Change of the requests in flight over the window per second (Prometheus ``delta`` of the
        running and waiting gauges over the window, divided by it); ``None`` before the first tick."""
        if not self.closed:
            return None
        return (in_flight - self.closed[0].in_flight_at_start) / self.window_span_s(now_s, start_s)

    def peak_arrival_count_rate(self) -> float | None:
        """Highest count of arrivals in one bucket per second (what the activator's per-interval peak
        counts for a pool at zero); ``None`` before the first tick."""
        spans = [(b.arrivals, b.end_s - b.start_s) for b in self.closed if b.end_s - b.start_s > 0]
        return max((a / span for a, span in spans), default=None)

    def peak_rate(self) -> float | None:
        """Highest arrival rate of one bucket (one tick, as the operator's peak is over one scrape
        interval) in the window, estimated as the operator estimates it: the bucket's completions
        plus the change in flight across it; ``None`` before the first tick."""
        buckets = list(self.closed)
        ends = [b.in_flight_at_start for b in buckets[1:]] + [self.current.in_flight_at_start]
        rates = [(b.completions + end - b.in_flight_at_start) / (b.end_s - b.start_s)
                 for b, end in zip(buckets, ends) if b.end_s - b.start_s > 0]
        return max(rates, default=None)

    def add_residency(self, reported: ResidencyHistograms) -> None:
        """Residency values an engine of the pool reported: counted in the current bucket."""
        if self.current.residency is None:
            self.current.residency = ResidencyHistograms()
        self.current.residency.add(reported)

    def kv_residency(self) -> KvResidency | None:
        """The window's KV-block residency bucket increments, cumulative by bound as Prometheus'
        ``sum by (le) (increase(..._bucket[window]))`` reads them; ``None`` when no bucket of the
        window has any (the engines do not report them)."""
        parts = [b.residency for b in self.closed if b.residency is not None]
        if not parts:
            return None
        total = ResidencyHistograms()
        for part in parts:
            total.add(part)
        bounds = (*VLLM_RESIDENCY_BUCKETS_S, float("inf"))

        def cumulative(counts: np.ndarray) -> tuple[tuple[float, float], ...]:
            return tuple(zip(bounds, (float(c) for c in np.cumsum(counts))))

        return KvResidency(cumulative(total.reuse_gap), cumulative(total.idle_before_evict), self.window_s)

    def latency_percentile(self, attr: str, q: float) -> float | None:
        values = [v for b in self.closed for v in getattr(b, attr)]
        if not values:
            return None
        return float(np.quantile(np.asarray(values), q))
