"""BASELINE_FACTORIES: every name builds a working autoscaler with the bounds it is given."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import (json_roundtrip, observations_from, pool_steps,
                                              unified)
from tidal.policies.baselines.catalog import BASELINE_FACTORIES
from tidal.policies.interface import POOL_DECODE, POOL_PREFILL, Observation, PoolObservation


def test_the_catalog_names_the_five_rivals() -> None:
    assert set(BASELINE_FACTORIES) == {"hpa", "keda", "knative-kpa", "aibrix-kpa", "aibrix-apa"}


@pytest.mark.parametrize("name", sorted(BASELINE_FACTORIES))
def test_factories_build_named_bounded_autoscalers(name: str) -> None:
    policy = BASELINE_FACTORIES[name](1, 6)
    assert policy.name == name and policy.tick_s > 0
    state = None
    for t in range(0, 300, 15):
        decision, state = policy.decide(unified(float(t), 2, running=500.0, kv=1.0), state)
        state = json_roundtrip(state)
        assert 1 <= decision.desired_replicas["unified"] <= 6


@pytest.mark.parametrize("name", sorted(BASELINE_FACTORIES))
def test_disaggregated_pools_are_scaled_independently(name: str) -> None:
    policy = BASELINE_FACTORIES[name](1, 8)
    pools = {POOL_PREFILL: PoolObservation(ready_replicas=1, running_requests=400.0,
                                           waiting_requests=100.0, kv_cache_usage_ratio=0.95),
             POOL_DECODE: PoolObservation(ready_replicas=4, running_requests=4.0,
                                          waiting_requests=0.0, kv_cache_usage_ratio=0.5)}
    decision, _ = policy.decide(Observation(0.0, pools), None)
    assert set(decision.desired_replicas) == {POOL_PREFILL, POOL_DECODE}
    assert decision.desired_replicas[POOL_PREFILL] > 1
    assert {r.pool for r in decision.reasons} == {POOL_PREFILL, POOL_DECODE}


def test_unknown_parameters_are_rejected_by_name() -> None:
    with pytest.raises(TypeError, match="target_per_pood"):
        BASELINE_FACTORIES["hpa"](1, 4, target_per_pood=3)


@settings(max_examples=40, deadline=None)
@given(pool_steps, st.sampled_from(sorted(BASELINE_FACTORIES)))
def test_decide_never_mutates_its_arguments(steps, name) -> None:
    policy, state = BASELINE_FACTORIES[name](0 if name != "hpa" else 1, 12), None
    for o in observations_from(steps, 2.0):
        before = copy.deepcopy(state)
        _, new_state = policy.decide(o, state)
        assert state == before
        state = new_state
