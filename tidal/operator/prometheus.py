"""Prometheus adapter: the metric part of a pool's observation, read with prometheus-api-client.

The adapter never guesses. A field it could not read is ``None`` and comes with a
:class:`QueryFailure` saying which query failed and why; a missing metric is never
turned into 0 (the decision core holds on ``None``, see tidal/policies/interface.py).
No exception escapes :meth:`PrometheusMetrics.read_pool`: the operator's timer turns
failures into ``MetricsAvailable=False`` and holds.

Query text comes from :mod:`tidal.operator.promql`; this module only sends it and
classifies what came back. Latency percentiles and SLO attainment are computed from
histogram bucket rates by :mod:`tidal.controllers.slo_attainment`.

Two ways to read: :meth:`PrometheusMetrics.read_pool` sends one query per field it can read for one
pool (eleven for vLLM, ten for SGLang, which has no KV residency histograms);
:class:`FleetMetrics` sends the same ones once per dialect for every workload and shares
the answer between the ticks of one half interval, so the query rate does not grow with the
number of workloads (docs/metrics.md, "Reads for many workloads").
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from tidal.controllers.slo_attainment import Attainment, Bucket, histogram_quantile, pool_attainment
from tidal.operator.metric_validation import (
    IN_FLIGHT_FIELDS,
    PodRejection,
    SampleProblem,
    check_sample,
    stale_rejection,
    unobserved_count,
    unobserved_pods,
)
from tidal.operator.promql import (
    KV_HISTOGRAM_LABEL,
    KV_IDLE_BEFORE_EVICT,
    KV_REUSE_GAP,
    STALE_LABEL,
    FunctionSelector,
    LabelScheme,
    MalformedResult,
    MetricQuery,
    PodsSelector,
    Sample,
    WorkloadSelector,
    dialect_named,
    fleet_queries,
    function_queries,
    parse_instant_vector,
    pool_queries,
    promql_duration,
    quantile_from_percentile,
    workload_key,
)
from tidal.policies.interface import KvResidency, PoolObservation

DEFAULT_WINDOW_S = 60.0
"""Knative KPA's documented default stable window (config-autoscaler ``stable-window: 60s``).
Prometheus recommends a rate() range of at least four scrape intervals; 60 s covers the
common 15 s scrape interval."""
DEFAULT_QUERY_TIMEOUT_S = 5.0
"""A third of the operator's default 15 s tick: a hung Prometheus cannot stall a tick, and
because a transport failure skips the remaining queries one tick waits at most this long."""
DEFAULT_MAX_RETRIES = 0
"""No in-tick retries: the next tick (15 s later) is the retry, and the core holds meanwhile.
prometheus-api-client's own default (3 retries with backoff) could take longer than a tick."""
RETRY_ON_STATUS = (502, 503, 504)
"""Gateway and overload statuses worth retrying when ``max_retries`` > 0 (RFC 9110 §15.6)."""

OBSERVATION_FIELDS = (
    "request_rate_rps",
    "prompt_tokens_rps",
    "output_tokens_rps",
    "running_requests",
    "waiting_requests",
    "kv_cache_usage_ratio",
    "peak_request_rate_rps",
    "in_flight_change_rps",
    "ttft_s",
    "tpot_s",
    "kv_residency",
)
"""The ``PoolObservation`` fields this adapter fills, in query order (``kv_residency`` only for a
dialect that has the histograms: at most one query per field)."""

PER_POD_FIELDS = (
    "request_rate_rps",
    "prompt_tokens_rps",
    "output_tokens_rps",
    "running_requests",
    "waiting_requests",
    "kv_cache_usage_ratio",
)


@dataclass(frozen=True)
class PrometheusSettings:
    """How to reach Prometheus and how to read a workload's series there."""

    url: str
    query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    labels: LabelScheme = field(default_factory=LabelScheme)
    headers: Mapping[str, str] | None = None
    disable_ssl: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError(
                f"prometheus url {self.url!r} must be an http(s) URL such as "
                "http://prometheus-operated.monitoring:9090"
            )
        if not (isinstance(self.query_timeout_s, (int, float)) and 0 < self.query_timeout_s <= 600):
            raise ValueError(f"query_timeout_s must be in (0, 600] seconds, got {self.query_timeout_s!r}")
        if not (isinstance(self.max_retries, int) and 0 <= self.max_retries <= 10):
            raise ValueError(f"max_retries must be an integer in [0, 10], got {self.max_retries!r}")


class FailureKind(str, enum.Enum):
    """Why a field could not be read. Values double as condition reasons."""

    CONNECTION = "ConnectionFailed"
    """Nothing answered: connection refused, DNS failure, reset."""
    TIMEOUT = "Timeout"
    """Connected (or tried to) but no answer within ``query_timeout_s``."""
    HTTP_ERROR = "HTTPError"
    """Prometheus answered with a non-200 status (5xx overload, 4xx rejected query)."""
    BAD_RESPONSE = "BadResponse"
    """A 200 answer that is not Prometheus JSON of the expected shape."""
    EMPTY = "EmptyResult"
    """The query ran but matched no series (workload not scraped, labels differ, metric absent)."""
    NOT_A_NUMBER = "NotANumber"
    """The query returned NaN or ±Inf (e.g. a quantile over a window with no observations)."""
    REJECTED = "MetricsRejected"
    """Every series of the field was rejected: negative, implausible or stale (see the message)."""
    SKIPPED = "Skipped"
    """Not attempted because an earlier query showed Prometheus unusable this tick."""


TRANSPORT_FAILURES = frozenset(
    {FailureKind.CONNECTION, FailureKind.TIMEOUT, FailureKind.HTTP_ERROR, FailureKind.BAD_RESPONSE}
)
"""Failures that say Prometheus itself is unusable, not just this query."""


@dataclass(frozen=True)
class QueryFailure:
    """One field that could not be read: which query, what kind of failure, details."""

    field: str
    query: str
    kind: FailureKind
    message: str
    http_status: int | None = None

    def describe(self) -> str:
        return f"{self.field}: {self.kind.value}: {self.message}"


@dataclass(frozen=True)
class PodMetrics:
    """Per-pod values (``None`` when the pod had no series for that field)."""

    pod: str
    request_rate_rps: float | None = None
    prompt_tokens_rps: float | None = None
    output_tokens_rps: float | None = None
    running_requests: float | None = None
    waiting_requests: float | None = None
    kv_cache_usage_ratio: float | None = None


@dataclass(frozen=True)
class PoolMetrics:
    """The metric part of a ``PoolObservation`` plus per-pod values and what went wrong."""

    request_rate_rps: float | None = None
    prompt_tokens_rps: float | None = None
    output_tokens_rps: float | None = None
    running_requests: float | None = None
    waiting_requests: float | None = None
    kv_cache_usage_ratio: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    peak_request_rate_rps: float | None = None
    in_flight_change_rps: float | None = None
    ttft_buckets: tuple[Bucket, ...] | None = None
    """Pool-wide TTFT bucket rates over the window, (le, cumulative req/s); ``ttft_s`` comes from them."""
    tpot_buckets: tuple[Bucket, ...] | None = None
    """Pool-wide inter-token-latency bucket rates over the window, (le, cumulative tokens/s)."""
    kv_residency: KvResidency | None = None
    """KV-block residency bucket increments over the window (vLLM ``--kv-cache-metrics``). ``None``
    without a failure when no series matched: the histograms are opt-in, exported only by vLLM pods
    started with the flag (tidal renders it for ``kvCache.ttl: auto``). Values are passed on as read;
    a non-finite or negative increment fails the field as other histograms do, and the core's guard
    (tidal/policies/guards.py ``kv_residency_problem``) checks the rest (bounds, monotone counts)."""
    pods: Mapping[str, PodMetrics] = field(default_factory=dict)
    """Per pod, the values that passed validation (``None`` for a field the pod did not report
    or that was rejected)."""
    failures: tuple[QueryFailure, ...] = ()
    rejections: tuple[PodRejection, ...] = ()
    """Per-pod samples that were not used (tidal/operator/metric_validation.py), for fields that
    still have a value from the other pods."""

    def attainment(self, ttft_target_s: float | None, tpot_target_s: float | None) -> Attainment:
        """Fraction of the window's requests (TTFT) and tokens (TPOT) within the targets; ``None``
        parts where a target is not set or nothing was observed (never 0 for "no requests")."""
        return pool_attainment(self.ttft_buckets, self.tpot_buckets, ttft_target_s, tpot_target_s)

    @property
    def complete(self) -> bool:
        """Every field was read."""
        return not self.failures

    @property
    def prometheus_reachable(self) -> bool:
        """Prometheus answered every query sensibly (possibly "no data" or "bad query"): the failures,
        if any, are about the workload's series, not about Prometheus being down or broken."""
        return not any(_means_prometheus_unusable(f.kind, f.http_status) or f.kind is FailureKind.SKIPPED
                       for f in self.failures)

    def observation_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``PoolObservation`` / ``dataclasses.replace``."""
        return {name: getattr(self, name) for name in OBSERVATION_FIELDS}

    def apply_to(self, pool: PoolObservation) -> PoolObservation:
        """``pool`` with its metric fields replaced by what was read (``None`` included)."""
        return dataclasses.replace(pool, **self.observation_fields())

    def problems(self, ready_pods: Collection[str] | None = None) -> tuple[PodRejection, ...]:
        """Every per-pod sample not used, plus the Ready pods (by name, when known) that did not
        report an in-flight count at all."""
        reported = {name: {f: getattr(pod, f) for f in IN_FLIGHT_FIELDS} for name, pod in self.pods.items()}
        missing = unobserved_pods(ready_pods, reported, self.rejections) if ready_pods is not None else ()
        return (*self.rejections, *missing)

    def unobserved_replicas(self, ready_replicas: int, ready_pods: Collection[str] | None = None) -> int:
        """How many Ready replicas lack a usable in-flight count: by name when the Ready pods are
        known, else by count (Ready replicas beyond the pods that report both in-flight fields)."""
        if ready_pods is not None:
            return unobserved_count(ready_pods, self.problems(ready_pods))
        reporting = sum(all(getattr(pod, f) is not None for f in IN_FLIGHT_FIELDS) for pod in self.pods.values())
        return max(0, ready_replicas - reporting)

    def observe(self, pool: PoolObservation, ready_pods: Collection[str] | None = None) -> PoolObservation:
        """``pool`` with the metric fields read and ``unobserved_replicas`` set: the observation the
        decision core gets. When an in-flight field could not be read at all it is ``None`` (hold)."""
        observed = self.apply_to(pool)
        if observed.running_requests is None or observed.waiting_requests is None:
            return observed
        return dataclasses.replace(observed, unobserved_replicas=self.unobserved_replicas(
            pool.ready_replicas, ready_pods))

    def reason(self) -> str:
        """A condition reason: the kind of the first failure, or ``MetricsRead``."""
        return self.failures[0].kind.value if self.failures else "MetricsRead"

    def message(self) -> str:
        """A condition message listing every failed field and every rejected pod sample."""
        parts = [f.describe() for f in self.failures] + [r.describe() for r in self.rejections]
        return "; ".join(parts) if parts else "all metrics read"


class _QueryError(Exception):
    def __init__(self, kind: FailureKind, message: str, http_status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.http_status = http_status


_STATUS_IN_MESSAGE = re.compile(r"HTTP Status Code (\d{3})")


def _caused_by(exc: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` or anything it wraps (requests wraps urllib3 wraps socket) is one of ``types``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, types):
            return True
        for nested in (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args):
            if isinstance(nested, BaseException):
                stack.append(nested)
    return False


def _classify(exc: Exception) -> _QueryError:
    """Map what prometheus-api-client / requests raised onto a :class:`FailureKind`."""
    # urllib3's NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError: test it first.
    if _caused_by(exc, (NewConnectionError,)):
        return _QueryError(FailureKind.CONNECTION, f"cannot connect ({_shorten(str(exc))})")
    if isinstance(exc, requests.Timeout) or _caused_by(exc, (ReadTimeoutError, ConnectTimeoutError, TimeoutError)):
        return _QueryError(FailureKind.TIMEOUT, f"no answer in time ({type(exc).__name__}: {exc})")
    if isinstance(exc, PrometheusApiClientException):
        match = _STATUS_IN_MESSAGE.search(str(exc))
        status = int(match.group(1)) if match else None
        return _QueryError(FailureKind.HTTP_ERROR, _shorten(str(exc)), http_status=status)
    if isinstance(exc, requests.exceptions.RetryError):
        return _QueryError(FailureKind.HTTP_ERROR, f"retries exhausted on error statuses: {_shorten(str(exc))}")
    if isinstance(exc, requests.ConnectionError):
        return _QueryError(FailureKind.CONNECTION, f"{type(exc).__name__}: {_shorten(str(exc))}")
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        # requests.JSONDecodeError is a ValueError; KeyError/TypeError come from JSON without data.result.
        return _QueryError(FailureKind.BAD_RESPONSE, f"not a Prometheus query response ({type(exc).__name__}: "
                                                     f"{_shorten(str(exc))})")
    if isinstance(exc, requests.RequestException):
        return _QueryError(FailureKind.CONNECTION, f"{type(exc).__name__}: {_shorten(str(exc))}")
    return _QueryError(FailureKind.BAD_RESPONSE, f"unexpected {type(exc).__name__}: {_shorten(str(exc))}")


_MESSAGE_LIMIT = 300


def _shorten(text: str) -> str:
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


class PrometheusMetrics:
    """Reads pools' engine metrics from one Prometheus. Thread-safe for concurrent ``read_pool`` calls
    to the extent requests sessions are; one instance per operator process is the intended use."""

    def __init__(self, settings: PrometheusSettings):
        self.settings = settings
        retry = Retry(
            total=settings.max_retries,
            backoff_factor=0,
            status_forcelist=RETRY_ON_STATUS,
            allowed_methods=frozenset({"GET"}),
            # Hand the last error response back instead of raising, so its status is reported.
            raise_on_status=False,
        )
        self._client = PrometheusConnect(
            url=settings.url.rstrip("/"),
            headers=dict(settings.headers) if settings.headers else None,
            disable_ssl=settings.disable_ssl,
            retry=retry,
            timeout=settings.query_timeout_s,
        )
        self._count_lock = threading.Lock()
        self.queries_sent = 0
        """Instant queries sent so far (for tests and the benchmark: queries per tick)."""

    def query(self, promql: str, *, at_s: float | None = None) -> tuple[Sample, ...]:
        """Run one instant query and return its samples; raises :class:`_QueryError` on any failure."""
        params = {"timeout": promql_duration(self.settings.query_timeout_s)}
        if at_s is not None:
            params["time"] = repr(float(at_s))
        with self._count_lock:
            self.queries_sent += 1
        try:
            raw = self._client.custom_query(promql, params=params, timeout=self.settings.query_timeout_s)
        except Exception as exc:  # noqa: BLE001 - every failure becomes data, by contract
            raise _classify(exc) from exc
        try:
            return parse_instant_vector(raw)
        except MalformedResult as exc:
            raise _QueryError(FailureKind.BAD_RESPONSE, f"malformed result: {exc}") from exc

    def read_pool(
        self,
        *,
        namespace: str,
        deployment: str,
        pool: str,
        dialect: str,
        window_s: float = DEFAULT_WINDOW_S,
        percentile: float,
        at_s: float | None = None,
    ) -> PoolMetrics:
        """Read every metric field of one pool; failures become ``None`` plus a :class:`QueryFailure`.

        Bad arguments (unknown dialect, window <= 0, percentile outside (0, 100)) are the
        caller's bug and raise ``ValueError``; everything Prometheus does is reported as data.
        ``at_s`` pins the evaluation time (Unix seconds) so all queries see the same instant.
        This sends ten queries; :class:`FleetMetrics` reads every pool with ten per dialect.
        """
        quantile = quantile_from_percentile(percentile)
        queries = pool_queries(
            dialect_named(dialect),
            WorkloadSelector(namespace=namespace, deployment=deployment, pool=pool),
            self.settings.labels,
            window_s=window_s,
        )
        return self.read_queries(queries, window_s=window_s, quantile=quantile, at_s=at_s)

    def read_pods(self, *, namespace: str, pods: Sequence[str], dialect: str, window_s: float = DEFAULT_WINDOW_S,
                  percentile: float, at_s: float | None = None) -> PoolMetrics:
        """:meth:`read_pool` for a pool in target mode: the engine series of the named pods (found by
        the scale target's label selector), whatever labels they carry."""
        quantile = quantile_from_percentile(percentile)
        queries = pool_queries(dialect_named(dialect), PodsSelector(namespace, tuple(pods)), self.settings.labels,
                               window_s=window_s)
        return self.read_queries(queries, window_s=window_s, quantile=quantile, at_s=at_s)

    def read_function(self, *, namespace: str, function: str, window_s: float = DEFAULT_WINDOW_S,
                      at_s: float | None = None) -> PoolMetrics:
        """A ServerlessFunction's in-flight requests and request rate, validated per pod exactly as
        an engine's (tidal/operator/metric_validation.py); failures are data, as in :meth:`read_pool`."""
        queries = function_queries(FunctionSelector(namespace, function), self.settings.labels, window_s=window_s)
        return self.read_queries(queries, window_s=window_s, quantile=None, at_s=at_s)

    def read_queries(self, queries: Sequence[MetricQuery], *, window_s: float, quantile: float | None,
                     at_s: float | None = None) -> PoolMetrics:
        """Send ``queries`` in order and validate what comes back; a transport failure skips the rest.
        ``quantile`` is the latency percentile read from histogram queries (``None``: there are none)."""
        fields = _FieldCollector(self.settings.labels, window_s)
        broken: QueryFailure | None = None
        for metric_query in queries:
            if broken is not None:
                fields.fail(_skipped(metric_query, broken))
                continue
            try:
                samples = self.query(metric_query.promql, at_s=at_s)
                _check_shape(metric_query, samples)
                fields.add(metric_query, samples, quantile)
            except _QueryError as error:
                failure = _failure(metric_query, error)
                fields.fail(failure)
                if _means_prometheus_unusable(error.kind, error.http_status):
                    broken = failure
        return fields.result()

    async def read_pool_async(self, **kwargs) -> PoolMetrics:
        """:meth:`read_pool` in a worker thread, for kopf's async handlers."""
        return await asyncio.to_thread(lambda: self.read_pool(**kwargs))

    def read_fleet(self, *, dialect: str, window_s: float = DEFAULT_WINDOW_S, at_s: float | None = None,
                   namespaces: Sequence[str] = ()) -> "FleetSnapshot":
        """One answer per query for every pool of every workload of ``dialect``: one query per field.

        Failure handling is :meth:`read_pool`'s: a transport failure skips the remaining queries, and
        every pool sees the failed and skipped fields as failures. A 200 answer that is not an
        instant vector of the expected shape (histogram series without ``le``) is ``BadResponse``.
        ``namespaces`` limits the read (a namespace-scoped operator); empty reads all namespaces.
        """
        queries = fleet_queries(dialect_named(dialect), self.settings.labels, window_s=window_s,
                                namespaces=namespaces)
        answers: list[tuple[MetricQuery, Mapping[tuple[str, str, str], tuple[Sample, ...]] | QueryFailure]] = []
        broken: QueryFailure | None = None
        for metric_query in queries:
            if broken is not None:
                answers.append((metric_query, _skipped(metric_query, broken)))
                continue
            try:
                samples = self.query(metric_query.promql, at_s=at_s)
                _check_shape(metric_query, samples)
            except _QueryError as error:
                failure = _failure(metric_query, error)
                answers.append((metric_query, failure))
                if _means_prometheus_unusable(error.kind, error.http_status):
                    broken = failure
                continue
            grouped: dict[tuple[str, str, str], list[Sample]] = {}
            for sample in samples:
                grouped.setdefault(workload_key(sample.labels, self.settings.labels), []).append(sample)
            answers.append((metric_query, {key: tuple(group) for key, group in grouped.items()}))
        return FleetSnapshot(dialect=dialect, window_s=window_s, labels=self.settings.labels,
                             answers=tuple(answers))


@dataclass(frozen=True)
class FleetSnapshot:
    """One fleet read: per query, either every pool's series or the failure every pool inherits."""

    dialect: str
    window_s: float
    labels: LabelScheme
    answers: tuple[tuple[MetricQuery, Mapping[tuple[str, str, str], tuple[Sample, ...]] | QueryFailure], ...]

    def pool_metrics(self, *, namespace: str, deployment: str, pool: str, percentile: float) -> PoolMetrics:
        """What :meth:`PrometheusMetrics.read_pool` would have returned for this pool.

        A pool without series gets ``EmptyResult`` for that field, as its own query would; one pool's
        odd series (two for one pod) make only that pool's field ``BadResponse``.
        """
        quantile = quantile_from_percentile(percentile)
        key = (namespace, deployment, pool)
        fields = _FieldCollector(self.labels, self.window_s)
        for metric_query, answer in self.answers:
            if isinstance(answer, QueryFailure):
                fields.fail(answer)
                continue
            try:
                fields.add(metric_query, answer.get(key, ()), quantile)
            except _QueryError as error:
                fields.fail(_failure(metric_query, error))
        return fields.result()


FLEET_MAX_AGE_FRACTION = 0.5
"""A fleet read is reused for half a tick interval: every workload's tick sees data at most
interval/2 older than a read of its own (a full interval would let a workload whose timer fires a
little early reuse the snapshot of its previous tick), at most two reads per dialect per interval."""


class FleetMetrics:
    """``read_pool`` for many workloads from shared fleet reads: one read per dialect and window per
    ``max_age_s``, whatever the number of workloads. Thread-safe: concurrent ticks wait for the
    read in flight instead of sending their own.

    Failures are shared too: when Prometheus is down, the failed read is reused until it expires,
    so 1,000 workloads wait for one timeout per interval instead of one each. ``at_s`` (a pinned
    evaluation time) bypasses the cache and reads the pool alone.
    """

    def __init__(self, adapter: PrometheusMetrics, *, max_age_s: float, namespaces: Sequence[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s!r}")
        self.adapter = adapter
        self.namespaces = tuple(namespaces)
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, float], threading.Lock] = {}
        self._cache: dict[tuple[str, float], tuple[float, FleetSnapshot]] = {}
        self.reads = 0
        """Fleet reads sent so far (each is ten queries)."""

    def snapshot(self, dialect: str, window_s: float) -> FleetSnapshot:
        key = (dialect, float(window_s))
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self._cache.get(key)
            if cached is not None and self._clock() - cached[0] < self.max_age_s:
                return cached[1]
            snapshot = self.adapter.read_fleet(dialect=dialect, window_s=window_s, namespaces=self.namespaces)
            self._cache[key] = (self._clock(), snapshot)
            self.reads += 1
            return snapshot

    def read_pool(self, *, namespace: str, deployment: str, pool: str, dialect: str,
                  window_s: float = DEFAULT_WINDOW_S, percentile: float, at_s: float | None = None) -> PoolMetrics:
        """Same arguments and result as :meth:`PrometheusMetrics.read_pool`."""
        if at_s is not None:
            return self.adapter.read_pool(namespace=namespace, deployment=deployment, pool=pool, dialect=dialect,
                                          window_s=window_s, percentile=percentile, at_s=at_s)
        quantile_from_percentile(percentile)  # a bad argument raises before any query, as in read_pool
        return self.snapshot(dialect, window_s).pool_metrics(
            namespace=namespace, deployment=deployment, pool=pool, percentile=percentile)

    def read_pods(self, **kwargs: Any) -> PoolMetrics:
        """A target-mode pool's pods carry no tidal labels, so the fleet read cannot hold them: read
        them alone (:meth:`PrometheusMetrics.read_pods`)."""
        return self.adapter.read_pods(**kwargs)


class _FieldCollector:
    """Accumulates one pool's fields, per-pod values, histograms and failures into a PoolMetrics."""

    def __init__(self, labels: LabelScheme, window_s: float) -> None:
        self.labels = labels
        self.window_s = window_s
        self.values: dict[str, Any] = {}
        self.per_pod: dict[str, dict[str, float | None]] = {}
        self.buckets: dict[str, tuple[Bucket, ...]] = {}
        self.failures: list[QueryFailure] = []
        self.rejections: list[PodRejection] = []

    def fail(self, failure: QueryFailure) -> None:
        self.values[failure.field] = None
        self.failures.append(failure)

    def add(self, metric_query: MetricQuery, samples: Sequence[Sample], quantile: float | None) -> None:
        """Interpret one pool's series for one field; raises :class:`_QueryError` when unusable.

        Whatever the data, only :class:`_QueryError` leaves: an answer that breaks the arithmetic in
        a way validation did not foresee becomes ``BadResponse`` instead of crashing the tick."""
        try:
            self._add(metric_query, samples, quantile)
        except _QueryError:
            raise
        except (ArithmeticError, ValueError, TypeError, KeyError) as exc:
            raise _QueryError(FailureKind.BAD_RESPONSE,
                              f"unusable values ({type(exc).__name__}: {_shorten(str(exc))})") from exc

    def _add(self, metric_query: MetricQuery, samples: Sequence[Sample], quantile: float | None) -> None:
        if metric_query.residency:
            self.values[metric_query.field] = _interpret_residency(samples, self.window_s)
            return
        if metric_query.histogram:
            assert quantile is not None, "histogram queries need a quantile"
            value, buckets = _interpret_histogram(samples, quantile, self.labels)
            self.buckets[metric_query.field] = buckets
            self.values[metric_query.field] = value
            return
        value, pod_values, rejected = _interpret(metric_query, samples, self.labels, self.window_s)
        self.values[metric_query.field] = value
        self.rejections.extend(rejected)
        for pod, pod_value in pod_values.items():
            self.per_pod.setdefault(pod, {})[metric_query.field] = pod_value

    def result(self) -> PoolMetrics:
        pods = {name: PodMetrics(pod=name, **fields) for name, fields in sorted(self.per_pod.items())}
        return PoolMetrics(**self.values, ttft_buckets=self.buckets.get("ttft_s"),
                           tpot_buckets=self.buckets.get("tpot_s"), pods=pods, failures=tuple(self.failures),
                           rejections=tuple(self.rejections))


def _failure(metric_query: MetricQuery, error: _QueryError) -> QueryFailure:
    return QueryFailure(field=metric_query.field, query=metric_query.promql, kind=error.kind,
                        message=error.message, http_status=error.http_status)


def _skipped(metric_query: MetricQuery, broken: QueryFailure) -> QueryFailure:
    return QueryFailure(
        field=metric_query.field, query=metric_query.promql, kind=FailureKind.SKIPPED,
        message=f"not sent: Prometheus unusable this tick ({broken.field}: {broken.kind.value})",
    )


def _check_shape(metric_query: MetricQuery, samples: Sequence[Sample]) -> None:
    """Histogram answers must be bucket series: each with an ``le`` that is a number (or +Inf); KV
    residency series also say which histogram they are."""
    if metric_query.residency:
        for sample in samples:
            if sample.labels.get(KV_HISTOGRAM_LABEL) not in (KV_REUSE_GAP, KV_IDLE_BEFORE_EVICT):
                raise _QueryError(FailureKind.BAD_RESPONSE,
                                  f"KV residency series without a {KV_HISTOGRAM_LABEL} label: {dict(sample.labels)}")
    elif not metric_query.histogram:
        return
    for sample in samples:
        try:
            float(sample.labels["le"])
        except (KeyError, ValueError):
            raise _QueryError(FailureKind.BAD_RESPONSE,
                              f"histogram series without a numeric 'le' label: {dict(sample.labels)}") from None


def _no_series(labels: LabelScheme) -> _QueryError:
    return _QueryError(
        FailureKind.EMPTY,
        "no series matched (is the pool scraped, with labels "
        f"{labels.namespace}/{labels.deployment}/{labels.pool} as in docs/metrics.md, "
        "and does the engine export this metric?)",
    )


def _interpret_histogram(samples: Sequence[Sample], quantile: float,
                         labels: LabelScheme) -> tuple[float, tuple[Bucket, ...]]:
    """Percentile latency and bucket rates from one pool's bucket series."""
    if not samples:
        raise _no_series(labels)
    buckets = tuple(sorted((float(s.labels["le"]), s.value) for s in samples))
    if any(not math.isfinite(count) for _, count in buckets):
        raise _QueryError(FailureKind.NOT_A_NUMBER, "non-finite bucket rate")
    if any(count < 0 for _, count in buckets):
        raise _QueryError(FailureKind.REJECTED, "negative bucket rate (rates of counters cannot be negative)")
    value = histogram_quantile(quantile, buckets)
    if not math.isfinite(value):
        raise _QueryError(
            FailureKind.NOT_A_NUMBER,
            f"quantile is {value} (no observations in the window, or no +Inf bucket)",
        )
    return value, buckets


def _interpret_residency(samples: Sequence[Sample], window_s: float) -> KvResidency | None:
    """One pool's KV residency bucket increments; ``None`` when it has none (opt-in metric). Two
    series for one bound of one histogram (the pool's answer is malformed) are ``BadResponse``."""
    if not samples:
        return None
    by: dict[str, dict[float, float]] = {KV_REUSE_GAP: {}, KV_IDLE_BEFORE_EVICT: {}}
    for sample in samples:
        buckets = by[sample.labels[KV_HISTOGRAM_LABEL]]
        le = float(sample.labels["le"])
        if le in buckets:
            raise _QueryError(FailureKind.BAD_RESPONSE, f"two KV residency series for le={le:g}")
        if not math.isfinite(sample.value):
            raise _QueryError(FailureKind.NOT_A_NUMBER, "non-finite KV residency bucket increment")
        if sample.value < 0:
            raise _QueryError(FailureKind.REJECTED, "negative KV residency bucket increment (increases of "
                                                    "counters cannot be negative)")
        buckets[le] = sample.value
    return KvResidency(reuse_gap=tuple(sorted(by[KV_REUSE_GAP].items())),
                       idle_before_evict=tuple(sorted(by[KV_IDLE_BEFORE_EVICT].items())), window_s=window_s)


def _interpret(metric_query: MetricQuery, samples: Sequence[Sample], labels: LabelScheme,
               window_s: float) -> tuple[float, dict[str, float | None], list[PodRejection]]:
    """Pool value, accepted per-pod values and per-pod rejections from one field's result.

    Each pod's sample is validated on its own (:func:`check_sample`; stale when the query tagged it):
    a rejected pod is left out of the pool value and named in the rejections, the others count.
    Raises when no series came back or when every pod was rejected.
    """
    if not samples:
        raise _no_series(labels)
    if not metric_query.per_pod:
        if len(samples) != 1:
            raise _QueryError(FailureKind.BAD_RESPONSE, f"expected one series, got {len(samples)}")
        value = samples[0].value
        if not math.isfinite(value):
            raise _QueryError(FailureKind.NOT_A_NUMBER, f"value is {value}")
        return value, {}, []
    pod_label = labels.pod
    field_name = metric_query.field
    pod_values: dict[str, float | None] = {}
    rejected: list[PodRejection] = []
    for sample in samples:
        pod = sample.labels.get(pod_label, "")
        if pod in pod_values:
            raise _QueryError(FailureKind.BAD_RESPONSE, f"two series for {pod_label}={pod!r}")
        pod_values[pod] = None
        problem = check_sample(field_name, sample.value)
        if problem is not None:
            rejected.append(PodRejection(pod, field_name, problem[0], sample.value, problem[1]))
        elif sample.labels.get(STALE_LABEL) == "true":
            rejected.append(stale_rejection(pod, field_name, sample.value, window_s))
        else:
            pod_values[pod] = sample.value
    accepted = [v for v in pod_values.values() if v is not None]
    if not accepted:
        kind = (FailureKind.NOT_A_NUMBER if all(r.problem is SampleProblem.NOT_FINITE for r in rejected)
                else FailureKind.REJECTED)
        raise _QueryError(kind, "every pod rejected: " + "; ".join(r.describe() for r in rejected))
    total = math.fsum(accepted)
    value = total if metric_query.pool_aggregation == "sum" else total / len(accepted)
    return value, pod_values, rejected


def _means_prometheus_unusable(kind: FailureKind, http_status: int | None) -> bool:
    """Transport failures, except a 4xx: that is Prometheus refusing one query (bad PromQL or
    label, 422 execution error), so the other queries are still worth sending."""
    if kind is FailureKind.HTTP_ERROR and http_status is not None and 400 <= http_status < 500:
        return False
    return kind in TRANSPORT_FAILURES
