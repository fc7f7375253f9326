"""Prometheus adapter: the metric part of a pool's observation, read with prometheus-api-client.

The adapter never guesses. A field it could not read is ``None`` and comes with a
:class:`QueryFailure` saying which query failed and why; a missing metric is never
turned into 0 (the decision core holds on ``None``, see tidal/policies/interface.py).
No exception escapes :meth:`PrometheusMetrics.read_pool`: the operator's timer turns
failures into ``MetricsAvailable=False`` and holds.

Query text comes from :mod:`tidal.operator.promql`; this module only sends it and
classifies what came back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import re
from dataclasses import dataclass, field
from typing import Mapping

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from tidal.operator.promql import (
    LabelScheme,
    MalformedResult,
    MetricQuery,
    WorkloadSelector,
    dialect_named,
    parse_instant_vector,
    pool_queries,
    promql_duration,
)
from tidal.policies.interface import PoolObservation

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
    "ttft_s",
    "tpot_s",
)
"""The ``PoolObservation`` fields this adapter fills, in query order."""

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
    pods: Mapping[str, PodMetrics] = field(default_factory=dict)
    failures: tuple[QueryFailure, ...] = ()

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

    def observation_fields(self) -> dict[str, float | None]:
        """Keyword arguments for ``PoolObservation`` / ``dataclasses.replace``."""
        return {name: getattr(self, name) for name in OBSERVATION_FIELDS}

    def apply_to(self, pool: PoolObservation) -> PoolObservation:
        """``pool`` with its metric fields replaced by what was read (``None`` included)."""
        return dataclasses.replace(pool, **self.observation_fields())

    def reason(self) -> str:
        """A condition reason: the kind of the first failure, or ``MetricsRead``."""
        return self.failures[0].kind.value if self.failures else "MetricsRead"

    def message(self) -> str:
        """A condition message listing every failed field."""
        if not self.failures:
            return "all metrics read"
        return "; ".join(f.describe() for f in self.failures)


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

    def query(self, promql: str, *, at_s: float | None = None):
        """Run one instant query and return its samples; raises :class:`_QueryError` on any failure."""
        params = {"timeout": promql_duration(self.settings.query_timeout_s)}
        if at_s is not None:
            params["time"] = repr(float(at_s))
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
        """
        queries = pool_queries(
            dialect_named(dialect),
            WorkloadSelector(namespace=namespace, deployment=deployment, pool=pool),
            self.settings.labels,
            window_s=window_s,
            percentile=percentile,
        )
        values: dict[str, float | None] = {}
        per_pod: dict[str, dict[str, float | None]] = {}
        failures: list[QueryFailure] = []
        broken: QueryFailure | None = None
        for metric_query in queries:
            if broken is not None:
                failures.append(QueryFailure(
                    field=metric_query.field, query=metric_query.promql, kind=FailureKind.SKIPPED,
                    message=f"not sent: Prometheus unusable this tick ({broken.field}: {broken.kind.value})",
                ))
                values[metric_query.field] = None
                continue
            try:
                samples = self.query(metric_query.promql, at_s=at_s)
                value, pod_values = self._interpret(metric_query, samples)
            except _QueryError as error:
                failure = QueryFailure(
                    field=metric_query.field, query=metric_query.promql, kind=error.kind,
                    message=error.message, http_status=error.http_status,
                )
                failures.append(failure)
                values[metric_query.field] = None
                if _means_prometheus_unusable(error.kind, error.http_status):
                    broken = failure
                continue
            values[metric_query.field] = value
            for pod, pod_value in pod_values.items():
                per_pod.setdefault(pod, {})[metric_query.field] = pod_value
        pods = {name: PodMetrics(pod=name, **fields) for name, fields in sorted(per_pod.items())}
        return PoolMetrics(**values, pods=pods, failures=tuple(failures))

    async def read_pool_async(self, **kwargs) -> PoolMetrics:
        """:meth:`read_pool` in a worker thread, for kopf's async handlers."""
        return await asyncio.to_thread(lambda: self.read_pool(**kwargs))

    def _interpret(self, metric_query: MetricQuery, samples) -> tuple[float, dict[str, float | None]]:
        """Pool value and per-pod values from a result; empty or non-finite results raise."""
        if not samples:
            raise _QueryError(
                FailureKind.EMPTY,
                "no series matched (is the pool scraped, with labels "
                f"{self.settings.labels.namespace}/{self.settings.labels.deployment}/"
                f"{self.settings.labels.pool} as in docs/metrics.md, and does the engine export this metric?)",
            )
        if not metric_query.per_pod:
            if len(samples) != 1:
                raise _QueryError(FailureKind.BAD_RESPONSE, f"expected one series, got {len(samples)}")
            value = samples[0].value
            if not math.isfinite(value):
                raise _QueryError(
                    FailureKind.NOT_A_NUMBER,
                    f"value is {value} (no observations in the window, or all in the +Inf bucket)",
                )
            return value, {}
        pod_label = self.settings.labels.pod
        pod_values: dict[str, float | None] = {}
        for sample in samples:
            pod = sample.labels.get(pod_label, "")
            if pod in pod_values:
                raise _QueryError(FailureKind.BAD_RESPONSE, f"two series for {pod_label}={pod!r}")
            pod_values[pod] = sample.value if math.isfinite(sample.value) else None
        bad = sorted(pod for pod, v in pod_values.items() if v is None)
        if bad:
            raise _QueryError(FailureKind.NOT_A_NUMBER, f"non-finite value for {pod_label} {bad}")
        finite = [v for v in pod_values.values() if v is not None]
        total = math.fsum(finite)
        value = total if metric_query.pool_aggregation == "sum" else total / len(finite)
        return value, pod_values


def _means_prometheus_unusable(kind: FailureKind, http_status: int | None) -> bool:
    """Transport failures, except a 4xx: that is Prometheus refusing one query (bad PromQL or
    label, 422 execution error), so the other queries are still worth sending."""
    if kind is FailureKind.HTTP_ERROR and http_status is not None and 400 <= http_status < 500:
        return False
    return kind in TRANSPORT_FAILURES
