"""A real HTTP server exporting vLLM- or SGLang-format metrics, driven by per-request records.

The input is deliberately plain: a stream of :class:`RequestRecord` (what one request
did) plus :class:`EngineGauges` (scheduler state). A simulator engine, a synthetic
workload or a replayed trace can all feed it; :class:`WorkloadReplayer` plays a list of
records in wall-clock time so Prometheus sees counters and histograms move as they
would on a real engine.

Metric names, types, label names and histogram buckets follow the engines' own
collectors (sources in docs/metrics.md); the values come only from the records.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, Literal, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import exposition as text_exposition
from prometheus_client.openmetrics import exposition as openmetrics_exposition

# Bucket bounds as the engines declare them (vllm/v1/metrics/loggers.py, sglang/srt/metrics/collector.py).
VLLM_TTFT_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)
VLLM_ITL_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)
SGLANG_TTFT_BUCKETS_S = (0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400)
SGLANG_ITL_BUCKETS_S = (
    0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080, 0.100,
    0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000,
)


@dataclass(frozen=True)
class RequestRecord:
    """What one request did, in seconds on the caller's clock (simulated or workload-relative)."""

    arrival_s: float
    ttft_s: float
    tpot_s: float
    prompt_tokens: int
    output_tokens: int
    finish_s: float

    def __post_init__(self) -> None:
        if self.ttft_s < 0 or self.tpot_s < 0:
            raise ValueError(f"ttft_s and tpot_s must be >= 0, got {self.ttft_s}, {self.tpot_s}")
        if self.prompt_tokens < 0 or self.output_tokens < 1:
            raise ValueError("prompt_tokens must be >= 0 and output_tokens >= 1")
        if self.finish_s < self.first_token_s - 1e-9:
            raise ValueError(f"finish_s {self.finish_s} is before the first token at {self.first_token_s}")

    @property
    def first_token_s(self) -> float:
        return self.arrival_s + self.ttft_s

    @classmethod
    def completed(cls, arrival_s: float, ttft_s: float, tpot_s: float, prompt_tokens: int,
                  output_tokens: int) -> "RequestRecord":
        """A record whose finish time follows from its latencies (no stalls after the first token)."""
        return cls(arrival_s, ttft_s, tpot_s, prompt_tokens, output_tokens,
                   arrival_s + ttft_s + tpot_s * (output_tokens - 1))


@dataclass(frozen=True)
class EngineGauges:
    """Scheduler state an engine reports as gauges."""

    running_requests: float
    waiting_requests: float
    kv_cache_usage_ratio: float


@dataclass(frozen=True)
class ExporterFlavour:
    """Which names, labels and buckets one engine release exports.

    Counter names are given without ``_total`` (prometheus-client appends it).
    """

    name: str
    request_counter: str
    prompt_tokens_counter: str
    output_tokens_counter: str
    running_gauge: str
    waiting_gauge: str
    kv_usage_gauges: tuple[str, ...]
    ttft_histogram: str
    itl_histograms: tuple[str, ...]
    ttft_buckets_s: tuple[float, ...]
    itl_buckets_s: tuple[float, ...]
    base_labels: tuple[str, ...]
    request_extra_labels: tuple[tuple[str, str], ...] = ()


VLLM_V1 = ExporterFlavour(
    # vLLM 0.11: both the deprecated and the new TPOT/ITL histogram and both KV gauges' successor.
    name="vllm-0.11",
    request_counter="vllm:request_success",
    prompt_tokens_counter="vllm:prompt_tokens",
    output_tokens_counter="vllm:generation_tokens",
    running_gauge="vllm:num_requests_running",
    waiting_gauge="vllm:num_requests_waiting",
    kv_usage_gauges=("vllm:kv_cache_usage_perc",),
    ttft_histogram="vllm:time_to_first_token_seconds",
    itl_histograms=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    ttft_buckets_s=VLLM_TTFT_BUCKETS_S,
    itl_buckets_s=VLLM_ITL_BUCKETS_S,
    base_labels=("model_name", "engine"),
    request_extra_labels=(("finished_reason", "stop"),),
)

VLLM_V0 = ExporterFlavour(
    # vLLM before 0.10: gpu_cache_usage_perc and time_per_output_token_seconds only.
    name="vllm-0.6",
    request_counter="vllm:request_success",
    prompt_tokens_counter="vllm:prompt_tokens",
    output_tokens_counter="vllm:generation_tokens",
    running_gauge="vllm:num_requests_running",
    waiting_gauge="vllm:num_requests_waiting",
    kv_usage_gauges=("vllm:gpu_cache_usage_perc",),
    ttft_histogram="vllm:time_to_first_token_seconds",
    itl_histograms=("vllm:time_per_output_token_seconds",),
    ttft_buckets_s=VLLM_TTFT_BUCKETS_S,
    itl_buckets_s=VLLM_ITL_BUCKETS_S,
    base_labels=("model_name",),
    request_extra_labels=(("finished_reason", "stop"),),
)

SGLANG_NEW = ExporterFlavour(
    name="sglang",
    request_counter="sglang:num_requests",
    prompt_tokens_counter="sglang:prompt_tokens",
    output_tokens_counter="sglang:generation_tokens",
    running_gauge="sglang:num_running_reqs",
    waiting_gauge="sglang:num_queue_reqs",
    kv_usage_gauges=("sglang:token_usage",),
    ttft_histogram="sglang:time_to_first_token_seconds",
    itl_histograms=("sglang:inter_token_latency_seconds",),
    ttft_buckets_s=SGLANG_TTFT_BUCKETS_S,
    itl_buckets_s=SGLANG_ITL_BUCKETS_S,
    base_labels=("model_name",),
)

SGLANG_OLD = ExporterFlavour(
    # Older SGLang (docs/references/production_metrics.md example): time_per_output_token_seconds.
    name="sglang-old",
    request_counter="sglang:num_requests",
    prompt_tokens_counter="sglang:prompt_tokens",
    output_tokens_counter="sglang:generation_tokens",
    running_gauge="sglang:num_running_reqs",
    waiting_gauge="sglang:num_queue_reqs",
    kv_usage_gauges=("sglang:token_usage",),
    ttft_histogram="sglang:time_to_first_token_seconds",
    itl_histograms=("sglang:time_per_output_token_seconds",),
    ttft_buckets_s=SGLANG_TTFT_BUCKETS_S,
    itl_buckets_s=(0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4,
                   0.5, 0.75, 1.0, 2.5),
    base_labels=("model_name",),
)

Exposition = Literal["text", "openmetrics"]
"""``text``: Prometheus text format 0.0.4, names stay ``vllm:x``. ``openmetrics``: what
prometheus-client 0.26 serves when Prometheus negotiates OpenMetrics; names arrive as ``vllm_x``."""


class EngineExporter:
    """One engine replica's ``/metrics`` endpoint on 127.0.0.1, with its own registry."""

    def __init__(self, flavour: ExporterFlavour, *, model_name: str = "test-model",
                 exposition: Exposition = "text"):
        self.flavour = flavour
        self.exposition = exposition
        self.registry = CollectorRegistry()
        label_values = {"model_name": model_name, "engine": "0"}
        base = {name: label_values[name] for name in flavour.base_labels}
        request_labels = {**base, **dict(flavour.request_extra_labels)}
        r = self.registry

        def counter(name: str, labels: dict[str, str]):
            return Counter(name, f"{name} (test exporter)", list(labels), registry=r).labels(**labels)

        def gauge(name: str):
            return Gauge(name, f"{name} (test exporter)", list(base), registry=r).labels(**base)

        def histogram(name: str, buckets: Sequence[float]):
            return Histogram(name, f"{name} (test exporter)", list(base), registry=r,
                             buckets=list(buckets)).labels(**base)

        self._requests = counter(flavour.request_counter, request_labels)
        self._prompt_tokens = counter(flavour.prompt_tokens_counter, base)
        self._output_tokens = counter(flavour.output_tokens_counter, base)
        self._running = gauge(flavour.running_gauge)
        self._waiting = gauge(flavour.waiting_gauge)
        self._kv_usage = [gauge(name) for name in flavour.kv_usage_gauges]
        self._ttft = histogram(flavour.ttft_histogram, flavour.ttft_buckets_s)
        self._itl = [histogram(name, flavour.itl_buckets_s) for name in flavour.itl_histograms]
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- input ---------------------------------------------------------------

    def observe_first_token(self, record: RequestRecord) -> None:
        """Prefill done: the engine records TTFT and counts the prompt tokens."""
        self._ttft.observe(record.ttft_s)
        self._prompt_tokens.inc(record.prompt_tokens)

    def observe_finish(self, record: RequestRecord) -> None:
        """Request done: inter-token latencies (one per token after the first), tokens, success."""
        for histogram in self._itl:
            for _ in range(record.output_tokens - 1):
                histogram.observe(record.tpot_s)
        self._output_tokens.inc(record.output_tokens)
        self._requests.inc()

    def observe(self, record: RequestRecord) -> None:
        """Both events at once, for callers that only learn about finished requests."""
        self.observe_first_token(record)
        self.observe_finish(record)

    def set_gauges(self, gauges: EngineGauges) -> None:
        self._running.set(gauges.running_requests)
        self._waiting.set(gauges.waiting_requests)
        for gauge in self._kv_usage:
            gauge.set(gauges.kv_cache_usage_ratio)

    # -- HTTP ----------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        if self.exposition == "openmetrics":
            return openmetrics_exposition.generate_latest(self.registry), openmetrics_exposition.CONTENT_TYPE_LATEST
        return text_exposition.generate_latest(self.registry), text_exposition.CONTENT_TYPE_LATEST

    def start(self) -> "EngineExporter":
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body, content_type = exporter.render()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    # The scraper went away (a test stopped its Prometheus mid-scrape). Left to
                    # socketserver, this prints a traceback to stderr, which a later test capturing
                    # the process's stderr (kopf's KopfRunner) would count as its own error.
                    return

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"exporter-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("exporter not started")
        return self._server.server_address[1]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class WorkloadReplayer:
    """Plays records into an exporter in wall-clock time: record time 0 is ``start()``."""

    def __init__(self, exporter: EngineExporter, records: Iterable[RequestRecord],
                 clock: Callable[[], float] = time.monotonic):
        self._exporter = exporter
        self._clock = clock
        self._events: list[tuple[float, int, int, RequestRecord]] = []
        for index, record in enumerate(records):
            self._events.append((record.first_token_s, index, 0, record))
            self._events.append((record.finish_s, index, 1, record))
        heapq.heapify(self._events)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workload-replayer", daemon=True)
        self.started_at: float | None = None

    def start(self) -> "WorkloadReplayer":
        self.started_at = self._clock()
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self.started_at is not None
        while self._events and not self._stop.is_set():
            due, _, kind, record = self._events[0]
            wait = self.started_at + due - self._clock()
            if wait > 0:
                self._stop.wait(min(wait, 0.05))
                continue
            heapq.heappop(self._events)
            if kind == 0:
                self._exporter.observe_first_token(record)
            else:
                self._exporter.observe_finish(record)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------------------
# Synthetic workloads with known distributions

GOLDEN_RATIO_CONJUGATE = (math.sqrt(5) - 1) / 2
"""Weyl sequence step: frac(i * 0.618...) fills [0, 1) evenly, so every run of N consecutive
draws has empirical-CDF error O(log N / N) instead of random sampling's O(1 / sqrt N)."""


SILVER_RATIO_CONJUGATE = math.sqrt(2) - 1
"""A second badly-approximable step, so two Weyl sequences are not simply shifted copies."""


def even_fractions(count: int, step: float = GOLDEN_RATIO_CONJUGATE, offset: float = 0.0) -> list[float]:
    """``count`` points of the Weyl sequence frac(offset + i * step) in [0, 1)."""
    return [math.fmod(offset + (i + 1) * step, 1.0) for i in range(count)]


@dataclass(frozen=True)
class UniformLatency:
    """A latency uniform on [low_s, high_s]: known CDF, quantile and sampling."""

    low_s: float
    high_s: float

    def quantile(self, q: float) -> float:
        return self.low_s + q * (self.high_s - self.low_s)

    def cdf(self, x: float) -> float:
        if x <= self.low_s:
            return 0.0
        if x >= self.high_s:
            return 1.0
        return (x - self.low_s) / (self.high_s - self.low_s)


def steady_workload(*, rate_rps: float, duration_s: float, ttft: UniformLatency, tpot: UniformLatency,
                    prompt_tokens_cycle: Sequence[int], output_tokens: int,
                    phase: float = 0.0) -> list[RequestRecord]:
    """Requests arriving every ``1 / rate_rps`` seconds; latencies spread evenly over their distributions.

    TTFT and TPOT use Weyl sequences with different steps so they are not locked together;
    prompt sizes cycle.
    """
    count = int(duration_s * rate_rps)
    ttft_u = even_fractions(count, GOLDEN_RATIO_CONJUGATE, offset=phase)
    tpot_u = even_fractions(count, SILVER_RATIO_CONJUGATE, offset=phase)
    records = []
    for i in range(count):
        records.append(RequestRecord.completed(
            arrival_s=i / rate_rps,
            ttft_s=ttft.quantile(ttft_u[i]),
            tpot_s=tpot.quantile(tpot_u[i]),
            prompt_tokens=prompt_tokens_cycle[i % len(prompt_tokens_cycle)],
            output_tokens=output_tokens,
        ))
    return records


def interpolated_quantile(bucket_bounds_s: Sequence[float], cdf: Callable[[float], float], q: float) -> float:
    """What ``histogram_quantile`` returns for a histogram filled exactly by ``cdf``.

    Prometheus finds the bucket holding rank ``q`` and interpolates linearly inside it
    (from 0 for the first bucket when its bound is positive). The difference to the true
    quantile is the bucket interpolation error; it is zero when the distribution is
    uniform across the bucket and at most the bucket's width otherwise.
    """
    lower_bound, lower_fraction = 0.0, 0.0
    for bound in bucket_bounds_s:
        fraction = cdf(bound)
        if fraction >= q:
            if fraction == lower_fraction:
                return bound
            return lower_bound + (bound - lower_bound) * (q - lower_fraction) / (fraction - lower_fraction)
        lower_bound, lower_fraction = bound, fraction
    return bucket_bounds_s[-1]
