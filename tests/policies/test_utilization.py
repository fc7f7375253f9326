"""UtilizationTarget: HPA-shaped rule on in-flight requests per replica."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.interface import Observation, PoolObservation
from tidal.policies.utilization import UtilizationTarget


def obs(ready, running, waiting, starting=0):
    return Observation(0.0, {"unified": PoolObservation(ready_replicas=ready,
                                                        starting_replicas=starting,
                                                        running_requests=running,
                                                        waiting_requests=waiting)})


@given(st.integers(0, 40), st.floats(0, 5000), st.floats(0, 5000), st.floats(1, 64),
       st.integers(0, 5), st.integers(5, 50))
def test_within_bounds_and_deterministic(ready, running, waiting, target, lo, hi) -> None:
    policy = UtilizationTarget(target_inflight_per_replica=target, min_replicas=lo,
                               max_replicas=hi)
    d1, _ = policy.decide(obs(ready, running, waiting), None)
    d2, _ = policy.decide(obs(ready, running, waiting), None)
    assert d1 == d2
    n = d1.desired_replicas["unified"]
    assert lo <= n <= hi
    ideal = math.ceil((running + waiting) / target)
    if ready > 0 and abs((running + waiting) / ready / target - 1) <= policy.tolerance:
        assert n == min(max(ready, lo), hi)
    else:
        assert n == min(max(ideal, lo), hi)


@given(st.integers(0, 40), st.integers(0, 5))
def test_missing_metrics_hold_and_never_scale_to_zero(ready, starting) -> None:
    policy = UtilizationTarget(min_replicas=1, max_replicas=64)
    o = Observation(0.0, {"unified": PoolObservation(ready_replicas=ready,
                                                     starting_replicas=starting)})
    d, _ = policy.decide(o, None)
    assert d.desired_replicas["unified"] == max(ready + starting, 1)
    assert d.reasons[0].code == "hold-no-metrics"


def test_scales_up_under_load_and_down_when_idle() -> None:
    policy = UtilizationTarget(target_inflight_per_replica=10, min_replicas=1, max_replicas=20)
    up, _ = policy.decide(obs(2, 80, 20), None)
    down, _ = policy.decide(obs(8, 5, 0), None)
    assert up.desired_replicas["unified"] == 10
    assert down.desired_replicas["unified"] == 1


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        UtilizationTarget(target_inflight_per_replica=0)
    with pytest.raises(ValueError):
        UtilizationTarget(min_replicas=5, max_replicas=2)


def test_scale_down_waits_for_the_stabilization_window_then_follows() -> None:
    policy = UtilizationTarget(target_inflight_per_replica=10, min_replicas=1, max_replicas=20,
                               scale_down_stabilization_s=300)

    def tick(t, ready, inflight, state):
        o = Observation(t, {"unified": PoolObservation(ready_replicas=ready, running_requests=inflight,
                                                       waiting_requests=0)})
        d, state = policy.decide(o, state)
        return d.desired_replicas["unified"], d.reasons[0].code, state

    n, _, state = tick(0, 2, 100, None)
    assert n == 10  # scale-up is immediate
    n, code, state = tick(15, 10, 5, state)
    assert (n, code) == (10, "scale-down-stabilized")  # lull: held at the window's highest
    n, code, state = tick(290, 10, 5, state)
    assert n == 10
    n, code, state = tick(316, 10, 5, state)
    assert n == 1  # the burst's recommendation left the window
    assert all(t > 316 - 300 for t, _ in state["recommendations"]["unified"])


@given(st.lists(st.tuples(st.integers(0, 30), st.floats(0, 500)), min_size=1, max_size=30),
       st.floats(0, 600))
def test_stabilized_decisions_stay_in_bounds_and_never_below_fresh_advice(ticks, window) -> None:
    policy = UtilizationTarget(target_inflight_per_replica=8, min_replicas=1, max_replicas=20,
                               scale_down_stabilization_s=window)
    stateless = UtilizationTarget(target_inflight_per_replica=8, min_replicas=1, max_replicas=20,
                                  scale_down_stabilization_s=0)
    state = None
    for i, (ready, inflight) in enumerate(ticks):
        o = Observation(15.0 * i, {"unified": PoolObservation(ready_replicas=ready, running_requests=inflight,
                                                              waiting_requests=0)})
        d, state = policy.decide(o, state)
        fresh, _ = stateless.decide(o, None)
        n, f = d.desired_replicas["unified"], fresh.desired_replicas["unified"]
        assert 1 <= n <= 20
        assert n >= f  # stabilisation only ever delays a scale-down
        assert n <= max(f, ready)  # and never scales up beyond fresh advice
