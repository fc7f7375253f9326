"""Per-pod validation of engine and function metrics: garbage from one pod never moves replicas down.

Each case is one of the metric faults that scaled workloads down before validation existed
(issue: negative gauge, missing pod, stale series, huge values, NaN). The adapter's pure path is
exercised through :class:`FleetSnapshot.pool_metrics` with hand-made answers; the real-Prometheus
tests in this directory check the query text.
"""

from __future__ import annotations

import math
from typing import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.operator.metric_validation import MAX_PER_POD, SampleProblem, check_sample
from tidal.operator.prometheus import FailureKind, FleetSnapshot, PoolMetrics
from tidal.operator.promql import STALE_LABEL, VLLM, LabelScheme, Sample, fleet_queries
from tidal.policies.interface import PoolObservation

LABELS = LabelScheme()
KEY = ("ns", "llama", "unified")
WINDOW_S = 60.0


def _series(pod: str, value: float, **extra: str) -> Sample:
    labels = {"namespace": KEY[0], "tidal_dev_deployment": KEY[1], "tidal_dev_pool": KEY[2], "pod": pod, **extra}
    return Sample(labels=labels, value=value)


def read(running: Mapping[str, float], *, waiting: Mapping[str, float] | None = None,
         stale: tuple[str, ...] = ()) -> PoolMetrics:
    """The pool's metrics when each pod reports ``running`` (and ``waiting``, default 0) requests."""
    waiting = waiting if waiting is not None else {pod: 0.0 for pod in running}
    answers = []
    for query in fleet_queries(VLLM, LABELS, window_s=WINDOW_S):
        if query.field == "running_requests":
            samples = tuple(_series(p, v, **({STALE_LABEL: "true"} if p in stale else {})) for p, v in running.items())
        elif query.field == "waiting_requests":
            samples = tuple(_series(p, v) for p, v in waiting.items())
        elif query.residency:
            samples = ()  # opt-in (vLLM --kv-cache-metrics): absent is not a failure
        elif query.histogram:
            samples = tuple(Sample({"namespace": "ns", "tidal_dev_deployment": "llama", "tidal_dev_pool": "unified",
                                    "le": le}, 1.0) for le in ("1", "+Inf"))
        elif not query.per_pod:  # the pool's peak request rate
            samples = (Sample({"namespace": "ns", "tidal_dev_deployment": "llama", "tidal_dev_pool": "unified"},
                              float(len(running))),)
        else:
            samples = tuple(_series(p, 1.0) for p in running)
        answers.append((query, {KEY: samples}))
    snapshot = FleetSnapshot(dialect="vllm", window_s=WINDOW_S, labels=LABELS, answers=tuple(answers))
    return snapshot.pool_metrics(namespace=KEY[0], deployment=KEY[1], pool=KEY[2], percentile=90)


FIVE = [f"llama-{i}" for i in range(5)]


def test_a_negative_gauge_from_one_pod_is_rejected_and_named() -> None:
    metrics = read({**{p: 16.0 for p in FIVE[:4]}, FIVE[4]: -1000.0})
    assert metrics.running_requests == 64.0  # the four good pods, not -936
    assert [(r.pod, r.field, r.problem) for r in metrics.rejections] == [
        ("llama-4", "running_requests", SampleProblem.NEGATIVE)]
    assert "pod llama-4: running_requests = -1000 negative" in metrics.message()
    observed = metrics.observe(PoolObservation(ready_replicas=5), frozenset(FIVE))
    assert observed.unobserved_replicas == 1


def test_a_ready_pod_without_series_makes_the_pool_partially_observed() -> None:
    metrics = read({p: 16.0 for p in FIVE[:4]})
    assert metrics.complete and metrics.running_requests == 64.0
    by_name = metrics.observe(PoolObservation(ready_replicas=5), frozenset(FIVE))
    assert by_name.unobserved_replicas == 1
    problems = metrics.problems(frozenset(FIVE))
    assert {(p.pod, p.problem) for p in problems} == {("llama-4", SampleProblem.NOT_REPORTING)}
    # Pod names unknown (no pod watch yet): judged by count, 4 reporting of 5 Ready.
    assert metrics.observe(PoolObservation(ready_replicas=5)).unobserved_replicas == 1
    assert metrics.observe(PoolObservation(ready_replicas=4)).unobserved_replicas == 0


def test_a_stale_series_is_rejected_with_its_age_reason() -> None:
    metrics = read({p: 16.0 for p in FIVE}, stale=("llama-2",))
    assert metrics.running_requests == 64.0
    (rejection,) = metrics.rejections
    assert (rejection.pod, rejection.problem) == ("llama-2", SampleProblem.STALE)
    assert "no sample in the last 60s" in rejection.describe()


@pytest.mark.parametrize("value", [1e300, 1.7e308, math.inf, math.nan])
def test_huge_and_non_finite_values_are_rejected_without_crashing(value: float) -> None:
    metrics = read({"llama-0": value, "llama-1": value, "llama-2": 3.0})
    assert metrics.running_requests == 3.0
    assert {r.pod for r in metrics.rejections} == {"llama-0", "llama-1"}


def test_every_pod_rejected_is_a_failure_not_a_zero() -> None:
    metrics = read({"llama-0": -1.0, "llama-1": 1e300})
    assert metrics.running_requests is None
    (failure,) = [f for f in metrics.failures if f.field == "running_requests"]
    assert failure.kind is FailureKind.REJECTED
    assert "llama-0" in failure.message and "llama-1" in failure.message
    nan = read({"llama-0": math.nan})
    assert [f.kind for f in nan.failures if f.field == "running_requests"] == [FailureKind.NOT_A_NUMBER]


@given(st.sampled_from(sorted(MAX_PER_POD)), st.floats(allow_nan=True, allow_infinity=True))
def test_check_sample_accepts_exactly_the_plausible_values(field: str, value: float) -> None:
    problem = check_sample(field, value)
    plausible = math.isfinite(value) and 0 <= value <= MAX_PER_POD[field]
    assert (problem is None) == plausible


def test_pods_expected_to_report_are_ready_settled_and_not_terminating() -> None:
    from tidal.controllers.modeldeployment_observe import ChildPod
    from tidal.operator.modeldeployment_controller import ready_pod_names

    def pod(name: str, *, ready: bool = True, deleting: bool = False, ready_s: float | None = 0.0) -> ChildPod:
        return ChildPod(name, "ns", name, "llama", "unified", "gpu", "n1", scheduled=True, ready=ready,
                        deleting=deleting, ready_s=ready_s)

    pods = [pod("old"), pod("unknown-age", ready_s=None), pod("just-ready", ready_s=95.0),
            pod("starting", ready=False, ready_s=None), pod("leaving", deleting=True)]
    assert ready_pod_names(pods, now_s=100.0, grace_s=60.0) == {"unified": frozenset({"old", "unknown-age"})}
    assert ready_pod_names([], now_s=100.0, grace_s=60.0) is None  # no pod watch yet: judged by count


def test_a_metrics_read_that_raises_holds_the_replicas_and_says_why(harness, monkeypatch) -> None:
    """A bug or an unforeseen answer in the metrics path must not crash the tick (the status would go
    stale with MetricsAvailable=True): the tick holds and names the exception."""
    from tests.operator.conftest import OPERATOR_NS, accelerator_class, model_deployment
    from tidal.api.validation import parse_resource
    from tidal.controllers.modeldeployment_observe import ChildDeployment, ChildPod
    from tidal.operator import modeldeployment_controller as controller_module
    from tidal.operator.kube import KubeClients
    from tidal.operator.metrics import OperatorMetrics
    from tidal.operator.modeldeployment_controller import ModelDeploymentController
    from tidal.operator.settings import OperatorSettings
    from tidal.operator.workloads import StateStore, WorkloadCache

    class ExplodingReader:
        def read_pool(self, **_: object) -> PoolMetrics:
            raise OverflowError("math range error")

    monkeypatch.setattr(controller_module, "_event", lambda *args, **kwargs: None)
    body = harness.create_md(model_deployment("boom", min_replicas=1, max_replicas=8))
    settings = OperatorSettings(health_port=0, metrics_port=0, state_save_interval_s=0.0, log_format="plain")
    clients = KubeClients(harness.api)
    controller = ModelDeploymentController(settings, clients, OperatorMetrics(),
                                           WorkloadCache(StateStore(clients, settings.field_manager)),
                                           prometheus=ExplodingReader(), clock=lambda: 1_000.0)
    classes = {"gpu-a": parse_resource(accelerator_class("gpu-a", 2.5))}
    deployments = [ChildDeployment("boom-unified-gpu-a", OPERATOR_NS, "boom", "unified", "gpu-a", 5, 5)]
    pods = [ChildPod(f"boom-{i}", OPERATOR_NS, f"u{i}", "boom", "unified", "gpu-a", "n1", scheduled=True,
                     ready=True, deleting=False, ready_s=0.0) for i in range(5)]
    patch: dict = {}
    result = controller.tick(body, patch, None, classes, deployments, pods)
    assert result is not None and result.decision.decision.desired_replicas == {"unified": 5}
    (metrics,) = [c for c in patch["status"]["conditions"] if c["type"] == "MetricsAvailable"]
    assert (metrics["status"], metrics["reason"]) == ("False", "MetricsReadFailed")
    assert "OverflowError: math range error" in metrics["message"] and "holding replicas" in metrics["message"]
