"""PromQL for the engine metrics tidal reads: metric names per dialect, label scheme, query text.

Everything here is pure string building and result parsing, so it can be checked
without a Prometheus. The HTTP part lives in :mod:`tidal.operator.prometheus`.

Two facts shape the queries (details and sources in docs/metrics.md):

* Engines rename metrics between releases (vLLM ``gpu_cache_usage_perc`` became
  ``kv_cache_usage_perc``; ``time_per_output_token_seconds`` became
  ``inter_token_latency_seconds``; SGLang made the same change). A dialect lists the
  names of each signal newest first and the query joins them with PromQL ``or``,
  which keeps the first name that has series and ignores later ones. Engines that
  export both the deprecated and the new name during a transition are therefore
  read once, not twice.
* The same metric reaches Prometheus spelt ``vllm:x`` or ``vllm_x``: prometheus-client
  0.26 writes ``vllm_x`` in its OpenMetrics exposition, which Prometheus negotiates
  by default, and keeps ``vllm:x`` in the classic text format. Every selector
  therefore matches ``__name__=~"vllm:x|vllm_x"``.

Histograms are read as bucket rates (``sum by (le)``), not as ``histogram_quantile``: the
percentile and the SLO attainment are computed from them in Python
(tidal/controllers/slo_attainment.py), so one query serves any percentile and target and
one fleet query (:func:`fleet_queries`, grouped by the workload labels) serves every workload.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

# ---------------------------------------------------------------------------
# Label scheme

DEFAULT_NAMESPACE_LABEL = "namespace"
"""prometheus-operator PodMonitor/ServiceMonitor targets carry the pod's namespace as ``namespace``."""
DEFAULT_POD_LABEL = "pod"
"""prometheus-operator PodMonitor/ServiceMonitor targets carry the pod name as ``pod``."""
DEFAULT_DEPLOYMENT_LABEL = "tidal_dev_deployment"
"""Pod label ``tidal.dev/deployment`` after Prometheus label sanitising ('.' and '/' become '_')."""
DEFAULT_POOL_LABEL = "tidal_dev_pool"
"""Pod label ``tidal.dev/pool`` after Prometheus label sanitising."""

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


@dataclass(frozen=True)
class LabelScheme:
    """Prometheus label names that identify a workload's series (see docs/metrics.md for relabelling)."""

    namespace: str = DEFAULT_NAMESPACE_LABEL
    deployment: str = DEFAULT_DEPLOYMENT_LABEL
    pool: str = DEFAULT_POOL_LABEL
    pod: str = DEFAULT_POD_LABEL

    def __post_init__(self) -> None:
        for field_name in ("namespace", "deployment", "pool", "pod"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not _LABEL_NAME.match(value):
                raise ValueError(
                    f"labels.{field_name}={value!r} is not a Prometheus label name; "
                    "use letters, digits and '_' and do not start with a digit "
                    "(e.g. 'tidal_dev_pool' for the pod label tidal.dev/pool)"
                )


@dataclass(frozen=True)
class WorkloadSelector:
    """Which series belong to one pool of one ModelDeployment."""

    namespace: str
    deployment: str
    pool: str

    def __post_init__(self) -> None:
        for field_name in ("namespace", "deployment", "pool"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"workload {field_name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True)
class FleetSelector:
    """Every tidal engine series (those carrying the deployment label), for the fleet read;
    only in ``namespaces`` when the operator is namespace-scoped (empty: all namespaces)."""

    namespaces: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for namespace in self.namespaces:
            if not isinstance(namespace, str) or not namespace:
                raise ValueError(f"fleet namespaces must be non-empty strings, got {namespace!r}")


@dataclass(frozen=True)
class FunctionSelector:
    """The series of one ServerlessFunction's pods: its Deployment's pods, matched by name.

    Pods of Deployment ``name`` are named ``<name>-<replicaset hash>-<suffix>``; the name is
    regex-escaped, so ``api.v1`` does not match the pods of ``api-v1``.
    """

    namespace: str
    function: str

    def __post_init__(self) -> None:
        for field_name in ("namespace", "function"):
            value = getattr(self, field_name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"function {field_name} must be a non-empty string, got {value!r}")

    @property
    def pod_pattern(self) -> str:
        return re.escape(self.function) + FUNCTION_POD_SUFFIX


@dataclass(frozen=True)
class PodsSelector:
    """The series of named pods in one namespace: a pool in target mode (``scaleTargetRef``), whose
    pods tidal finds by the target's label selector, not by tidal's labels. Names are regex-escaped
    and anchored (Prometheus anchors ``=~``), so ``llama-1`` does not also match ``llama-10``."""

    namespace: str
    pods: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ValueError(f"pods namespace must be a non-empty string, got {self.namespace!r}")
        if not self.pods or not all(isinstance(p, str) and p for p in self.pods):
            raise ValueError(f"pods must be non-empty pod names, got {self.pods!r}")

    @property
    def pod_pattern(self) -> str:
        return "|".join(re.escape(p) for p in sorted(set(self.pods)))


FUNCTION_POD_SUFFIX = "-[a-z0-9]+-[a-z0-9]+"
"""ReplicaSet hash and pod suffix that follow a Deployment's name in its pods' names."""
FUNCTION_REQUESTS_METRIC = "http_requests_total"
"""Request counter a function exports: the Prometheus client libraries' conventional HTTP counter name."""
FUNCTION_IN_FLIGHT_METRIC = "http_requests_in_flight"
"""In-flight gauge a function exports (client_golang's promhttp.InstrumentHandlerInFlight examples)."""


# ---------------------------------------------------------------------------
# Dialects


@dataclass(frozen=True)
class DialectMetrics:
    """Metric names of one engine family, each signal newest name first (as exported, with ``_total``).

    Histogram entries are base names without ``_bucket``.
    """

    name: str
    request_count: tuple[str, ...]
    prompt_tokens: tuple[str, ...]
    output_tokens: tuple[str, ...]
    running_requests: tuple[str, ...]
    waiting_requests: tuple[str, ...]
    kv_cache_usage: tuple[str, ...]
    ttft_histogram: tuple[str, ...]
    tpot_histogram: tuple[str, ...]
    kv_reuse_gap_histogram: tuple[str, ...] = ()
    """KV-block reuse gaps (vLLM ``--kv-cache-metrics``); empty: the engine has no such metric."""
    kv_idle_before_evict_histogram: tuple[str, ...] = ()
    """KV-block idle time before eviction (vLLM ``--kv-cache-metrics``); empty: no such metric."""

    def __post_init__(self) -> None:
        for field_name in (
            "request_count", "prompt_tokens", "output_tokens", "running_requests",
            "waiting_requests", "kv_cache_usage", "ttft_histogram", "tpot_histogram",
        ):
            names = getattr(self, field_name)
            if not names:
                raise ValueError(f"dialect {self.name}: {field_name} needs at least one metric name")
            for metric in names:
                if not _METRIC_NAME.match(metric):
                    raise ValueError(f"dialect {self.name}: {field_name} has invalid metric name {metric!r}")
        for metric in (*self.kv_reuse_gap_histogram, *self.kv_idle_before_evict_histogram):
            if not _METRIC_NAME.match(metric):
                raise ValueError(f"dialect {self.name}: invalid KV residency metric name {metric!r}")
        if bool(self.kv_reuse_gap_histogram) != bool(self.kv_idle_before_evict_histogram):
            raise ValueError(f"dialect {self.name}: the KV residency histograms come as a pair")


VLLM = DialectMetrics(
    name="vllm",
    request_count=("vllm:request_success_total",),
    prompt_tokens=("vllm:prompt_tokens_total",),
    output_tokens=("vllm:generation_tokens_total",),
    running_requests=("vllm:num_requests_running",),
    waiting_requests=("vllm:num_requests_waiting",),
    # vLLM 0.10 added kv_cache_usage_perc and deprecated gpu_cache_usage_perc (both exported for a while).
    kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ttft_histogram=("vllm:time_to_first_token_seconds",),
    # vLLM 0.11 renamed time_per_output_token_seconds to inter_token_latency_seconds.
    tpot_histogram=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
    # Exported only with --kv-cache-metrics (vllm/v1/metrics/loggers.py), which tidal renders for
    # kvCache.ttl: auto (tidal/controllers/modeldeployment.py).
    kv_reuse_gap_histogram=("vllm:kv_block_reuse_gap_seconds",),
    kv_idle_before_evict_histogram=("vllm:kv_block_idle_before_evict_seconds",),
)

SGLANG = DialectMetrics(
    name="sglang",
    request_count=("sglang:num_requests_total",),
    prompt_tokens=("sglang:prompt_tokens_total",),
    output_tokens=("sglang:generation_tokens_total",),
    running_requests=("sglang:num_running_reqs",),
    waiting_requests=("sglang:num_queue_reqs",),
    # token_usage: fraction of the KV token pool in use (0..1), SGLang's analogue of kv_cache_usage_perc.
    kv_cache_usage=("sglang:token_usage",),
    ttft_histogram=("sglang:time_to_first_token_seconds",),
    # Newer SGLang exports inter_token_latency_seconds; older releases time_per_output_token_seconds.
    tpot_histogram=("sglang:inter_token_latency_seconds", "sglang:time_per_output_token_seconds"),
    # No KV-block residency histograms: SGLang's cache metrics are hit rates (sglang:cache_hit_rate).
)

DIALECTS: Mapping[str, DialectMetrics] = {"vllm": VLLM, "sglang": SGLANG}


def dialect_named(name: str) -> DialectMetrics:
    """The dialect for ``spec.engine.metricsDialect``; a clear error for anything else."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(
            f"metrics dialect {name!r} is not known; use one of {sorted(DIALECTS)}"
        ) from None


# ---------------------------------------------------------------------------
# Query text


def spellings(metric: str) -> tuple[str, ...]:
    """The names a metric may carry inside Prometheus: as exported, and with ':' replaced by '_'."""
    underscored = metric.replace(":", "_")
    return (metric,) if underscored == metric else (metric, underscored)


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal holding ``value`` exactly."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def promql_duration(seconds: float) -> str:
    """A PromQL range duration: whole seconds as ``60s``, otherwise whole milliseconds."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"window must be a positive number of seconds, got {seconds!r}")
    milliseconds = round(seconds * 1000)
    if milliseconds < 1:
        raise ValueError(f"window {seconds!r}s is shorter than PromQL's 1ms resolution")
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def quantile_from_percentile(percentile: float) -> float:
    """SLO percentile (0 < p < 100, as in ``spec.slo.percentile``) as a PromQL quantile."""
    if not isinstance(percentile, (int, float)) or not 0 < percentile < 100:
        raise ValueError(f"percentile must be strictly between 0 and 100, got {percentile!r}")
    return percentile / 100.0


Selector = WorkloadSelector | FleetSelector | FunctionSelector | PodsSelector


def series_selector(
    metric: str, selector: Selector, labels: LabelScheme, *, suffix: str = ""
) -> str:
    """``{__name__=~"a:b_suffix|a_b_suffix", ns="..", deployment="..", pool=".."}``.

    A :class:`FleetSelector` matches every series that carries the deployment label, i.e.
    every tidal engine pod (docs/metrics.md, "Labels and relabelling"), in its namespaces.
    """
    names = "|".join(name + suffix for name in spellings(metric))
    matchers = [f"__name__=~{promql_string(names)}"]
    if isinstance(selector, FleetSelector):
        matchers.append(f'{labels.deployment}!=""')
        if selector.namespaces:
            pattern = "|".join(re.escape(ns) for ns in sorted(set(selector.namespaces)))
            matchers.append(f"{labels.namespace}=~{promql_string(pattern)}")
    elif isinstance(selector, (FunctionSelector, PodsSelector)):
        matchers += [
            f"{labels.namespace}={promql_string(selector.namespace)}",
            f"{labels.pod}=~{promql_string(selector.pod_pattern)}",
        ]
    else:
        matchers += [
            f"{labels.namespace}={promql_string(selector.namespace)}",
            f"{labels.deployment}={promql_string(selector.deployment)}",
            f"{labels.pool}={promql_string(selector.pool)}",
        ]
    return "{" + ", ".join(matchers) + "}"


def workload_labels(labels: LabelScheme) -> tuple[str, str, str]:
    """The labels that tell workloads' pools apart in a fleet result."""
    return (labels.namespace, labels.deployment, labels.pool)


def workload_key(sample_labels: Mapping[str, str], labels: LabelScheme) -> tuple[str, str, str]:
    """(namespace, deployment, pool) of one series of a fleet result ('' where a label is missing)."""
    return (sample_labels.get(labels.namespace, ""), sample_labels.get(labels.deployment, ""),
            sample_labels.get(labels.pool, ""))


def by_clause(*label_names: str) -> str:
    return "by (" + ", ".join(label_names) + ")"


def first_present(alternatives: Sequence[str]) -> str:
    """Join queries with ``or`` so the first alternative that has series wins (per label set)."""
    return " or ".join(f"({query})" for query in alternatives) if len(alternatives) > 1 else alternatives[0]


def first_present_by(alternatives: Sequence[str], group: Sequence[str]) -> str:
    """Like :func:`first_present`, but per ``group`` (the workload) rather than per label set.

    Histogram results carry ``le``; with plain ``or`` an older name whose bucket bounds differ
    would add its extra bounds to the newer name's buckets. ``unless on (group)`` drops every
    series of a later alternative for a workload that an earlier alternative already covers.
    """
    if len(alternatives) == 1:
        return alternatives[0]
    on = "on (" + ", ".join(group) + ")"
    parts = [f"({alternatives[0]})"]
    for index in range(1, len(alternatives)):
        earlier = first_present(alternatives[:index])
        parts.append(f"(({alternatives[index]}) unless {on} ({earlier}))")
    return " or ".join(parts)


KV_HISTOGRAM_LABEL = "tidal_kv_histogram"
"""Label :func:`kv_residency_query` puts on each series to say which residency histogram it is."""
KV_REUSE_GAP = "reuse_gap"
KV_IDLE_BEFORE_EVICT = "idle_before_evict"

Aggregation = Literal["sum", "mean"]
QueryShape = Literal["per_pod", "single", "histogram"]


@dataclass(frozen=True)
class MetricQuery:
    """One PromQL query that fills one ``PoolObservation`` field.

    ``per_pod`` queries return one series per pod; the pool value is the ``pool_aggregation``
    of the pod values. ``histogram`` queries return one series per bucket bound (label ``le``):
    the adapter computes the percentile latency and the SLO attainment from them
    (tidal/controllers/slo_attainment.py). Fleet queries return the same per workload pool,
    told apart by the namespace, deployment and pool labels.
    """

    field: str
    promql: str
    per_pod: bool
    pool_aggregation: Aggregation = "sum"
    histogram: bool = False
    residency: bool = False
    """Bucket *increments* of the KV residency histograms, series told apart by
    :data:`KV_HISTOGRAM_LABEL` (:func:`kv_residency_query`)."""


def counter_rate_query(
    field: str, metrics: Sequence[str], selector: Selector, labels: LabelScheme, window: str,
    group: Sequence[str] = (),
) -> MetricQuery:
    """Per-pod per-second rate of a counter over the window (all other labels summed)."""
    alternatives = [
        f"sum {by_clause(*group, labels.pod)} (rate({series_selector(m, selector, labels)}[{window}]))"
        for m in metrics
    ]
    return MetricQuery(field=field, promql=first_present(alternatives), per_pod=True)


STALE_LABEL = "tidal_stale"
"""Label :func:`gauge_query` puts on a pod's series whose latest sample is older than the window."""


def gauge_query(
    field: str,
    metrics: Sequence[str],
    selector: Selector,
    labels: LabelScheme,
    *,
    within_pod: Literal["sum", "avg"],
    pool_aggregation: Aggregation,
    window: str,
    group: Sequence[str] = (),
) -> MetricQuery:
    """Per-pod latest value of a gauge; several engines in one pod are summed or averaged.

    An instant query returns a gauge's last sample for up to Prometheus' lookback delta (5 min by
    default), so a pod whose scrapes stopped without a staleness marker would still report its old
    value. The query therefore returns the freshest sample within ``window``
    (``last_over_time``) and, for pods that have none, the older sample tagged
    ``tidal_stale="true"``, so the adapter can reject it by name in the same answer.
    """
    by = by_clause(*group, labels.pod)
    fresh = first_present([
        f"{within_pod} {by} (last_over_time({series_selector(m, selector, labels)}[{window}]))" for m in metrics
    ])
    latest = first_present([f"{within_pod} {by} ({series_selector(m, selector, labels)})" for m in metrics])
    on = "on (" + ", ".join((*group, labels.pod)) + ")"
    promql = (f"({fresh}) or label_replace(({latest}) unless {on} ({fresh}), "
              f'"{STALE_LABEL}", "true", "", "")')
    return MetricQuery(field=field, promql=promql, per_pod=True, pool_aggregation=pool_aggregation)


PEAK_RATE_SUBWINDOWS = 4
"""The peak-rate subquery evaluates this many times per window: every 15 s in the default 60 s
window, Prometheus' default scrape interval and the operator's tick (the simulator's peak is over
one tick, tidal/sim/metrics.py)."""


def peak_rate_query(field: str, metrics: Sequence[str], running: Sequence[str], waiting: Sequence[str],
                    selector: Selector, labels: LabelScheme, window_s: float,
                    group: Sequence[str] = ()) -> MetricQuery:
    """The pool's highest short-interval *arrival* rate within the window: the completions over the
    last two scrapes (``irate`` of the pool's summed request counter) plus the growth of the requests
    in flight (``deriv`` of the running and waiting gauges over half a window, two scrapes at the
    default interval), evaluated every window / :data:`PEAK_RATE_SUBWINDOWS` over the window, and
    its maximum. Without the gauges there is no result, and the in-flight guards hold the pool."""
    window = promql_duration(window_s)
    half = promql_duration(window_s / 2)
    step = promql_duration(window_s / PEAK_RATE_SUBWINDOWS)
    by = by_clause(*group)

    def side(metrics: Sequence[str], fn: str, rng: str) -> str:
        alternatives = [f"sum {by} ({fn}({series_selector(m, selector, labels)}[{rng}]))" for m in metrics]
        return first_present_by(alternatives, group) if group else first_present(alternatives)

    inner = (f"({side(metrics, 'irate', window)}) + ({side(running, 'deriv', half)}) "
             f"+ ({side(waiting, 'deriv', half)})")
    return MetricQuery(field=field, promql=f"max_over_time(({inner})[{window}:{step}])", per_pod=False)


def in_flight_change_query(field: str, running: Sequence[str], waiting: Sequence[str], selector: Selector,
                           labels: LabelScheme, window_s: float, group: Sequence[str] = ()) -> MetricQuery:
    """The change of the pool's requests in flight (running + waiting gauges) over the window, per
    second: ``(sum(delta(running[w])) + sum(delta(waiting[w]))) / w``. With the completion rate it
    gives the arrival rate (``PoolObservation.arrival_rate_rps``). A pool that lacks either gauge
    has no result (``+`` matches nothing), so the core falls back to completions alone."""
    window = promql_duration(window_s)

    def side(metrics: Sequence[str]) -> str:
        alternatives = [f"sum {by_clause(*group)} (delta({series_selector(m, selector, labels)}[{window}]))"
                        for m in metrics]
        return first_present_by(alternatives, group) if group else first_present(alternatives)

    promql = f"(({side(running)}) + ({side(waiting)})) / {window_s:g}"
    return MetricQuery(field=field, promql=promql, per_pod=False)


def histogram_buckets_query(
    field: str,
    histograms: Sequence[str],
    selector: Selector,
    labels: LabelScheme,
    window: str,
    group: Sequence[str] = (),
) -> MetricQuery:
    """Pool-wide bucket rates of a histogram over the window: buckets of all pods summed by ``le``."""
    alternatives = [
        f"sum {by_clause(*group, 'le')} "
        f"(rate({series_selector(h, selector, labels, suffix='_bucket')}[{window}]))"
        for h in histograms
    ]
    return MetricQuery(field=field, promql=first_present_by(alternatives, group), per_pod=False, histogram=True)


def kv_residency_query(field: str, dialect: DialectMetrics, selector: Selector, labels: LabelScheme, window: str,
                       group: Sequence[str] = ()) -> MetricQuery | None:
    """Pool-wide bucket increments over the window of both KV-block residency histograms, in one
    query (one more per read, not two): ``sum by (le) (increase(..._bucket[w]))`` of each, tagged
    :data:`KV_HISTOGRAM_LABEL` = :data:`KV_REUSE_GAP` or :data:`KV_IDLE_BEFORE_EVICT`. Increments,
    not rates: the core learns counts of pauses. ``None`` when the dialect has no such histograms."""
    if not dialect.kv_reuse_gap_histogram:
        return None

    def one(histograms: Sequence[str], tag: str) -> str:
        alternatives = [
            f"sum {by_clause(*group, 'le')} "
            f"(increase({series_selector(h, selector, labels, suffix='_bucket')}[{window}]))"
            for h in histograms
        ]
        inner = first_present_by(alternatives, group)
        return f'label_replace({inner}, "{KV_HISTOGRAM_LABEL}", "{tag}", "", "")'

    promql = (f"({one(dialect.kv_reuse_gap_histogram, KV_REUSE_GAP)}) or "
              f"({one(dialect.kv_idle_before_evict_histogram, KV_IDLE_BEFORE_EVICT)})")
    return MetricQuery(field=field, promql=promql, per_pod=False, residency=True)


def _queries(
    dialect: DialectMetrics, selector: Selector, labels: LabelScheme, window_s: float,
    group: Sequence[str],
) -> tuple[MetricQuery, ...]:
    window = promql_duration(window_s)
    residency = kv_residency_query("kv_residency", dialect, selector, labels, window, group)
    return (
        gauge_query("running_requests", dialect.running_requests, selector, labels,
                    within_pod="sum", pool_aggregation="sum", window=window, group=group),
        gauge_query("waiting_requests", dialect.waiting_requests, selector, labels,
                    within_pod="sum", pool_aggregation="sum", window=window, group=group),
        gauge_query("kv_cache_usage_ratio", dialect.kv_cache_usage, selector, labels,
                    within_pod="avg", pool_aggregation="mean", window=window, group=group),
        counter_rate_query("request_rate_rps", dialect.request_count, selector, labels, window, group),
        counter_rate_query("prompt_tokens_rps", dialect.prompt_tokens, selector, labels, window, group),
        counter_rate_query("output_tokens_rps", dialect.output_tokens, selector, labels, window, group),
        peak_rate_query("peak_request_rate_rps", dialect.request_count, dialect.running_requests,
                        dialect.waiting_requests, selector, labels, window_s, group),
        in_flight_change_query("in_flight_change_rps", dialect.running_requests, dialect.waiting_requests,
                               selector, labels, window_s, group),
        histogram_buckets_query("ttft_s", dialect.ttft_histogram, selector, labels, window, group),
        histogram_buckets_query("tpot_s", dialect.tpot_histogram, selector, labels, window, group),
        *((residency,) if residency is not None else ()),
    )


def pool_queries(
    dialect: DialectMetrics,
    selector: WorkloadSelector | PodsSelector,
    labels: LabelScheme,
    *,
    window_s: float,
) -> tuple[MetricQuery, ...]:
    """All queries for one pool, in the order the adapter runs them (cheap gauges first)."""
    return _queries(dialect, selector, labels, window_s, ())


def function_queries(selector: FunctionSelector, labels: LabelScheme, *,
                     window_s: float) -> tuple[MetricQuery, ...]:
    """A ServerlessFunction's in-flight requests and request rate, per pod (validated like an engine's)."""
    window = promql_duration(window_s)
    return (
        gauge_query("running_requests", (FUNCTION_IN_FLIGHT_METRIC,), selector, labels,
                    within_pod="sum", pool_aggregation="sum", window=window),
        counter_rate_query("request_rate_rps", (FUNCTION_REQUESTS_METRIC,), selector, labels, window),
    )


def fleet_queries(dialect: DialectMetrics, labels: LabelScheme, *, window_s: float,
                  namespaces: Sequence[str] = ()) -> tuple[MetricQuery, ...]:
    """The same queries for every pool of every workload of one dialect at once.

    Grouped by (namespace, deployment, pool) as well, so one answer per query holds every pool's
    series; the fields and their order are those of :func:`pool_queries`. ``namespaces`` limits
    the read to those namespaces (a namespace-scoped operator); empty reads all.
    """
    return _queries(dialect, FleetSelector(tuple(namespaces)), labels, window_s, workload_labels(labels))


# ---------------------------------------------------------------------------
# Result parsing


_STR_TYPE = frozenset({str})


class MalformedResult(ValueError):
    """Prometheus answered, but not with an instant vector of the expected shape."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant-vector result."""

    labels: Mapping[str, str]
    value: float


def parse_instant_vector(result: Any) -> tuple[Sample, ...]:
    """Validate the ``data.result`` list of an instant query and convert values to floats.

    Values may be ``NaN`` or ``±Inf`` (Prometheus encodes them as strings); the caller decides
    what a non-finite value means. Anything else out of shape raises :class:`MalformedResult`
    naming the offending element.
    """
    if not isinstance(result, list):
        raise MalformedResult(f"expected a list of series, got {type(result).__name__}")
    samples = []
    for index, series in enumerate(result):
        if not isinstance(series, dict):
            raise MalformedResult(f"result[{index}] is {type(series).__name__}, expected an object")
        labels = series.get("metric")
        value = series.get("value")
        # JSON object keys are always strings; checking the values' types in one set is ~3x
        # cheaper than a per-label generator, which matters for fleet answers of ~50k series.
        if not isinstance(labels, dict) or not {type(v) for v in labels.values()} <= _STR_TYPE:
            raise MalformedResult(f"result[{index}].metric is not a map of label names to strings")
        if not isinstance(value, list) or len(value) != 2 or not isinstance(value[1], str):
            raise MalformedResult(
                f"result[{index}].value is {value!r}, expected [timestamp, \"number\"] "
                "(a range vector or scalar where an instant vector was expected?)"
            )
        try:
            number = float(value[1])
        except ValueError:
            raise MalformedResult(f"result[{index}].value {value[1]!r} is not a number") from None
        samples.append(Sample(labels=labels, value=number))
    return tuple(samples)
