"""The adapter when Prometheus is down, slow or answers garbage: all None, a reason, no exception.

The misbehaving "Prometheus" is a real HTTP server on 127.0.0.1; the first path segment of
the URL the adapter is given selects how it misbehaves.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from tests.support.prometheus_server import free_loopback_port
from tidal.operator.promql import KV_HISTOGRAM_LABEL, KV_IDLE_BEFORE_EVICT, KV_REUSE_GAP
from tidal.operator.prometheus import (  # noqa: I001
    OBSERVATION_FIELDS,
    FailureKind,
    FleetMetrics,
    PoolMetrics,
    PrometheusMetrics,
    PrometheusSettings,
)

SLOW_RESPONSE_S = 2.0
SHORT_TIMEOUT_S = 0.3


def vector(value: str, pod: str = "p-0") -> bytes:
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"pod": pod}, "value": [1700000000.0, value]}]}}).encode()


def buckets(*pairs: tuple[str, str]) -> bytes:
    """A histogram answer: one series per ``le``."""
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"le": le}, "value": [1700000000.0, value]} for le, value in pairs]}}).encode()


FINE_BUCKETS = (("2", "1.5"), ("4", "3"), ("+Inf", "3"))
"""p90: rank 2.7 lies in (2, 4] holding 1.5 of 3 observations: 2 + 2 * (2.7 - 1.5) / 1.5 = 3.6 s."""
FINE_P90_S = 3.6


RESPONSES: dict[str, tuple[int, str, bytes]] = {
    "html": (200, "text/html", b"<html><body>Bad gateway, try later</body></html>"),
    "empty-body": (200, "application/json", b""),
    "status-500": (500, "text/plain", b"internal error"),
    "status-503-json": (503, "application/json",
                        b'{"status":"error","errorType":"timeout","error":"query timed out"}'),
    "status-400-json": (400, "application/json",
                        b'{"status":"error","errorType":"bad_data","error":"parse error"}'),
    "no-data": (200, "application/json", b'{"status":"success"}'),
    "matrix": (200, "application/json", json.dumps({"status": "success", "data": {
        "resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "1"]]}]}}).encode()),
    "not-a-number-string": (200, "application/json", vector("lots")),
    "nan": (200, "application/json", vector("NaN")),
    "inf": (200, "application/json", vector("+Inf")),
    "fine": (200, "application/json", vector("3")),
}
BUCKET_RESPONSES: dict[str, tuple[int, str, bytes]] = {
    "nan": (200, "application/json", buckets(("1", "NaN"), ("+Inf", "NaN"))),
    "inf": (200, "application/json", buckets(("1", "+Inf"), ("+Inf", "+Inf"))),
    "fine": (200, "application/json", buckets(*FINE_BUCKETS)),
    # Answers every query with the plain vector, histograms included: series without 'le'.
    "unlabelled-histogram": (200, "application/json", vector("3")),
}
"""What a mode answers to a histogram (``_bucket``) query, where it differs from RESPONSES."""


def kv_buckets(*pairs: tuple[str, str]) -> bytes:
    """The KV residency query's answer: the same buckets for both histograms, tagged."""
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"le": le, KV_HISTOGRAM_LABEL: tag}, "value": [1700000000.0, value]}
        for tag in (KV_REUSE_GAP, KV_IDLE_BEFORE_EVICT) for le, value in pairs]}}).encode()


KV_BUCKET_RESPONSES: dict[str, tuple[int, str, bytes]] = {
    "nan": (200, "application/json", kv_buckets(("1", "NaN"), ("+Inf", "NaN"))),
    "inf": (200, "application/json", kv_buckets(("1", "+Inf"), ("+Inf", "+Inf"))),
    "fine": (200, "application/json", kv_buckets(("1", "2"), ("+Inf", "5"))),
    "unlabelled-histogram": (200, "application/json", vector("3")),
}
"""What a mode answers to the KV residency query (tagged bucket increments)."""
FINE_KV_RESPONSE = (200, "application/json", vector("0.5"))
"""The "fine" answer to the KV-cache usage query: a fraction of the pool, as engines export it."""


class MisbehavingPrometheus:
    """Serves ``RESPONSES[mode]`` for ``/<mode>/api/v1/query``; ``/slow/...`` answers too late."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                mode = self.path.lstrip("/").split("/", 1)[0]
                owner.hits[mode] = owner.hits.get(mode, 0) + 1
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("query", [""])[0]
                histogram = "_bucket" in query
                if mode == "slow":
                    time.sleep(SLOW_RESPONSE_S)
                    mode = "fine"
                if KV_HISTOGRAM_LABEL in query and mode in KV_BUCKET_RESPONSES:
                    status, content_type, body = KV_BUCKET_RESPONSES[mode]
                elif histogram and mode in BUCKET_RESPONSES:
                    status, content_type, body = BUCKET_RESPONSES[mode]
                elif mode in ("fine", "unlabelled-histogram") and "cache_usage" in query:
                    status, content_type, body = FINE_KV_RESPONSE  # a ratio: 3 would be rejected
                else:
                    status, content_type, body = RESPONSES.get(mode) or BUCKET_RESPONSES[mode]
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{mode}"


@pytest.fixture(scope="module")
def bad_prometheus() -> Iterator[MisbehavingPrometheus]:
    server = MisbehavingPrometheus()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def read_from(url: str, **settings) -> PoolMetrics:
    adapter = PrometheusMetrics(PrometheusSettings(url=url, **settings))
    return adapter.read_pool(namespace="ns", deployment="llama", pool="unified", dialect="vllm",
                             window_s=60, percentile=90)


def assert_all_none(metrics: PoolMetrics) -> None:
    assert all(value is None for value in metrics.observation_fields().values()), metrics
    assert metrics.pods == {}
    assert not metrics.complete
    assert len(metrics.failures) == len(OBSERVATION_FIELDS)
    assert {f.field for f in metrics.failures} == set(metrics.observation_fields())


def assert_first_fails_rest_skipped(metrics: PoolMetrics, kind: FailureKind) -> None:
    assert_all_none(metrics)
    assert metrics.failures[0].kind is kind, metrics.message()
    assert all(f.kind is FailureKind.SKIPPED for f in metrics.failures[1:])
    assert not metrics.prometheus_reachable
    assert metrics.reason() == kind.value


def test_prometheus_down_is_connection_failure() -> None:
    started = time.monotonic()
    metrics = read_from(f"http://127.0.0.1:{free_loopback_port()}")
    assert_first_fails_rest_skipped(metrics, FailureKind.CONNECTION)
    assert "running_requests" in metrics.message()
    assert time.monotonic() - started < 2.0


def test_timeout_stops_after_one_query(bad_prometheus) -> None:
    started = time.monotonic()
    metrics = read_from(bad_prometheus.url("slow"), query_timeout_s=SHORT_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert_first_fails_rest_skipped(metrics, FailureKind.TIMEOUT)
    assert elapsed < SLOW_RESPONSE_S, "a timed-out Prometheus must not be waited on once per query"


@pytest.mark.parametrize(("mode", "status"), [("status-500", 500), ("status-503-json", 503)])
def test_server_errors_are_http_errors(bad_prometheus, mode, status) -> None:
    metrics = read_from(bad_prometheus.url(mode))
    assert_first_fails_rest_skipped(metrics, FailureKind.HTTP_ERROR)
    assert metrics.failures[0].http_status == status


@pytest.mark.parametrize("mode", ["html", "empty-body", "no-data", "matrix", "not-a-number-string"])
def test_garbage_is_bad_response(bad_prometheus, mode) -> None:
    metrics = read_from(bad_prometheus.url(mode))
    assert_first_fails_rest_skipped(metrics, FailureKind.BAD_RESPONSE)


def test_rejected_query_does_not_stop_the_others(bad_prometheus) -> None:
    """A 400 is about one query (bad PromQL or label), not about Prometheus: every query is still tried."""
    bad_prometheus.hits.pop("status-400-json", None)
    metrics = read_from(bad_prometheus.url("status-400-json"))
    assert_all_none(metrics)
    assert {f.kind for f in metrics.failures} == {FailureKind.HTTP_ERROR}
    assert {f.http_status for f in metrics.failures} == {400}
    assert bad_prometheus.hits["status-400-json"] == len(OBSERVATION_FIELDS)
    assert metrics.prometheus_reachable


@pytest.mark.parametrize("mode", ["nan", "inf"])
def test_non_finite_values_are_none(bad_prometheus, mode) -> None:
    metrics = read_from(bad_prometheus.url(mode))
    assert_all_none(metrics)
    assert {f.kind for f in metrics.failures} == {FailureKind.NOT_A_NUMBER}


def test_well_formed_answer_is_used(bad_prometheus) -> None:
    """Control for the tests above: the same server, answering properly, gives numbers."""
    metrics = read_from(bad_prometheus.url("fine"))
    assert metrics.complete, metrics.message()
    assert metrics.running_requests == 3.0
    assert metrics.ttft_s == pytest.approx(FINE_P90_S) and metrics.tpot_s == pytest.approx(FINE_P90_S)
    assert metrics.pods["p-0"].request_rate_rps == 3.0
    assert metrics.attainment(3.0, None).ttft == pytest.approx(0.75)  # 1.5 + 1.5 * (3 - 2) / 2 of 3
    assert metrics.kv_residency is not None
    assert metrics.kv_residency.reuse_gap == ((1.0, 2.0), (math.inf, 5.0)) == metrics.kv_residency.idle_before_evict
    assert metrics.kv_residency.window_s == 60


def test_histogram_answer_without_le_is_bad_response(bad_prometheus) -> None:
    """A histogram query answered with plain series is garbage: the histograms fail, nothing is invented."""
    metrics = read_from(bad_prometheus.url("unlabelled-histogram"))
    assert metrics.running_requests == 3.0
    kinds = {f.field: f.kind for f in metrics.failures}
    assert kinds == {"ttft_s": FailureKind.BAD_RESPONSE, "tpot_s": FailureKind.SKIPPED,
                     "kv_residency": FailureKind.SKIPPED}
    assert metrics.ttft_s is None and metrics.ttft_buckets is None
    assert metrics.attainment(0.5, 0.05).combined is None


# --- the fleet read: same failure semantics, shared by every workload -----------------------------

POOLS = [("ns", f"model-{i}", "unified") for i in range(5)]


def fleet_read_all(url: str, **settings) -> tuple[list[PoolMetrics], PrometheusMetrics, FleetMetrics]:
    adapter = PrometheusMetrics(PrometheusSettings(url=url, **settings))
    fleet = FleetMetrics(adapter, max_age_s=60.0)
    results = [fleet.read_pool(namespace=ns, deployment=d, pool=p, dialect="vllm", window_s=60, percentile=90)
               for ns, d, p in POOLS]
    return results, adapter, fleet


def test_fleet_read_with_prometheus_down_holds_every_workload_after_one_attempt() -> None:
    results, adapter, fleet = fleet_read_all(f"http://127.0.0.1:{free_loopback_port()}")
    for metrics in results:
        assert_first_fails_rest_skipped(metrics, FailureKind.CONNECTION)
    assert adapter.queries_sent == 1 and fleet.reads == 1, "the failed read is shared, not repeated per workload"


def test_fleet_read_times_out_once_for_all_workloads(bad_prometheus) -> None:
    started = time.monotonic()
    results, adapter, _ = fleet_read_all(bad_prometheus.url("slow"), query_timeout_s=SHORT_TIMEOUT_S)
    assert time.monotonic() - started < SLOW_RESPONSE_S
    for metrics in results:
        assert_first_fails_rest_skipped(metrics, FailureKind.TIMEOUT)


@pytest.mark.parametrize("mode", ["html", "matrix", "status-500"])
def test_fleet_read_of_garbage_holds(bad_prometheus, mode) -> None:
    results, _, _ = fleet_read_all(bad_prometheus.url(mode))
    for metrics in results:
        assert_all_none(metrics)
        assert not metrics.prometheus_reachable


def test_fleet_read_of_unlabelled_series_finds_no_workload(bad_prometheus) -> None:
    """Series without the workload labels belong to no workload: EmptyResult, as a per-pool read of
    an unscraped pool; the histograms' missing ``le`` is BadResponse."""
    results, adapter, _ = fleet_read_all(bad_prometheus.url("unlabelled-histogram"))
    assert adapter.queries_sent == len(OBSERVATION_FIELDS) - 2  # tpot_s, kv_residency skipped after the bad histogram
    kinds = {f.field: f.kind for f in results[0].failures}
    assert kinds["running_requests"] is FailureKind.EMPTY
    assert kinds["ttft_s"] is FailureKind.BAD_RESPONSE and kinds["tpot_s"] is FailureKind.SKIPPED


def test_retries_are_bounded_and_configurable(bad_prometheus) -> None:
    bad_prometheus.hits.pop("status-503-json", None)
    metrics = read_from(bad_prometheus.url("status-503-json"), max_retries=2)
    assert metrics.failures[0].http_status == 503
    assert bad_prometheus.hits["status-503-json"] == 3  # first attempt + 2 retries, then skip the rest


def test_no_retries_by_default(bad_prometheus) -> None:
    bad_prometheus.hits.pop("status-500", None)
    read_from(bad_prometheus.url("status-500"))
    assert bad_prometheus.hits["status-500"] == 1
