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
