"""Parity: the operator's activator path and the serverless simulator feed the keep-alive policy
the same exact-idle-gap observations, and so decide the same, on one recorded arrival sequence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tidal.activator.demand import DemandReport, annotation_key, held_now, new_arrivals
from tidal.api.serverlessfunction import ServerlessFunctionSpec
from tidal.controllers.function_activity import TickActivity, arrivals_cursor_s, function_pool
from tidal.controllers.serverlessfunction import policy_for
from tidal.policies.guards import ObservationGuard
from tidal.policies.interface import POOL_FUNCTION, Decision, Observation, PoolObservation
from tidal.sim.serverless import FunctionSimConfig, FunctionSimulation, FunctionWorkload, fixed_cold_start
from tidal.sim.serverless.observation import FunctionPoolObservation

# A recorded arrival sequence: bursts after idle times of 1 to 25 minutes (each burst wakes the
# function from zero under a 60 s keep-alive), and a busy stretch in between.
BURSTS_S = [(30.0, 3), (400.0, 1), (1000.0, 5), (1090.0, 2), (1300.0, 1), (2800.0, 4), (2830.0, 1),
            (4300.0, 2)]
DURATION_S = 0.5
SPEC = ServerlessFunctionSpec.model_validate({
    "container": {"image": "fn:1"}, "memory": "512Mi", "scaleToZero": True, "keepAlive": "auto",
    "concurrencyTarget": 100, "slo": {"latency": "1500ms"}})


def recorded_arrivals() -> np.ndarray:
    times = [start + 0.7 * k for start, count in BURSTS_S for k in range(count)]
    return np.array(sorted(times))


@dataclass
class Recorder:
    """The simulator's policy, recording what it was shown and what it decided."""

    policy: Any
    seen: list[tuple[Observation, Decision]] = field(default_factory=list)

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        decision, state = self.policy.decide(observation, state)
        self.seen.append((observation, decision))
        return decision, state


def simulator_ticks() -> list[tuple[Observation, Decision]]:
    arrivals = recorded_arrivals()
    workload = FunctionWorkload(
        function_ids=("fn",), memory_mb=np.array([512.0]), arrival_s=arrivals,
        function_index=np.zeros(len(arrivals), dtype=int),
        duration_s=np.full(len(arrivals), DURATION_S), horizon_s=5000.0)
    recorder = Recorder(ObservationGuard(policy_for(SPEC, activity_window_s=60.0)))
    config = FunctionSimConfig(concurrency=100, cold_start=fixed_cold_start(2.0))
    FunctionSimulation(workload, recorder, config).run()
    return recorder.seen


def operator_observation(sim: Observation, annotations: dict[str, str], cursor: float | None,
                         idle_since_s: float | None) -> tuple[Observation, float | None]:
    """What the operator's tick builds: instance counts and running requests from the cluster and
    its metrics, the held arrivals from the activator's annotations (after the cursor)."""
    pool = sim.pools[POOL_FUNCTION]
    assert isinstance(pool, FunctionPoolObservation)
    arrivals = new_arrivals(annotations, cursor)
    cluster = PoolObservation(ready_replicas=pool.ready_replicas, starting_replicas=pool.starting_replicas,
                              request_rate_rps=pool.request_rate_rps, running_requests=pool.running_requests)
    activity = TickActivity(arrivals_s=arrivals, held=held_now(annotations, newer_than_s=cursor) and
                            int(pool.waiting_requests or 0), direct_arrivals=0)
    built = function_pool(cluster, activity, instances=pool.ready_replicas + pool.starting_replicas,
                          idle_since_s=idle_since_s, memory_mb=pool.memory_mb)
    return Observation(sim.now_s, {POOL_FUNCTION: built}), (arrivals[-1] if arrivals else cursor)


def test_operator_path_equals_simulator_path_on_recorded_arrivals() -> None:
    ticks = simulator_ticks()
    arrivals = recorded_arrivals().tolist()
    policy = ObservationGuard(policy_for(SPEC, activity_window_s=60.0))
    state: Any = None
    cursor: float | None = None
    previous_t, idle_since = -1.0, None
    exact_ticks = gap_ticks = 0
    for sim_observation, sim_decision in ticks:
        now = sim_observation.now_s
        # Two activator replicas share the tick's arrivals; each reports its own annotation.
        tick_arrivals = [t for t in arrivals if previous_t <= t < now]  # the simulator ticks first
        annotations = {
            annotation_key(f"activator-{r}"): DemandReport(
                tuple(tick_arrivals[r::2]), len(tick_arrivals[r::2]), now).to_json()
            for r in range(2) if tick_arrivals[r::2]}
        observation, cursor = operator_observation(sim_observation, annotations, cursor, idle_since)
        sim_pool = sim_observation.pools[POOL_FUNCTION]
        op_pool = observation.pools[POOL_FUNCTION]
        assert isinstance(op_pool, FunctionPoolObservation), "the exact-idle-gap branch"
        assert op_pool.arrivals_since_last_tick == sim_pool.arrivals_since_last_tick
        long_gaps = [g for g in sim_pool.idle_gaps_s if g >= 15.0]
        assert [g for g in op_pool.idle_gaps_s if g >= 15.0] == long_gaps
        decision, state = policy.decide(observation, state)
        assert decision.desired_replicas == sim_decision.desired_replicas, now
        assert decision.details.get("keep_alive_s") == sim_decision.details.get("keep_alive_s"), now
        exact_ticks += 1
        gap_ticks += bool(long_gaps)
        previous_t, idle_since = now, sim_pool.idle_since_s
    assert gap_ticks == len(BURSTS_S) - 1 and exact_ticks > 300  # the first burst ends no idle time
    assert state.histogram.total >= len(BURSTS_S) - 1  # the idle times were learned


def test_busy_instances_without_activator_data_keep_the_plain_observation() -> None:
    plain = PoolObservation(ready_replicas=2, request_rate_rps=3.0, running_requests=1.0)
    assert function_pool(plain, TickActivity(), instances=2, idle_since_s=None) is plain


def test_at_zero_instances_no_report_means_no_arrival() -> None:
    plain = PoolObservation(ready_replicas=0, request_rate_rps=0.0, running_requests=0.0)
    built = function_pool(plain, TickActivity(), instances=0, idle_since_s=100.0)
    assert isinstance(built, FunctionPoolObservation)
    assert built.arrivals_since_last_tick == 0 and built.idle_gaps_s == () and built.idle_since_s == 100.0
    woken = function_pool(plain, TickActivity((160.0, 161.0), held=2), instances=0, idle_since_s=100.0)
    assert isinstance(woken, FunctionPoolObservation)
    assert woken.idle_gaps_s == (60.0,) and woken.arrivals_since_last_tick == 2
    assert woken.waiting_requests == 2 and woken.peak_in_flight_since_last_tick == 2


def test_after_a_restart_old_arrivals_are_not_new() -> None:
    assert arrivals_cursor_s(500.0, last_seen_s=400.0, now_s=1000.0, interval_s=15.0) == 500.0
    assert arrivals_cursor_s(None, last_seen_s=400.0, now_s=1000.0, interval_s=15.0) == 400.0
    assert arrivals_cursor_s(None, last_seen_s=None, now_s=1000.0, interval_s=15.0) == 985.0
