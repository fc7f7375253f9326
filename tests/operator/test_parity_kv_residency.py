"""What you simulate is what you run, for ``kvCache.ttl: auto`` learning from vLLM's KV-block
residency histograms: the same increments give the same TTL in both shells, across a restart.

The sequence is recorded from the simulator shell running agent sessions (tidal/sim/traces/agent.py)
on a ModelDeployment whose engines report the histograms (``sim_config`` turns them on exactly when
the rendered vLLM pods get ``--kv-cache-metrics``): the simulated prefix cache evicts, reports gaps
and idle times, and the core moves the TTL from the prior's 0 once it has enough gaps. One tick's
increments are then corrupted (a falling cumulative count): neither shell learns from it, both say
why. The sequence is fed through the simulator shell and through the operator's real tick (engine
metrics from a fake Prometheus reader carrying the same increments), the operator restarted halfway
from its state ConfigMap; every decision, the KV TTL included, and the persisted state must match.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, model_deployment
from tests.operator.test_parity_modeldeployment import (
    NAME, _children, _FakePrometheus, _Recorder, _signature, _whole_seconds, operator_factory,
)
from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.validation import parse_resource
from tidal.operator import modeldeployment_controller as controller_module
from tidal.policies.guards import REASON_KV_RESIDENCY_INVALID
from tidal.sim.modeldeployment import ModelDeploymentAutoscaler, prepare, sim_config, workload_decision
from tidal.sim.runner import Simulation
from tidal.sim.traces import synthetic_agent_sessions
from tests.operator.conftest import accelerator_class

SESSIONS = 200
"""Agent sessions replayed: ~15 minutes, enough for the cache to evict and the TTL to move."""


def test_both_shells_learn_the_same_kv_ttl_from_the_same_histograms(
        harness: OperatorHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    manifest = model_deployment(NAME, classes=("gpu-a",), max_replicas=2, kvCache={"ttl": "auto"},
                                autoscaling={"predictor": "holt-winters", "scaleDownDelay": "1m"})
    body = h.create_md(manifest)
    md = parse_resource({k: body[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {
        "name": NAME, "namespace": OPERATOR_NS}})
    acc = parse_resource(accelerator_class("gpu-a", 2.5))
    assert isinstance(acc, AcceleratorClass)
    classes = {"gpu-a": acc}
    workload = prepare(md, classes)  # type: ignore[arg-type]

    # 1. Record: the simulator shell, its engines reporting KV-block residency.
    config = sim_config(workload)
    assert config.engine.kv_metrics_sample == 0.01
    recorder = _Recorder(ModelDeploymentAutoscaler(workload))
    Simulation(synthetic_agent_sessions(seed=0, sessions=SESSIONS), recorder, config).run()
    sequence = [replace(obs, starts=tuple(_whole_seconds(s) for s in obs.starts)) for obs, _ in recorder.steps]
    assert sum(o.pools["unified"].kv_residency is not None for o in sequence) > len(sequence) // 2
    recorded_ttls = [workload_decision(d).kv_ttl_s for _, d in recorder.steps]
    assert recorded_ttls[0] == 0.0 and max(recorded_ttls) > 0.0, "the TTL must move off the prior"
    # One tick's increments corrupted: a cumulative count that falls.
    bad_at = next(i for i, o in enumerate(sequence) if o.pools["unified"].kv_residency is not None
                  and i > len(sequence) // 3)
    pool = sequence[bad_at].pools["unified"]
    assert pool.kv_residency is not None
    falling = ((*pool.kv_residency.reuse_gap[:-1], (float("inf"), -1.0)))
    sequence[bad_at] = replace(sequence[bad_at], pools={"unified": replace(
        pool, kv_residency=replace(pool.kv_residency, reuse_gap=falling))})

    # 2. The simulator shell on the sequence.
    shell, state = ModelDeploymentAutoscaler(workload), None
    simulated = []
    for obs in sequence:
        decision, state = shell.decide(obs, state)
        simulated.append(workload_decision(decision))
    assert [r.code for r in simulated[bad_at].decision.reasons].count(REASON_KV_RESIDENCY_INVALID) == 1
    assert simulated[bad_at].kv_ttl_s == simulated[bad_at - 1].kv_ttl_s

    # 3. The operator's tick on the same sequence, restarted halfway.
    monkeypatch.setattr(controller_module, "_event", lambda *args, **kwargs: None)
    prometheus = _FakePrometheus()
    clock = [0.0]
    new_operator = operator_factory(h.api, prometheus, clock)

    operator, status = new_operator(), None
    operated = []
    for i, obs in enumerate(sequence):
        if i == len(sequence) // 2:
            operator = new_operator()  # dropped without shutdown, as by kill -9: state from the ConfigMap
        clock[0] = obs.now_s
        prometheus.observation = obs
        deployments, pods = _children(obs, workload.accelerator_class)
        prometheus.pods = pods
        patch: dict[str, Any] = {}
        result = operator.tick(body, patch, status, classes, deployments, pods)
        assert result is not None and not result.problems, result
        status = patch.get("status", status)
        operated.append(result.decision)

    for i, (sim_wd, op_wd) in enumerate(zip(simulated, operated)):
        assert op_wd.kv_ttl_s == sim_wd.kv_ttl_s, f"tick {i} at {sequence[i].now_s:g}s"
        assert _signature(op_wd) == _signature(sim_wd), f"tick {i} at {sequence[i].now_s:g}s"
    assert status is not None and status["kvTtlSeconds"] == simulated[-1].kv_ttl_s
    runtime = operator.workloads.peek(OPERATOR_NS, NAME)
    assert runtime is not None and state is not None and runtime.core.kv_pauses is not None
    assert runtime.core.to_parts() == state.to_parts()
