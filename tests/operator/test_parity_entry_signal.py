"""Parity with the entry signal: a ModelDeployment that parks at zero and is woken by requests held at
its entry decides the same in the simulator and in the operator behind the activator.

The sequence is recorded from a simulator run (``tidal simulate -f``'s shell, with its model of the
activator): a busy spell, a quiet gap longer than ``scaleToZeroAfter`` (the workload parks), and a
small burst that finds it at zero (held by the activator; it wakes the workload). Alongside each
observation the recorder keeps what the activator knew at that tick: the arrival times it held and
how many it holds. The operator's real tick then runs on the same sequence against the test API
server (``--activator-service`` set): engine metrics from a fake Prometheus reader (the engines' own
values: the held requests are not in them), and the activator's demand as the annotations
``demand.activator.tidal.dev/*`` on the ModelDeployment, spread over several activator replicas
(each reports its last 64 arrivals). Every decision must be identical, reasons included.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, accelerator_class, model_deployment
from tests.operator.test_parity_modeldeployment import _children, _signature, _whole_seconds
from tidal.activator.demand import DemandReport, annotation_key
from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.validation import parse_resource
from tidal.controllers.modeldeployment_observe import ChildPod
from tidal.operator import modeldeployment_controller as controller_module
from tidal.operator.kube import KubeClients
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.modeldeployment_controller import ModelDeploymentController
from tidal.operator.prometheus import OBSERVATION_FIELDS, PodMetrics, PoolMetrics
from tidal.operator.settings import DEFAULT_INTERVAL_S, OperatorSettings
from tidal.operator.workloads import StateStore, WorkloadCache
from tidal.policies.interface import Decision, Observation
from tidal.sim.modeldeployment import ModelDeploymentAutoscaler, prepare, sim_config, workload_decision
from tidal.sim.runner import Simulation
from tidal.sim.traces import load_trace, rate_scale

NAME = "par"
BUSY_S, GAP_S, WAKE_REQUESTS = 180.0, 300.0, 24
ACTIVATOR_REPLICAS = 8
"""Each replica's annotation carries its last 64 held arrivals: eight cover every held arrival here."""


class _Recorder:
    """The simulator's autoscaler, keeping each observation with the activator's state at that tick."""

    def __init__(self, inner: ModelDeploymentAutoscaler) -> None:
        self.inner, self.name = inner, inner.name
        self.sim: Simulation | None = None
        self.steps: list[tuple[Observation, Decision, tuple[float, ...], int]] = []

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        decision, state = self.inner.decide(observation, state)
        held = (tuple(self.sim.activator_arrivals), self.sim.activator_held) if self.sim else ((), 0)
        self.steps.append((observation, decision, *held))
        return decision, state


def _annotations(arrivals: tuple[float, ...], held: int, now: float) -> dict[str, str]:
    """What ACTIVATOR_REPLICAS activator replicas would have written by ``now`` (round robin)."""
    out = {}
    for replica in range(ACTIVATOR_REPLICAS):
        mine = arrivals[replica::ACTIVATOR_REPLICAS][-64:]
        out[annotation_key(f"activator-{replica}")] = DemandReport(
            mine, held if replica == 0 else 0, now).to_json()
    return out


class _Engines:
    """The engines' metrics for the current recorded observation: the simulator's values minus the
    requests the activator holds (those are in the entry pool's waiting count in the simulator)."""

    def __init__(self, entry_pool: str) -> None:
        self.entry_pool = entry_pool
        self.observation: Observation | None = None
        self.held = 0
        self.pods: list[ChildPod] = []

    def read_pool(self, *, namespace: str, deployment: str, pool: str, **_: Any) -> PoolMetrics:
        assert self.observation is not None and deployment == NAME
        o = self.observation.pools[pool]
        if pool == self.entry_pool and o.waiting_requests is not None:
            o = replace(o, waiting_requests=o.waiting_requests - self.held)
        ready = [p.name for p in self.pods if p.pool == pool and p.ready and not p.deleting]
        share = lambda total: None if total is None else total / max(len(ready), 1)  # noqa: E731
        pods = {n: PodMetrics(n, running_requests=share(o.running_requests), waiting_requests=share(o.waiting_requests))
                for n in ready}
        return PoolMetrics(**{f: getattr(o, f) for f in OBSERVATION_FIELDS}, pods=pods)


MODES = {
    "unified": {"mode": "unified", "pools": {"unified": {"minReplicas": 1, "maxReplicas": 4}}},
    "disaggregated": {"mode": "disaggregated", "pools": {"prefill": {"minReplicas": 1, "maxReplicas": 3},
                                                         "decode": {"minReplicas": 1, "maxReplicas": 4}}},
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_parked_and_woken_by_the_entry_signal_the_same_in_both_shells(
        harness: OperatorHarness, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    h = harness
    manifest = model_deployment(NAME, classes=("gpu-a",), autoscaling={
        "predictor": "holt-winters", "scaleDownDelay": "1m", "scaleToZero": True, "scaleToZeroAfter": "2m"},
        **MODES[mode])
    body = h.create_md(manifest)
    md = parse_resource({k: body[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {
        "name": NAME, "namespace": OPERATOR_NS}})
    parsed = parse_resource(accelerator_class("gpu-a", 2.5))
    assert isinstance(parsed, AcceleratorClass)
    classes = {"gpu-a": parsed}
    workload = prepare(md, classes)  # type: ignore[arg-type]

    # 1. Record: busy, a gap that parks it, a small burst that finds it at zero.
    recorder = _Recorder(ModelDeploymentAutoscaler(workload))
    busy = rate_scale(load_trace("demo", seed=0, duration_s=BUSY_S), 1.0)
    last = busy[-1]
    wake = [replace(last, arrival_s=last.arrival_s + GAP_S + 1.3 * i, request_id=last.request_id + 1 + i)
            for i in range(WAKE_REQUESTS)]
    sim = Simulation(busy + wake, recorder, sim_config(workload))
    recorder.sim = sim
    result = sim.run()
    # The first call is the simulator's bootstrap at t=0 (its initial replicas, before any tick; the
    # operator's reconcile does that): the ticks follow it.
    assert recorder.steps[0][0].now_s == 0.0
    steps = [(replace(obs, starts=tuple(_whole_seconds(s) for s in obs.starts)), arrivals, held)
             for obs, _, arrivals, held in recorder.steps[1:]]
    codes = [{r.code for r in workload_decision(d).decision.reasons} for _, d, _, _ in recorder.steps]
    assert any("scale-to-zero" in c for c in codes), "the sequence must park"
    assert any("scale-from-zero" in c or "scale-to-zero" not in c for c in codes[codes.index(
        next(c for c in codes if "scale-to-zero" in c)):]), "... and wake"
    assert result.summary["activator_held"] >= WAKE_REQUESTS // 2 and result.summary["finished"] == len(busy) + len(wake)
    assert any(held > 0 for _, _, held in steps), "the activator held requests at a tick"
    assert any(obs.now_s % DEFAULT_INTERVAL_S for obs, _, _ in steps), \
        "a decision between ticks: the demand handler's, at the first held request"

    # 2. The simulator shell on the recorded sequence.
    shell, state = ModelDeploymentAutoscaler(workload), None
    simulated = []
    for obs, _, _ in steps:
        decision, state = shell.decide(obs, state)
        simulated.append(workload_decision(decision))

    # 3. The operator's tick, behind the activator, on the same sequence.
    monkeypatch.setattr(controller_module, "_event", lambda *args, **kwargs: None)
    settings = OperatorSettings(interval_s=DEFAULT_INTERVAL_S, health_port=0, metrics_port=0,
                                state_save_interval_s=0.0, log_format="plain",
                                activator_service="tidal-system/tidal-activator")
    clients = KubeClients(h.api)
    engines = _Engines(next(iter(MODES[mode]["pools"])) if mode == "unified" else "prefill")
    clock = [0.0]
    operator = ModelDeploymentController(settings, clients, OperatorMetrics(),
                                         WorkloadCache(StateStore(clients, settings.field_manager)),
                                         prometheus=engines, clock=lambda: clock[0])
    status = None
    operated = []
    for obs, arrivals, held in steps:
        clock[0] = obs.now_s
        engines.observation, engines.held = obs, held
        deployments, pods = _children(obs, workload.accelerator_class)
        engines.pods = pods
        tick_body = {**body, "metadata": {**body["metadata"], "annotations": _annotations(arrivals, held, obs.now_s)}}
        patch: dict[str, Any] = {}
        result_ = operator.tick(tick_body, patch, status, classes, deployments, pods)  # the timer's or
        # the demand handler's: the same call
        assert result_ is not None and not result_.problems, result_
        status = patch.get("status", status)
        operated.append(result_.decision)

    for i, (sim_wd, op_wd) in enumerate(zip(simulated, operated)):
        assert _signature(op_wd) == _signature(sim_wd), f"tick {i} at {steps[i][0].now_s:g}s"
    at_zero = [i for i, (obs, _, _) in enumerate(steps) if all(o.current_replicas == 0 for o in obs.pools.values())]
    assert at_zero, "some ticks found the workload at zero"
    woke = [i for i in at_zero if max(simulated[i].decision.desired_replicas.values()) > 0]
    assert woke and math.isfinite(steps[woke[0]][0].now_s), "... and one of them woke it on the entry signal"
