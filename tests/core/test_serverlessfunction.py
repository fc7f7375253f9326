"""The ServerlessFunction decision both shells call: learnt cold start, SLO floor, persisted state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tidal.api.serverlessfunction import ServerlessFunctionSpec
from tidal.controllers.serverlessfunction import policy_for
from tidal.core.serverlessfunction import (
    ColdStarts,
    FunctionState,
    LearningKeepAlive,
    cold_start_lead_s,
    decide_function,
    function_state_from_dict,
    function_state_to_dict,
    function_worth_persisting,
    slo_tail_percentile,
)
from tidal.policies.defaults import (
    FUNCTION_COLD_START_S,
    FUNCTION_COLD_START_SAMPLES,
    FUNCTION_COUNTED_STARTS,
)
from tidal.policies.interface import POOL_FUNCTION, Observation, PoolObservation, ReplicaStart
from tidal.policies.keepalive import KeepAlivePolicy
from tidal.sim.serverless.coldstart import HUAWEI_R1


def start(uid: str, seconds: float, pool: str = POOL_FUNCTION) -> ReplicaStart:
    return ReplicaStart(uid, pool, "", None, 1.0, 0.5, 0.0, seconds - 1.5)


def test_lead_is_the_median_of_the_starts_and_the_shared_default_before_any() -> None:
    assert cold_start_lead_s([]) == FUNCTION_COLD_START_S
    assert cold_start_lead_s([3.0, 1.0, 10.0]) == 3.0
    assert ColdStarts().learn([start("a", 2.0), start("b", 4.0)]).lead_s == pytest.approx(3.0)


def test_default_cold_start_is_the_simulators_default_model_median() -> None:
    """The documented source of the default: the median of the simulator's default cold-start
    model (HUAWEI_R1), which is what the simulator then learns."""
    rng = np.random.default_rng(0)
    median = float(np.median([sum(HUAWEI_R1.sample(rng)) for _ in range(20_000)]))
    assert FUNCTION_COLD_START_S == pytest.approx(median, abs=0.03)


def test_each_start_is_learnt_once_and_the_sample_is_bounded() -> None:
    starts = ColdStarts().learn([start("a", 2.0), start("a", 2.0), start("e", 9.0, pool="unified")])
    assert starts.samples_s == pytest.approx((2.0,)) and starts.counted == ("a",)
    assert starts.learn([start("a", 5.0)]) is starts
    many = starts.learn(start(f"p{i}", float(i)) for i in range(200))
    assert len(many.samples_s) == FUNCTION_COLD_START_SAMPLES
    assert len(many.counted) == FUNCTION_COUNTED_STARTS
    assert many.samples_s[-1] == pytest.approx(199.0)


def test_slo_floor_only_when_the_cold_start_exceeds_the_latency() -> None:
    assert slo_tail_percentile(2.0, 99.0, 1.0) is None
    assert slo_tail_percentile(2.0, 99.0, 2.0) is None
    assert slo_tail_percentile(0.5, 95.0, 1.0) == 95.0
    assert slo_tail_percentile(None, 99.0, 100.0) is None


def spec(latency: str = "2s", percentile: float = 99.0, **extra: object) -> ServerlessFunctionSpec:
    return ServerlessFunctionSpec.model_validate({
        "container": {"image": "fn:1"}, "slo": {"latency": latency, "percentile": percentile},
        **extra})


def test_policy_for_sets_the_lead_and_the_slo_floor_from_the_spec() -> None:
    assert policy_for(spec()).cold_start_s == FUNCTION_COLD_START_S
    assert policy_for(spec("2s"), cold_start_s=1.0).slo_tail_percentile is None
    slow = policy_for(spec("500ms", 97.5), cold_start_s=1.0)
    assert slow.cold_start_s == 1.0 and slow.slo_tail_percentile == 97.5


def test_persisted_state_round_trips_and_old_states_have_no_starts() -> None:
    decision, state = decide_function(
        lambda lead: policy_for(spec(), cold_start_s=lead),
        Observation(0.0, {POOL_FUNCTION: PoolObservation(ready_replicas=1, request_rate_rps=1.0)},
                    starts=(start("a", 3.0),)),
        None,
    )
    data = json.loads(json.dumps(function_state_to_dict(state)))
    restored = function_state_from_dict(data)
    assert restored is not None and restored.starts == state.starts
    assert restored.starts.lead_s == pytest.approx(3.0)
    data.pop("coldStarts")
    old = function_state_from_dict(data)
    assert old is not None and old.starts == ColdStarts()
    assert function_state_from_dict({"version": 0}) is None
    assert ColdStarts.from_dict({"samplesS": ["x"]}) == ColdStarts()


def test_a_learnt_start_is_worth_persisting() -> None:
    policy_of = lambda lead: policy_for(spec(), cold_start_s=lead)  # noqa: E731
    busy = {POOL_FUNCTION: PoolObservation(ready_replicas=1, request_rate_rps=1.0)}
    _, first = decide_function(policy_of, Observation(0.0, busy), None)
    _, same = decide_function(policy_of, Observation(15.0, busy), first)
    assert not function_worth_persisting(first, same)
    _, learnt = decide_function(policy_of, Observation(30.0, busy, starts=(start("a", 3.0),)), same)
    assert function_worth_persisting(same, learnt)


def _recorded_sequence(tick_s: float = 15.0) -> list[Observation]:
    """A function idle 2 minutes between invocations, one time in ten 20 minutes, observed every
    ``tick_s``; each invocation after the first finds a new instance whose start took 2-4 s."""
    out, t = [], 0.0
    for k, gap in enumerate(([120.0] * 9 + [1200.0]) * 4):
        pool = PoolObservation(ready_replicas=1, request_rate_rps=1.0, running_requests=1.0)
        starts = (start(f"pod-{k}", 2.0 + k % 3),) if k else ()
        out.append(Observation(t, {POOL_FUNCTION: pool}, starts=starts))
        for dt in range(int(tick_s), int(gap), int(tick_s)):
            idle = PoolObservation(ready_replicas=1, request_rate_rps=0.0, running_requests=0.0)
            out.append(Observation(t + dt, {POOL_FUNCTION: idle}))
        t += gap
    return out


def test_operator_and_simulator_shells_decide_alike_on_the_same_observations() -> None:
    """Parity: the operator's call (policy_for from the spec) and the simulator's autoscaler
    (LearningKeepAlive, as `tidal simulate-functions --slo 500ms --slo-percentile 99` builds it)
    give the same decisions and learn the same cold start from the same recorded observations,
    the SLO floor included (tests/operator/test_handlers_serverless.py runs the operator's real
    tick)."""
    fn_spec = spec("500ms", 99.0, concurrencyTarget=1, memory="16Gi")
    operator_policy = lambda lead: policy_for(fn_spec, cold_start_s=lead, activity_window_s=60.0)  # noqa: E731
    simulator = LearningKeepAlive(
        KeepAlivePolicy(concurrency_target=1.0, max_instances=100, memory_mb=16 * 1024.0,
                        activity_window_s=60.0),
        slo_latency_s=0.5, slo_percentile=99.0,
    )
    op_state: object = None
    sim_state: object = None
    leads, messages = set(), []
    for observation in _recorded_sequence():
        op_decision, op_state = decide_function(operator_policy, observation, op_state)
        sim_decision, sim_state = simulator.decide(observation, sim_state)
        assert op_decision == sim_decision
        assert isinstance(op_state, FunctionState) and isinstance(sim_state, FunctionState)
        assert op_state.starts == sim_state.starts
        assert op_state.keepalive == sim_state.keepalive
        leads.add(op_state.policy.cold_start_s if op_state.policy else None)
        messages += [r.message for r in op_decision.reasons]
    assert FUNCTION_COLD_START_S in leads and 3.0 in leads  # default first, then learnt median
    assert op_state.policy is not None and op_state.policy.slo_tail_percentile == 99.0
    assert any("spec.slo" in m for m in messages)  # the floor lengthened the learned window


def test_the_learnt_windows_follow_an_slo_floor_that_comes_into_force() -> None:
    """Below the SLO latency the cost-chosen window ends early; once the learnt cold start exceeds
    it the same histogram yields a window covering p99 of the idle times."""
    simulator = LearningKeepAlive(
        KeepAlivePolicy(concurrency_target=1.0, memory_mb=16 * 1024.0, activity_window_s=0.0,
                        few_samples_keep_alive_s=None),
        slo_latency_s=1.5, slo_percentile=99.0,
    )
    state: object = None
    # Idle times of 2 minutes mostly, 20 minutes sometimes: a large instance is not worth keeping
    # through the long ones.
    t, k = 0.0, 0
    for gap in ([120.0] * 9 + [1200.0]) * 4:
        for dt in (0.0, 15.0):
            active = dt == 0.0
            pool = PoolObservation(ready_replicas=1, request_rate_rps=1.0 if active else 0.0,
                                   running_requests=1.0 if active else 0.0)
            _, state = simulator.decide(Observation(t + dt, {POOL_FUNCTION: pool}), state)
        t += 15.0 + gap
        k += 1
    assert isinstance(state, FunctionState) and state.keepalive is not None
    before = simulator.policy_of(state.starts.lead_s).window(state.keepalive)
    assert state.policy is not None and state.policy.slo_tail_percentile is None
    pool = PoolObservation(ready_replicas=1, request_rate_rps=1.0, running_requests=1.0)
    _, slow = simulator.decide(
        Observation(t, {POOL_FUNCTION: pool}, starts=(start("x", 5.0), start("y", 6.0))), state)
    assert isinstance(slow, FunctionState) and slow.starts.lead_s > 1.5
    assert slow.policy is not None and slow.policy.slo_tail_percentile == 99.0
    after = slow.policy.window(slow.keepalive)
    assert after.end_s >= 1200.0 > before.end_s
