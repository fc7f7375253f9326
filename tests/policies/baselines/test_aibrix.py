"""AIBrix KPA and APA baselines: AIBrix's own algorithm unit-test cases, the controller flow,
and the two places where AIBrix's code differs from its documentation (pinned, not fixed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import (json_roundtrip, observations_from, pool_steps, run,
                                              unified)
from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.aibrix import (AIBrixAutoscaler, apa_recommendation,
                                             kpa_should_panic, kpa_target_replicas,
                                             stabilize_recommendation)

TICK = d.AIBRIX_RESYNC_S


def aibrix(strategy: str, **kw) -> AIBrixAutoscaler:
    kw.setdefault("min_replicas", 1)
    kw.setdefault("max_replicas", 20)
    return AIBrixAutoscaler(strategy=strategy, **kw)


def test_defaults_are_aibrixs() -> None:
    p = AIBrixAutoscaler()
    assert (p.stable_window_s, p.panic_window_s, p.panic_threshold) == (180.0, 60.0, 2.0)
    assert (p.up_fluctuation_tolerance, p.down_fluctuation_tolerance) == (0.1, 0.1)
    assert (p.max_scale_up_rate, p.max_scale_down_rate) == (2.0, 2.0)
    assert (p.scale_up_cooldown_s, p.scale_down_cooldown_s) == (0.0, 300.0)
    assert p.target_value == 0.5 and p.tick_s == 10.0


# --- algorithm/apa_test.go cases (target 30, tolerances 0.1) ------------------------------------

@pytest.mark.parametrize("current, per_pod, up_rate, expected", [
    (2, 45.0, 2.0, 3),    # basic_scale_up
    (2, 35.0, 2.0, 3),    # scale_up_upto_ceiling
    (2, 90.0, 2.0, 4),    # scale_up_upto_max_scale_up
    (2, 90.0, 2.5, 5),    # scale_up_upto_max_scale_up_ceiling
    (6, 20.0, 2.0, 4),    # basic_scale_down
    (6, 18.0, 2.0, 4),    # scale_down_upto_ceiling
    (6, 10.0, 2.0, 3),    # scale_down_upto_max_scale_down
    (4, 31.0, 2.0, 4),    # within tolerance
])
def test_apa_algorithm_cases(current, per_pod, up_rate, expected) -> None:
    assert apa_recommendation(current, per_pod, 30.0, 0.1, 0.1, up_rate, 2.0) == expected


# --- algorithm/kpa_test.go cases (target 10, no tolerance in the mock context) ------------------

@pytest.mark.parametrize("current, stable, panic, in_panic, max_panic, up_rate, act, expected", [
    (2, 20.0, 20.0, False, 0, 2.0, 1, 2),    # stable_mode_basic_scaling
    (2, 30.0, 40.0, True, 2, 2.0, 1, 4),     # panic_mode_scaling_up
    (5, 20.0, 20.0, True, 5, 2.0, 1, 5),     # panic_mode_no_scale_down
    (1, 0.0, 0.0, False, 0, 2.0, 1, 0),      # scale_to_zero
    (0, 15.0, 15.0, False, 0, 2.0, 3, 3),    # activation_scale_from_zero
    (2, 100.0, 100.0, False, 0, 1.5, 1, 3),  # max_scale_up_rate_limit
    (4, 5.0, 5.0, False, 0, 2.0, 1, 2),      # max_scale_down_rate_limit
])
def test_kpa_algorithm_cases(current, stable, panic, in_panic, max_panic, up_rate, act,
                             expected) -> None:
    assert kpa_target_replicas(current, stable, panic, 10.0, 2.0, in_panic, max_panic, 0.0, 0.0,
                               up_rate, 2.0, activation_scale=act) == expected


def test_kpa_panics_on_a_short_window_surge_or_no_stable_load() -> None:
    assert kpa_should_panic(0.0, 0.0, 2.0)
    assert kpa_should_panic(0.2, 0.41, 2.0)
    assert not kpa_should_panic(0.2, 0.4, 2.0)


# --- controller flow ----------------------------------------------------------------------------

def test_apa_scales_on_the_stable_window_average_of_kv_usage() -> None:
    counts, codes, _ = run(aibrix("apa"), [unified(0, 2, kv=0.9)])
    assert counts == [4]                        # ratio 1.8 -> ceil(3.6), capped at 2 x 2
    counts, _, _ = run(aibrix("apa"), [unified(0, 4, kv=0.5)])
    assert counts == [4]                        # on target


def test_missing_kv_usage_holds_and_calls_between_reconciles_keep_the_result() -> None:
    counts, codes, _ = run(aibrix("apa"), [unified(0, 3, kv=None), unified(5, 3, kv=0.9),
                                           unified(10, 3, kv=0.9)])
    assert counts == [3, 3, 6]
    assert codes[:2] == ["aibrix-no-metrics", "aibrix-between-syncs"]


def test_zero_replicas_are_brought_to_min_replicas() -> None:
    counts, codes, _ = run(aibrix("kpa", min_replicas=2), [unified(0, 0)])
    assert (counts, codes) == ([2], ["aibrix-bounds"])


def test_pinned_aibrix_kpa_divides_the_per_pod_average_by_the_per_pod_target() -> None:
    # AIBrix v0.7 records the mean over pods, and its KPA computes ceil(mean / target):
    # 8 pods all at 80 % KV usage (target 50 %) -> ceil(1.6) = 2, limited to floor(8 / 2) = 4.
    # The documentation describes Knative's KPA, which would ask for ceil(8 x 1.6) = 13.
    counts, codes, _ = run(aibrix("kpa"), [unified(0, 8, kv=0.8)])
    assert counts == [4]
    assert codes == ["aibrix-kpa-stable"]


def test_pinned_aibrix_scale_down_cooldown_keeps_the_lowest_recommendation() -> None:
    # stabilizeRecommendation selects the minimum of the scale-down window; the documentation
    # (and the HPA it cites) keeps the highest, delaying scale-down instead of hastening it.
    history = [[0.0, 1], [10.0, 8]]
    n, history = stabilize_recommendation(20.0, 8, 6, history, 0.0, 300.0)
    assert n == 1
    # scale-up uses its own (0 s) window: the recommendation itself
    n, _ = stabilize_recommendation(30.0, 1, 5, history, 0.0, 300.0)
    assert n == 5


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="strategy"):
        AIBrixAutoscaler(strategy="hpa")
    with pytest.raises(ValueError, match="panic_window_s"):
        AIBrixAutoscaler(panic_window_s=300.0)
    with pytest.raises(ValueError, match="target_value"):
        AIBrixAutoscaler(target_value=0.0)


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(pool_steps, st.sampled_from(["kpa", "apa"]), st.integers(0, 3), st.integers(3, 40),
       st.floats(0.05, 1.0))
def test_within_bounds_deterministic_and_json_state(steps, strategy, lo, hi, target) -> None:
    policy = aibrix(strategy, min_replicas=lo, max_replicas=hi, target_value=target)
    observations = observations_from(steps, TICK)
    a, _, state_a = run(policy, observations, via_json=True)
    b, _, state_b = run(policy, observations, via_json=False)
    assert a == b
    assert json_roundtrip(state_b) == state_a
    assert all(lo <= n <= hi for n in a)


@settings(max_examples=50, deadline=None)
@given(pool_steps, st.sampled_from(["kpa", "apa"]), st.integers(0, 3), st.integers(3, 40))
def test_missing_metrics_never_scale_down(steps, strategy, lo, hi) -> None:
    policy, state = aibrix(strategy, min_replicas=lo, max_replicas=hi), None
    for o in observations_from(steps, TICK):
        decision, state = policy.decide(o, state)
        pool = o.pools["unified"]
        if pool.kv_cache_usage_ratio is None and lo <= pool.current_replicas <= hi:
            assert decision.desired_replicas["unified"] == pool.current_replicas
