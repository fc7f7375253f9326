"""Query construction and result parsing for the Prometheus adapter (no Prometheus needed)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.vllm_exporter import (
    GOLDEN_RATIO_CONJUGATE,
    SILVER_RATIO_CONJUGATE,
    VLLM_ITL_BUCKETS_S,
    UniformLatency,
    even_fractions,
    interpolated_quantile,
)
from tidal.operator.prometheus import PoolMetrics, PrometheusSettings
from tidal.operator.promql import (
    SGLANG,
    VLLM,
    DialectMetrics,
    LabelScheme,
    MalformedResult,
    WorkloadSelector,
    dialect_named,
    fleet_queries,
    parse_instant_vector,
    pool_queries,
    promql_duration,
    promql_string,
    quantile_from_percentile,
    series_selector,
    spellings,
)
from tidal.policies.interface import PoolObservation

SELECTOR = WorkloadSelector(namespace="team-a", deployment="llama", pool="unified")


def queries_by_field(dialect=VLLM, labels=LabelScheme(), window_s=60.0):
    return {q.field: q for q in pool_queries(dialect, SELECTOR, labels, window_s=window_s)}


def test_both_spellings_are_matched() -> None:
    assert spellings("vllm:num_requests_running") == ("vllm:num_requests_running", "vllm_num_requests_running")
    assert spellings("up") == ("up",)
    selector = series_selector("vllm:time_to_first_token_seconds", SELECTOR, LabelScheme(), suffix="_bucket")
    assert '__name__=~"vllm:time_to_first_token_seconds_bucket|vllm_time_to_first_token_seconds_bucket"' in selector


def test_queries_cover_every_observation_field_once() -> None:
    fields = [q.field for q in pool_queries(VLLM, SELECTOR, LabelScheme(), window_s=60)]
    assert sorted(fields) == sorted(PoolMetrics().observation_fields())


def test_new_names_are_preferred_over_deprecated_ones() -> None:
    queries = queries_by_field()
    kv = queries["kv_cache_usage_ratio"].promql
    assert kv.index("vllm:kv_cache_usage_perc") < kv.index("vllm:gpu_cache_usage_perc")
    assert " or " in kv
    tpot = queries["tpot_s"].promql
    assert tpot.index("vllm:inter_token_latency_seconds_bucket") < tpot.index("vllm:time_per_output_token_seconds")


@pytest.mark.parametrize(("dialect", "expected"), [
    (VLLM, ["vllm:request_success_total", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
            "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:time_to_first_token_seconds_bucket"]),
    (SGLANG, ["sglang:num_requests_total", "sglang:prompt_tokens_total", "sglang:generation_tokens_total",
              "sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage",
              "sglang:time_to_first_token_seconds_bucket", "sglang:inter_token_latency_seconds_bucket",
              "sglang:time_per_output_token_seconds_bucket"]),
])
def test_dialect_metric_names_reach_the_queries(dialect, expected) -> None:
    text = " ".join(q.promql for q in queries_by_field(dialect).values())
    for name in expected:
        assert name in text and name.replace(":", "_") in text


def test_window_and_labels_reach_the_queries() -> None:
    labels = LabelScheme(namespace="kube_namespace", deployment="app", pool="role", pod="pod_name")
    queries = queries_by_field(labels=labels, window_s=90)
    assert "[90s]" in queries["request_rate_rps"].promql
    assert queries["ttft_s"].promql.startswith("sum by (le) (rate(")
    assert queries["ttft_s"].histogram and not queries["running_requests"].histogram
    for q in queries.values():
        assert 'kube_namespace="team-a"' in q.promql and 'app="llama"' in q.promql and 'role="unified"' in q.promql
    assert "sum by (pod_name)" in queries["running_requests"].promql
    assert "avg by (pod_name)" in queries["kv_cache_usage_ratio"].promql
    assert queries["kv_cache_usage_ratio"].pool_aggregation == "mean"
    assert queries["running_requests"].pool_aggregation == "sum"
    assert not queries["ttft_s"].per_pod and queries["request_rate_rps"].per_pod


def test_histogram_alternatives_are_chosen_per_workload_not_per_bucket() -> None:
    """Plain ``or`` would add the deprecated name's extra bucket bounds to the new name's buckets."""
    tpot = queries_by_field()["tpot_s"].promql
    new, old = "vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket"
    assert tpot.index(new) < tpot.index(old)
    assert " unless on () " in tpot
    fleet_tpot = {q.field: q for q in fleet_queries(VLLM, LabelScheme(), window_s=60)}["tpot_s"].promql
    assert " unless on (namespace, tidal_dev_deployment, tidal_dev_pool) " in fleet_tpot


def test_fleet_queries_can_be_limited_to_namespaces() -> None:
    """Regex-escaped (the real-Prometheus test checks RE2 accepts the escapes), sorted, deduplicated."""
    queries = fleet_queries(VLLM, LabelScheme(), window_s=60, namespaces=("team-b", "a.b", "team-b"))
    for query in queries:
        assert r'namespace=~"a\\.b|team\\-b"' in query.promql, query.promql
    assert all("namespace=~" not in q.promql for q in fleet_queries(VLLM, LabelScheme(), window_s=60))


@pytest.mark.parametrize("dialect", [VLLM, SGLANG])
def test_fleet_queries_are_the_pool_queries_for_every_workload(dialect) -> None:
    """Same fields and names; no workload matchers; grouped by the workload labels as well."""
    labels = LabelScheme(namespace="ns", deployment="app", pool="role", pod="pod_name")
    pool = {q.field: q for q in pool_queries(dialect, SELECTOR, labels, window_s=60)}
    fleet = {q.field: q for q in fleet_queries(dialect, labels, window_s=60)}
    assert list(pool) == list(fleet)
    for field, query in fleet.items():
        assert 'app!=""' in query.promql and 'app="llama"' not in query.promql and "ns=" not in query.promql
        assert (query.per_pod, query.histogram, query.residency, query.pool_aggregation) == (
            pool[field].per_pod, pool[field].histogram, pool[field].residency, pool[field].pool_aggregation)
        grouping = ("by (ns, app, role, le)" if query.histogram or query.residency else "by (ns, app, role, pod_name)" if query.per_pod
                    else "by (ns, app, role)")
        assert grouping in query.promql
        for name in re.findall(r'__name__=~"([^"]+)"', pool[field].promql):
            assert name in query.promql


def test_label_values_are_escaped() -> None:
    hostile = WorkloadSelector(namespace='a"b', deployment="c\\d", pool="e\nf")
    text = series_selector("vllm:x", hostile, LabelScheme())
    assert 'namespace="a\\"b"' in text
    assert 'tidal_dev_deployment="c\\\\d"' in text
    assert 'tidal_dev_pool="e\\nf"' in text


@given(st.text(max_size=40))
def test_promql_string_round_trips(value: str) -> None:
    literal = promql_string(value)
    assert literal.startswith('"') and literal.endswith('"')
    body = literal[1:-1]
    assert not re.search(r'(?<!\\)(\\\\)*"', body), "an unescaped quote would end the literal early"
    unescaped = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), body)
    assert unescaped == value


@pytest.mark.parametrize(("seconds", "text"), [(60, "60s"), (5.0, "5s"), (1.5, "1500ms"), (0.25, "250ms")])
def test_durations(seconds, text) -> None:
    assert promql_duration(seconds) == text


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, 0.0001, "60s"])
def test_bad_windows_are_rejected(bad) -> None:
    with pytest.raises(ValueError, match="window"):
        promql_duration(bad)


@pytest.mark.parametrize("bad", [0, 100, -5, 150, math.nan])
def test_bad_percentiles_are_rejected(bad) -> None:
    with pytest.raises(ValueError, match="percentile"):
        quantile_from_percentile(bad)


def test_unknown_dialect_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'tgi'.*\['sglang', 'vllm'\]"):
        dialect_named("tgi")


def test_bad_label_names_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"labels.pool='tidal.dev/pool'"):
        LabelScheme(pool="tidal.dev/pool")


def test_bad_metric_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="invalid metric name"):
        DialectMetrics(name="x", request_count=("a b",), prompt_tokens=("p",), output_tokens=("o",),
                       running_requests=("r",), waiting_requests=("w",), kv_cache_usage=("k",),
                       ttft_histogram=("t",), tpot_histogram=("i",))


@pytest.mark.parametrize(("settings", "message"), [
    ({"url": "prometheus:9090"}, "http"),
    ({"url": "http://p:9090", "query_timeout_s": 0}, "query_timeout_s"),
    ({"url": "http://p:9090", "max_retries": -1}, "max_retries"),
])
def test_bad_settings_are_rejected(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusSettings(**settings)


def test_parse_instant_vector_values() -> None:
    samples = parse_instant_vector([
        {"metric": {"pod": "a"}, "value": [1.0, "2.5"]},
        {"metric": {}, "value": [1.0, "NaN"]},
        {"metric": {}, "value": [1.0, "+Inf"]},
    ])
    assert samples[0].labels == {"pod": "a"} and samples[0].value == 2.5
    assert math.isnan(samples[1].value) and samples[2].value == math.inf


@pytest.mark.parametrize("bad", [
    {"result": []},
    [["not", "an", "object"]],
    [{"metric": {"pod": 1}, "value": [1.0, "2"]}],
    [{"metric": {}, "values": [[1.0, "2"]]}],
    [{"metric": {}, "value": [1.0, 2]}],
    [{"metric": {}, "value": [1.0, "two"]}],
])
def test_parse_instant_vector_rejects_other_shapes(bad) -> None:
    with pytest.raises(MalformedResult):
        parse_instant_vector(bad)


def test_pool_metrics_apply_to_observation_keeps_replica_counts() -> None:
    metrics = PoolMetrics(request_rate_rps=4.0, ttft_s=0.3)
    observation = metrics.apply_to(PoolObservation(ready_replicas=3, starting_replicas=1, waiting_requests=9.0))
    assert observation.ready_replicas == 3 and observation.starting_replicas == 1
    assert observation.request_rate_rps == 4.0 and observation.ttft_s == 0.3
    assert observation.waiting_requests is None, "an unread metric must replace a stale value with None"
    assert metrics.complete and metrics.reason() == "MetricsRead"


# The oracle the real-Prometheus tests compare against must itself be right.

def test_interpolated_quantile_is_exact_for_uniform_buckets() -> None:
    dist = UniformLatency(0.025, 0.075)  # spans whole vLLM ITL buckets (0.025, 0.05] and (0.05, 0.075]
    for q in (0.1, 0.5, 0.9, 0.99):
        assert interpolated_quantile(VLLM_ITL_BUCKETS_S, dist.cdf, q) == pytest.approx(dist.quantile(q))


def test_interpolated_quantile_error_is_within_the_bucket() -> None:
    dist = UniformLatency(0.1, 0.5)
    bounds = (0.1, 0.2, 0.4, 0.6, 0.8)  # SGLang TTFT buckets: 0.5 falls inside (0.4, 0.6]
    got = interpolated_quantile(bounds, dist.cdf, 0.9)
    assert got == pytest.approx(0.52)  # true p90 is 0.46: interpolation assumes mass up to 0.6
    assert 0.4 <= got <= 0.6


@given(st.integers(min_value=100, max_value=400), st.integers(min_value=0, max_value=5000),
       st.sampled_from([GOLDEN_RATIO_CONJUGATE, SILVER_RATIO_CONJUGATE]))
def test_weyl_runs_track_the_uniform_cdf(length: int, start: int, step: float) -> None:
    """Any run of >= 100 consecutive draws has empirical CDF within 3 % of uniform (the tolerance budget)."""
    draws = sorted(even_fractions(start + length, step)[start:])
    worst = max(max(abs((i + 1) / length - x), abs(i / length - x)) for i, x in enumerate(draws))
    assert worst < 0.03


def test_pods_selector_matches_exactly_the_named_pods_whatever_their_labels() -> None:
    """Target mode reads a pool by its pods' names: escaped and anchored (Prometheus anchors =~), so
    a dotted name matches only itself and ``llama-1`` never also matches ``llama-10``."""
    from tidal.operator.promql import PodsSelector

    selector = PodsSelector("team-a", ("llama-1", "api.v1-0", "llama-1"))
    text = series_selector("vllm:num_requests_running", selector, LabelScheme())
    pattern = re.search(r'pod=~"([^"]+)"', text).group(1).replace("\\\\", "\\")
    assert 'namespace="team-a"' in text and "tidal_dev" not in text
    names = ["llama-1", "api.v1-0", "llama-10", "apixv1-0", "other"]
    assert [n for n in names if re.fullmatch(pattern, n)] == ["llama-1", "api.v1-0"]
    with pytest.raises(ValueError, match="non-empty pod names"):
        PodsSelector("team-a", ())
    queries = pool_queries(VLLM, selector, LabelScheme(), window_s=60)
    assert all("pod=~" in q.promql for q in queries)
