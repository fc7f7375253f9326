"""The guards every policy's decision passes: partial pools never shrink, garbage counts are unknown."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.guards import REASON_HOLD_INVALID, REASON_HOLD_PARTIAL, ObservationGuard
from tidal.policies.interface import Observation, PoolObservation
from tidal.policies.keepalive import KeepAlivePolicy
from tidal.policies.utilization import UtilizationTarget

RULE = UtilizationTarget(min_replicas=1, max_replicas=20, scale_down_stabilization_s=0.0)


def _decide(obs: PoolObservation, policy=RULE) -> tuple[int, list[str]]:
    decision, _ = ObservationGuard(policy).decide(Observation(0.0, {"unified": obs}), None)
    return decision.desired_replicas["unified"], [r.code for r in decision.reasons]


@given(ready=st.integers(1, 12), unobserved=st.integers(1, 12), inflight=st.floats(0, 500))
def test_a_partially_observed_pool_never_shrinks_but_may_grow(ready: int, unobserved: int, inflight: float) -> None:
    obs = PoolObservation(ready_replicas=ready, running_requests=inflight, waiting_requests=0.0,
                          unobserved_replicas=min(unobserved, ready))
    want, codes = _decide(obs)
    assert want >= ready
    unguarded, _ = RULE.decide(Observation(0.0, {"unified": obs}), None)
    assert want == max(ready, unguarded.desired_replicas["unified"]), "scale-up on the reporting pods is kept"
    if unguarded.desired_replicas["unified"] < ready:
        assert codes == [REASON_HOLD_PARTIAL]


def test_a_fully_observed_pool_still_scales_down() -> None:
    want, codes = _decide(PoolObservation(ready_replicas=5, running_requests=16.0, waiting_requests=0.0))
    assert want == 1 and REASON_HOLD_PARTIAL not in codes


@given(st.sampled_from([-1000.0, -1e-9, math.nan, math.inf, -math.inf]))
def test_negative_or_non_finite_in_flight_holds(value: float) -> None:
    want, codes = _decide(PoolObservation(ready_replicas=5, running_requests=value, waiting_requests=0.0))
    assert want == 5
    assert REASON_HOLD_INVALID in codes and "hold-no-metrics" in codes


def test_a_function_with_garbage_rates_is_not_scaled_to_zero() -> None:
    """NaN or negative rates used to count as idle and scale a function 3 -> 0."""
    policy = KeepAlivePolicy()
    for rate in (math.nan, -5.0):
        obs = PoolObservation(ready_replicas=3, request_rate_rps=rate, running_requests=rate)
        decision, _ = ObservationGuard(policy).decide(Observation(10_000.0, {"function": obs}), None)
        assert decision.desired_replicas.get("function", 3) >= 3, (rate, decision)
