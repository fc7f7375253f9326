"""Kubernetes HPA baseline: the HPA documentation's worked examples, the replica calculator's
missing/unready rules, behaviours, sync period, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import (json_roundtrip, observations_from, pool_steps, run,
                                              unified)
from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.hpa import (Behavior, KubernetesHPA, PodGroups, ScalingPolicy,
                                          ScalingRules, external_per_pod_replicas,
                                          plain_metric_replicas)

TICK = d.HPA_SYNC_PERIOD_S


def hpa(**kw) -> KubernetesHPA:
    kw.setdefault("min_replicas", 1)
    kw.setdefault("max_replicas", 100)
    kw.setdefault("target_per_pod", 100.0)
    return KubernetesHPA(**kw)


# --- "Algorithm details" (HPA concept page) -----------------------------------------------------

def test_docs_example_200m_over_100m_doubles_the_replicas() -> None:
    # current metric 200m, desired 100m: ratio 2.0 -> the number of replicas is doubled
    counts, codes, _ = run(hpa(), [unified(0, 3, running=3 * 200.0)])
    assert counts == [6]
    assert codes == ["hpa-recommendation"]


def test_docs_example_50m_over_100m_halves_the_replicas() -> None:
    # a fresh HPA has no older recommendation in its stabilisation window
    counts, _, _ = run(hpa(), [unified(0, 6, running=6 * 50.0)])
    assert counts == [3]


@pytest.mark.parametrize("per_pod", [91.0, 100.0, 110.0])
def test_docs_tolerance_skips_scaling_within_ten_percent(per_pod: float) -> None:
    counts, _, _ = run(hpa(), [unified(0, 4, running=4 * per_pod)])
    assert counts == [4]


def test_ratio_just_outside_tolerance_scales() -> None:
    counts, _, _ = run(hpa(), [unified(0, 10, running=10 * 111.0)])
    assert counts == [12]  # ceil(1.11 * 10)


def test_replica_calculator_custom_metric_example() -> None:
    # three pods at 20, 10 and 30 (mean 20) against a target of 15 -> ceil(4/3 * 3) = 4
    pods = PodGroups(ready=3, metric_sum=60.0)
    assert plain_metric_replicas(3, 15.0, 0.1, pods) == 4


# --- missing and not-ready pods (replica_calculator.go calcPlainMetricReplicas) ------------------

def test_missing_pods_count_at_target_on_scale_down() -> None:
    # 2 ready pods at 5 (target 10, ratio 0.5) and 2 pods without metrics:
    # missing pods are assumed at 100 % of the target -> (10 + 20) / 40 = 0.75 -> ceil(3)
    assert plain_metric_replicas(4, 10.0, 0.1, PodGroups(2, 10.0, missing=2)) == 3
    assert plain_metric_replicas(4, 10.0, 0.1, PodGroups(2, 10.0, missing=0)) == 1


def test_missing_pods_count_at_zero_on_scale_up_and_cannot_reverse_direction() -> None:
    # ratio 3 on 2 ready; 2 missing at 0 -> 60 / 40 = 1.5 -> ceil(1.5 * 4) = 6
    assert plain_metric_replicas(4, 10.0, 0.1, PodGroups(2, 60.0, missing=2)) == 6
    # ratio 1.5 on 2 ready; with 2 missing at 0 the ratio drops to 0.75: direction would flip
    assert plain_metric_replicas(4, 10.0, 0.1, PodGroups(2, 30.0, missing=2)) == 4


def test_unready_pods_count_at_zero_only_on_scale_up() -> None:
    # scale-up: 1 ready at 30 (target 10), 2 pending at 0 -> ratio 1.0: within tolerance
    assert plain_metric_replicas(3, 10.0, 0.1, PodGroups(1, 30.0, unready=2)) == 3
    # scale-down: pending pods are simply left out -> ceil(0.5 * 2) = 1
    assert plain_metric_replicas(5, 10.0, 0.1, PodGroups(2, 10.0, unready=3)) == 1


def test_no_ready_pod_with_metrics_is_an_error() -> None:
    assert plain_metric_replicas(3, 10.0, 0.1, PodGroups(0, 0.0, missing=3)) is None


def test_pool_starting_pods_are_missing_and_pending_pods_unready() -> None:
    # through decide(): 2 ready at 5 in flight each, 2 starting -> 3 (not 1)
    counts, _, _ = run(hpa(target_per_pod=10.0), [unified(0, 2, running=10.0, starting=2)])
    assert counts == [3]


def test_external_average_value_metric_has_no_pod_grouping() -> None:
    assert external_per_pod_replicas(4, 100.0, 10.0, 0.1) == 10
    assert external_per_pod_replicas(4, 42.0, 10.0, 0.1) == 4  # ratio 1.05
    assert external_per_pod_replicas(4, 0.0, 10.0, 0.1) == 0


# --- behaviours (HPA concept page, "Configurable scaling behavior") -----------------------------

def test_docs_default_scale_up_is_4_pods_or_100_percent_per_15s() -> None:
    # demand for 40 pods from 1: +4 (Pods beats 100 %), then 5 -> 10 (100 %), 10 -> 20, 20 -> 40
    ready, counts = 1, []
    policy, state = hpa(target_per_pod=10.0), None
    for i in range(5):
        decision, state = policy.decide(unified(i * TICK, ready, running=400.0), state)
        ready = decision.desired_replicas["unified"]
        counts.append(ready)
    assert counts == [5, 10, 20, 40, 40]


def test_docs_scale_down_policies_example_80_to_10() -> None:
    # scaleDown: Pods 4/60s and Percent 10/60s (selectPolicy Max by default): from 80 to 10,
    # 8 are removed first, then 10 % of 72 = 7.2 rounded up to 8; below 40 replicas the Pods
    # policy applies and 4 are removed at a time.
    rules = ScalingRules(stabilization_window_s=d.HPA_DOWNSCALE_STABILIZATION_S,
                         policies=(ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60)))
    policy = hpa(target_per_pod=1.0, behavior=Behavior(scale_down=rules))
    state, ready, counts = None, 80, []
    for i in range(16):
        decision, state = policy.decide(unified(i * 60.0, ready, running=10.0), state)
        ready = decision.desired_replicas["unified"]
        counts.append(ready)
    assert counts[:3] == [72, 64, 57]
    below_40 = [a - b for a, b in zip(counts, counts[1:]) if 40 >= a > 10]
    assert below_40 and all(step == 4 for step in below_40[:-1])
    assert counts[-1] == 10


def test_docs_select_policy_min_removes_at_most_5_pods_per_minute() -> None:
    rules = ScalingRules(stabilization_window_s=300,
                         policies=(ScalingPolicy("Percent", 10, 60), ScalingPolicy("Pods", 5, 60)),
                         select_policy="Min")
    policy = hpa(target_per_pod=1.0, behavior=Behavior(scale_down=rules))
    counts, _, _ = run(policy, [unified(0, 100, running=10.0)])
    assert counts == [95]
    counts, _, _ = run(policy, [unified(0, 40, running=10.0)])
    assert counts == [36]  # 10 % of 40 is the smaller change


def test_docs_disabled_scale_down_never_removes_pods() -> None:
    rules = ScalingRules(stabilization_window_s=300, policies=(), select_policy="Disabled")
    policy = hpa(target_per_pod=10.0, behavior=Behavior(scale_down=rules))
    counts, _, _ = run(policy, [unified(i * TICK, 8, running=0.0) for i in range(40)])
    assert set(counts) == {8}


def test_docs_scale_down_stabilization_uses_the_highest_recommendation_of_5_minutes() -> None:
    policy = hpa(target_per_pod=10.0)
    steps = [unified(0, 2, running=100.0)]                              # -> 6 (4-pod policy)
    steps += [unified(t, 6, running=100.0) for t in (15.0, 30.0)]       # -> 10
    steps += [unified(t, 10, running=20.0) for t in (45.0, 60.0, 325.0)]  # lull: held at 10
    steps += [unified(340.0, 10, running=20.0)]  # the last 10 (t=30) is over 300 s old
    counts, codes, _ = run(policy, steps)
    assert counts == [6, 10, 10, 10, 10, 10, 2]
    assert codes[3] == "hpa-scale-down-stabilized"


def test_calls_between_syncs_keep_the_previous_result() -> None:
    policy = hpa(target_per_pod=10.0)
    counts, codes, _ = run(policy, [unified(0, 2, running=40.0), unified(5, 4, running=400.0),
                                    unified(14.9, 4, running=400.0), unified(15, 4, running=400.0)])
    assert counts == [4, 4, 4, 8]
    assert codes[1:3] == ["hpa-between-syncs", "hpa-between-syncs"]


def test_zero_current_replicas_start_at_min_replicas() -> None:
    counts, codes, _ = run(hpa(min_replicas=2), [unified(0, 0, running=0.0)])
    assert counts == [2]
    assert codes == ["hpa-bounds"]


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="min_replicas"):
        KubernetesHPA(min_replicas=0, max_replicas=4)
    with pytest.raises(ValueError, match="target_per_pod"):
        KubernetesHPA(target_per_pod=0)
    with pytest.raises(ValueError, match="select_policy"):
        ScalingRules(stabilization_window_s=0, policies=(), select_policy="max")
    with pytest.raises(ValueError, match="period_s"):
        ScalingPolicy("Pods", 4, 3600)


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(pool_steps, st.integers(1, 4), st.integers(4, 40), st.floats(1, 64))
def test_within_bounds_deterministic_and_json_state(steps, lo, hi, target) -> None:
    policy = hpa(min_replicas=lo, max_replicas=hi, target_per_pod=target)
    observations = observations_from(steps, TICK)
    a, _, state_a = run(policy, observations, via_json=True)
    b, _, state_b = run(policy, observations, via_json=False)
    assert a == b                                   # JSON round-trip changes nothing
    assert json_roundtrip(state_b) == state_a
    assert all(lo <= n <= hi for n in a)


@settings(max_examples=60, deadline=None)
@given(pool_steps, st.integers(1, 4), st.integers(4, 40))
def test_missing_metrics_never_scale_down(steps, lo, hi) -> None:
    policy, state = hpa(min_replicas=lo, max_replicas=hi, target_per_pod=16.0), None
    for o in observations_from(steps, TICK):
        decision, state = policy.decide(o, state)
        pool = o.pools["unified"]
        if pool.running_requests is None and lo <= pool.current_replicas <= hi:
            assert decision.desired_replicas["unified"] == pool.current_replicas
