"""What you simulate is what you run: one observation sequence, two shells, identical decisions.

The sequence is recorded from a simulator run of a ModelDeployment (``tidal simulate -f``'s shell),
with replica-start phases rounded to whole seconds as pod timestamps carry them. It is then fed

- through the simulator's shell (:class:`ModelDeploymentAutoscaler`), and
- through the operator's real tick against the test API server: children and pods as kopf's indexes
  would hold them, engine metrics from a fake Prometheus reader, the operator's clock at the sample
  time; halfway, the operator is replaced by a new instance that restores the core state (predictors
  included) from the state ConfigMap, as after ``kill -9``,

and every decision must be identical: replicas per pool and per accelerator class, reasons, changes,
limits, forecast, predicted cold start and KV TTL, for a unified and a disaggregated spec.
"""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Callable
from typing import Any

import pytest

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, accelerator_class, model_deployment
from tidal.api.acceleratorclass import AcceleratorClass, AcceleratorClassStatus
from tidal.api.validation import parse_resource
from tidal.controllers.modeldeployment_observe import IMAGE_CACHED_BELOW_S, ChildDeployment, ChildPod
from tidal.core.modeldeployment import WorkloadDecision
from tidal.operator import modeldeployment_controller as controller_module
from tidal.operator.kube import KubeClients
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.modeldeployment_controller import ModelDeploymentController
from tidal.operator.prometheus import OBSERVATION_FIELDS, PodMetrics, PoolMetrics
from tidal.operator.settings import DEFAULT_INTERVAL_S, OperatorSettings
from tidal.operator.workloads import StateStore, WorkloadCache
from tidal.policies.interface import Decision, Observation, ReplicaStart
from tidal.core.placement import REASON_CLASS_FULL
from tidal.sim.modeldeployment import ModelDeploymentAutoscaler, mixed_config, prepare, sim_config, workload_decision
from tidal.sim.runner import Simulation
from tidal.sim.traces import load_trace, rate_scale

NAME = "par"
REPLAY_S = 720.0
"""The whole bundled 12-minute excerpt, compressed 1.5x: enough to scale up, learn starts and scale down."""
RATE_SCALE = 1.5
QUIET_TAIL_S = 240.0
"""A quiet gap, then one last request: the planner sizes the busy excerpt steadily, and the gap is
where the sequence scales down (past the spec's 1-minute scaleDownDelay)."""
CREATED_BASE_S = 1_700_000_000.0
"""Pod creation timestamps are whole seconds from here (RFC 3339 in the API)."""


class _Recorder:
    """Wraps the simulator's autoscaler and keeps every (observation, decision) it saw."""

    def __init__(self, inner: ModelDeploymentAutoscaler) -> None:
        self.inner, self.name = inner, inner.name
        self.steps: list[tuple[Observation, Decision]] = []

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        decision, state = self.inner.decide(observation, state)
        self.steps.append((observation, decision))
        return decision, state


class _FakePrometheus:
    """The engine metrics of the current recorded observation, as the Prometheus reader returns them:
    pool values plus every Ready pod's share of the in-flight counts (the simulator observes every
    replica, so the operator must see a fully observed pool too)."""

    def __init__(self) -> None:
        self.observation: Observation | None = None
        self.pods: list[ChildPod] = []

    def read_pool(self, *, namespace: str, deployment: str, pool: str, dialect: str, window_s: float,
                  percentile: float) -> PoolMetrics:
        assert self.observation is not None and deployment == NAME
        o = self.observation.pools[pool]
        ready = [p.name for p in self.pods if p.pool == pool and p.ready and not p.deleting]
        share = lambda total: None if total is None else total / max(len(ready), 1)  # noqa: E731
        pods = {name: PodMetrics(name, running_requests=share(o.running_requests),
                                 waiting_requests=share(o.waiting_requests)) for name in ready}
        # every field the adapter fills, as recorded (a field missing here would be a false difference)
        return PoolMetrics(**{f: getattr(o, f) for f in OBSERVATION_FIELDS}, pods=pods)


def _whole_seconds(start: ReplicaStart) -> ReplicaStart:
    """A start as pod timestamps (1 s resolution) carry it."""
    sched, pull, init = round(start.scheduling_s), round(start.image_pull_s), round(start.engine_init_s)
    return replace(start, scheduling_s=float(sched), image_pull_s=float(pull), weights_load_s=0.0,
                   engine_init_s=float(init), image_cached=pull < IMAGE_CACHED_BELOW_S)


def _children(obs: Observation, accelerator: str) -> tuple[list[ChildDeployment], list[ChildPod]]:
    """The Deployments and Pods kopf's indexes would hold for the cluster the observation describes
    (on a mixed cluster, one Deployment per class the observation places replicas on; a pod that
    started is on the class its start names)."""
    deployments, pods = [], []
    for pool, o in obs.pools.items():
        by_class = obs.placement.get(pool) or {accelerator: o.current_replicas}
        for cls, n in by_class.items():
            deployments.append(ChildDeployment(f"{NAME}-{pool}-{cls}", OPERATOR_NS, NAME, pool, cls, n,
                                               min(n, o.ready_replicas)))
        starts = [s for s in obs.starts if s.pool == pool]
        assert len(starts) <= o.ready_replicas + o.draining_replicas

        def pod(i: int, *, scheduled: bool, ready: bool, deleting: bool, start: ReplicaStart | None = None,
                kind: str = "") -> ChildPod:
            uid = start.uid if start is not None else f"{pool}-{kind}-{i}"
            times: dict[str, float] = {}
            if start is not None:
                created = CREATED_BASE_S + 1000.0 * int(uid.rsplit("-", 1)[-1])
                times = {"created_s": created, "scheduled_s": created + start.scheduling_s,
                         "started_s": created + start.scheduling_s + start.image_pull_s,
                         "ready_s": created + start.scheduling_s + start.image_pull_s + start.engine_init_s}
            on = start.accelerator if start is not None and obs.placement else accelerator
            return ChildPod(uid, OPERATOR_NS, uid, NAME, pool, on,
                            start.node if start is not None else ("node" if scheduled else None),
                            scheduled=scheduled, ready=ready, deleting=deleting, **times)

        for i in range(o.ready_replicas):
            pods.append(pod(i, scheduled=True, ready=True, deleting=False,
                            start=starts[i] if i < len(starts) else None, kind="ready"))
        extra = starts[o.ready_replicas:]
        for i in range(o.draining_replicas):
            pods.append(pod(i, scheduled=True, ready=i < len(extra), deleting=True,
                            start=extra[i] if i < len(extra) else None, kind="draining"))
        pods += [pod(i, scheduled=True, ready=False, deleting=False, kind="starting")
                 for i in range(o.starting_replicas)]
        pods += [pod(i, scheduled=False, ready=False, deleting=False, kind="pending")
                 for i in range(o.pending_replicas)]
    return deployments, pods


def _with_free(acc: AcceleratorClass, free: int | None) -> AcceleratorClass:
    """``acc`` with the inventory status the operator's loop would have written (one node)."""
    assert free is not None
    total = acc.status.allocatable if acc.status else 0
    return acc.model_copy(update={"status": AcceleratorClassStatus(nodes=1, allocatable=max(total, free),
                                                                   used=max(total, free) - free, free=free)})


def _signature(wd: WorkloadDecision) -> tuple[Any, ...]:
    return (dict(wd.decision.desired_replicas), dict(wd.by_child), wd.decision.reasons, wd.changes,
            wd.capacity_limits, wd.forecast, wd.decision.forecast_rps, wd.cold_start_s, wd.kv_ttl_s, wd.override,
            wd.learned_starts)


MODES = {
    "unified": {"mode": "unified", "pools": {"unified": {"minReplicas": 1, "maxReplicas": 6}}},
    "disaggregated": {"mode": "disaggregated", "pools": {"prefill": {"minReplicas": 1, "maxReplicas": 4},
                                                         "decode": {"minReplicas": 1, "maxReplicas": 6}}},
}


@pytest.mark.parametrize("mode", [*sorted(MODES), "mixed"])
def test_operator_tick_and_simulator_shell_decide_identically_across_a_restart(
        harness: OperatorHarness, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """``mixed``: unified, on a simulated cluster with 2 GPUs of gpu-a (the preferred class) and a
    node of gpu-b, so the core spills, reports the full class and places per class from the free
    GPUs; the operator reads the same free GPUs from each AcceleratorClass's status."""
    mixed = mode == "mixed"
    mode = "unified" if mixed else mode
    h = harness
    manifest = model_deployment(NAME, classes=("gpu-a", "gpu-b"),
                                autoscaling={"predictor": "holt-winters", "scaleDownDelay": "1m"}, **MODES[mode])
    body = h.create_md(manifest)
    md = parse_resource({k: body[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {
        "name": NAME, "namespace": OPERATOR_NS}})
    classes = {}
    for raw in (accelerator_class("gpu-a", 2.5), accelerator_class("gpu-b", 20.0, tflops=900.0)):
        parsed = parse_resource(raw)
        assert isinstance(parsed, AcceleratorClass)
        classes[raw["metadata"]["name"]] = parsed
    workload = prepare(md, classes)  # type: ignore[arg-type]
    # gpu-a stays the cheaper per goodput whatever the mix (gpu-b: 3x the FLOP/s at 8x the price), so the
    # single-class simulation holds every replica the core places (the mixed case spills to gpu-b)
    assert workload.accelerator_class == "gpu-a"

    # 1. Record: the simulator shell drives a simulated cluster.
    recorder = _Recorder(ModelDeploymentAutoscaler(workload))
    requests = rate_scale(load_trace("demo", seed=0, duration_s=REPLAY_S), RATE_SCALE)
    last = requests[-1]
    requests.append(replace(last, arrival_s=last.arrival_s + QUIET_TAIL_S, request_id=last.request_id + 1))
    config = (mixed_config(workload, classes, {"gpu-a": 1, "gpu-b": 1}, {"gpu-a": 2}) if mixed
              else sim_config(workload))
    Simulation(requests, recorder, config).run()
    sequence = [replace(obs, starts=tuple(_whole_seconds(s) for s in obs.starts)) for obs, _ in recorder.steps]
    recorded = [workload_decision(d) for _, d in recorder.steps]
    assert max(max(wd.decision.desired_replicas.values()) for wd in recorded) >= 3, "the sequence must scale up"
    assert any(after < before for wd in recorded for _, before, after in wd.changes), "... and down"
    assert sum(len(o.starts) > 0 for o in sequence) > 0, "... and see replica starts"
    if mixed:
        assert any(o.placement["unified"]["gpu-b"] > 0 for o in sequence), "... and spill to gpu-b"
        assert any(r.code == REASON_CLASS_FULL for wd in recorded for r in wd.capacity_limits)

    # 2. The simulator shell on the recorded sequence.
    shell, state = ModelDeploymentAutoscaler(workload), None
    simulated = []
    for obs in sequence:
        decision, state = shell.decide(obs, state)
        simulated.append(workload_decision(decision))
    assert any(wd.learned_starts for wd in simulated) and any(wd.forecast is not None for wd in simulated)

    # 3. The operator's tick on the same sequence, restarted halfway.
    monkeypatch.setattr(controller_module, "_event", lambda *args, **kwargs: None)  # Events are not decisions
    prometheus = _FakePrometheus()
    clock = [0.0]
    new_operator = operator_factory(h.api, prometheus, clock)

    operator, status = new_operator(), None
    operated = []
    for i, obs in enumerate(sequence):
        if i == len(sequence) // 2:
            operator = new_operator()  # the old one is dropped without any shutdown, as by kill -9
        clock[0] = obs.now_s
        prometheus.observation = obs
        deployments, pods = _children(obs, workload.accelerator_class)
        prometheus.pods = pods
        patch: dict[str, Any] = {}
        index = {n: _with_free(c, obs.accelerators[n].free_gpus) for n, c in classes.items()} if mixed else classes
        result = operator.tick(body, patch, status, index, deployments, pods)
        assert result is not None and not result.problems, result
        status = patch.get("status", status)
        operated.append(result.decision)

    for i, (sim_wd, op_wd, rec_wd) in enumerate(zip(simulated, operated, recorded)):
        assert _signature(op_wd) == _signature(sim_wd), f"tick {i} at {sequence[i].now_s:g}s"
        # The recording learnt the unrounded phases; everything else matches it too.
        assert _signature(sim_wd)[:-1] == _signature(rec_wd)[:-1], f"tick {i}: replay differs from the recording"
    assert status is not None and status["predictedColdStartSeconds"] == round(simulated[-1].cold_start_s, 1)
    # What the two cores learnt is the same, to the byte of its persisted form.
    runtime = operator.workloads.peek(OPERATOR_NS, NAME)
    assert runtime is not None and state is not None
    assert runtime.core.to_parts() == state.to_parts()


def operator_factory(api: Any, prometheus: Any, clock: list[float]) -> Callable[[], ModelDeploymentController]:
    """A new ModelDeploymentController per call (a restart), on ``api``, reading ``prometheus``, at
    ``clock[0]``, saving its state every tick: what the parity tests replay a sequence through."""
    settings = OperatorSettings(interval_s=DEFAULT_INTERVAL_S, health_port=0, metrics_port=0,
                                state_save_interval_s=0.0, log_format="plain")
    clients = KubeClients(api)

    def new_operator() -> ModelDeploymentController:
        return ModelDeploymentController(settings, clients, OperatorMetrics(),
                                         WorkloadCache(StateStore(clients, settings.field_manager)),
                                         prometheus=prometheus, clock=lambda: clock[0])
    return new_operator
