"""Dynamo-SLA-planner-style baseline: sizing from a given profile, corrections, forecasts, holds."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import json_roundtrip
from tidal.policies.baselines.catalog import PROFILED_BASELINE_FACTORIES
from tidal.policies.baselines.planner import DynamoStylePlanner
from tidal.policies.baselines.profile import DecodeProfile, PerformanceProfile, PrefillProfile
from tidal.policies.interface import (POOL_DECODE, POOL_PREFILL, POOL_UNIFIED, Observation,
                                      PoolObservation)

# Flat profile: TTFT 0.1 s and 1000 prompt tokens/s per prefill replica; decode ITL rises with
# concurrency, 500 tokens/s per replica at the highest load meeting 50 ms.
PROFILE = PerformanceProfile(
    PrefillProfile((100.0, 4000.0), (0.1, 0.1), (1000.0, 1000.0)),
    DecodeProfile((100.0, 4000.0), (1.0, 16.0, 64.0),
                  ((0.02, 0.05, 0.2), (0.02, 0.05, 0.2)),
                  ((50.0, 500.0, 1200.0), (50.0, 500.0, 1200.0))))


def disagg(t, rate=10.0, ttft=0.05, itl=0.05, running=32.0, ready=(1, 2), present=True):
    v = (lambda x: x if present else None)
    return Observation(t, {
        POOL_PREFILL: PoolObservation(ready_replicas=ready[0], request_rate_rps=v(rate),
                                      prompt_tokens_rps=v(rate * 500.0), output_tokens_rps=None,
                                      running_requests=v(2.0), waiting_requests=v(0.0)),
        POOL_DECODE: PoolObservation(ready_replicas=ready[1], request_rate_rps=v(rate),
                                     output_tokens_rps=v(rate * 200.0), ttft_s=v(ttft),
                                     tpot_s=v(itl), running_requests=v(running),
                                     waiting_requests=v(0.0))})


def planner(**kw) -> DynamoStylePlanner:
    kw.setdefault("min_replicas", 1)
    kw.setdefault("max_replicas", 20)
    return DynamoStylePlanner(PROFILE, **kw)


def drive(policy, observations):
    state, out = None, []
    for o in observations:
        decision, state = policy.decide(o, state)
        state = json_roundtrip(state)
        out.append(decision)
    return out, state


def test_sizes_pools_every_adjustment_interval_from_the_profile() -> None:
    decisions, _ = drive(planner(), [disagg(float(t)) for t in range(0, 181, 15)])
    assert decisions[0].desired_replicas == {POOL_PREFILL: 1, POOL_DECODE: 2}  # as deployed
    assert all(x.reasons[0].code == "planner-between-adjustments" for x in decisions[1:-1])
    # 10 req/s x 500 tokens x min(1, TTFT 0.05 / 0.1) / 1000 tokens/s = 2.5 -> 3 prefill;
    # 10 req/s x 200 tokens / 500 tokens/s (best ITL <= 50 ms at 16 in flight) = 4 decode
    assert decisions[-1].desired_replicas == {POOL_PREFILL: 3, POOL_DECODE: 4}
    assert decisions[-1].forecast_rps == pytest.approx(10.0)


def test_slow_decode_correction_tightens_the_itl_target() -> None:
    # observed ITL twice the profile's at this load: target 50 ms / 2 = 25 ms -> the profile
    # meets it only at concurrency ~1 (50 tokens/s) -> many more decode replicas
    decisions, _ = drive(planner(), [disagg(float(t), itl=0.1) for t in range(0, 181, 15)])
    assert decisions[-1].desired_replicas[POOL_DECODE] == 20


def test_unified_pool_adds_prefill_and_decode_needs() -> None:
    obs = [Observation(float(t), {POOL_UNIFIED: PoolObservation(
        ready_replicas=4, request_rate_rps=10.0, prompt_tokens_rps=5000.0,
        output_tokens_rps=2000.0, ttft_s=0.05, tpot_s=0.05, running_requests=64.0,
        waiting_requests=0.0)}) for t in range(0, 181, 15)]
    decisions, _ = drive(planner(), obs)
    assert decisions[-1].desired_replicas == {POOL_UNIFIED: 7}   # ceil(2.5 + 4)


def test_an_interval_without_the_rate_metric_keeps_the_sizes() -> None:
    decisions, _ = drive(planner(), [disagg(float(t)) for t in range(0, 181, 15)]
                         + [disagg(float(t), present=False) for t in range(195, 361, 15)])
    assert decisions[-1].desired_replicas == decisions[12].desired_replicas
    assert decisions[-1].reasons[0].code == "planner-no-metrics"


def test_profile_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="isl_tokens"):
        PrefillProfile((100.0, 50.0), (0.1, 0.1), (1.0, 1.0))
    with pytest.raises(ValueError, match="itl_s"):
        DecodeProfile((1.0,), (1.0, 2.0), ((0.1,),), ((1.0, 2.0),))
    with pytest.raises(ValueError, match="predictor"):
        DynamoStylePlanner(PROFILE, forecaster="crystal-ball")


def test_catalog_builds_it_with_a_profile() -> None:
    policy = PROFILED_BASELINE_FACTORIES["dynamo-planner"](1, 4, profile=PROFILE)
    assert policy.name == "dynamo-planner" and policy.tick_s == 180.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 200), st.floats(0.001, 10), st.floats(0.001, 1),
                          st.booleans()), min_size=1, max_size=30),
       st.integers(1, 3), st.integers(3, 30))
def test_within_bounds_json_state_and_no_mutation(steps, lo, hi) -> None:
    policy = planner(min_replicas=lo, max_replicas=hi)
    obs = [disagg(i * 60.0, rate, ttft, itl, present=present)
           for i, (rate, ttft, itl, present) in enumerate(steps)]
    state = None
    for o in obs:
        before = copy.deepcopy(state)
        decision, new_state = policy.decide(o, state)
        assert state == before
        assert all(lo <= n <= hi for n in decision.desired_replicas.values())
        state = json_roundtrip(new_state)
    a = [x.desired_replicas for x in drive(policy, obs)[0]]
    b = [x.desired_replicas for x in drive(policy, obs)[0]]
    assert a == b


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 200), st.booleans()), min_size=2, max_size=30),
       st.integers(1, 3), st.integers(3, 30))
def test_an_interval_without_metrics_never_scales_down(steps, lo, hi) -> None:
    """Dynamo skips the adjustment when the metrics query fails: the sizes stay as they were."""
    policy = planner(min_replicas=lo, max_replicas=hi)
    state, previous, data_since_adjust = None, None, False
    for i, (rate, present) in enumerate(steps):
        decision, state = policy.decide(disagg(i * 60.0, rate, present=present), state)
        state = json_roundtrip(state)
        data_since_adjust = data_since_adjust or present
        desired = decision.desired_replicas
        if previous is not None and not data_since_adjust:
            assert all(desired[p] >= previous[p] for p in desired), (previous, desired)
        if decision.reasons[0].code != "planner-between-adjustments":
            data_since_adjust = False      # the initial call and adjustments start a new interval
        previous = desired
