"""KEDA baseline: activation, cooldown to zero, activation threshold, fallback, HPA in between."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import (json_roundtrip, observations_from, pool_steps, run,
                                              unified)
from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.keda import Fallback, KedaPrometheus

TICK = d.HPA_SYNC_PERIOD_S


def keda(**kw) -> KedaPrometheus:
    kw.setdefault("min_replicas", 0)
    kw.setdefault("max_replicas", 20)
    kw.setdefault("threshold", 10.0)
    return KedaPrometheus(**kw)


def drive(policy, values, state=None, start_s=0.0, ready=None):
    """One tick per value (in flight; None = query error); pods follow the desired count."""
    counts, codes, current = {}, {}, ready or 0
    for i, v in enumerate(values):
        t = start_s + i * TICK
        o = unified(t, current, running=v, waiting=0.0 if v is not None else None)
        decision, state = policy.decide(o, state)
        state = json_roundtrip(state)
        current = decision.desired_replicas["unified"]
        counts[t], codes[t] = current, decision.reasons[0].code
    return counts, codes, state


def test_defaults_are_kedas() -> None:
    p = KedaPrometheus()
    assert (p.polling_interval_s, p.cooldown_period_s, p.min_replicas, p.max_replicas) == (
        30.0, 300.0, 0, 100)
    assert p.activation_threshold == 0.0 and p.fallback is None


def test_activation_waits_for_the_polling_loop_then_the_hpa_scales() -> None:
    counts, codes, _ = drive(keda(), [0.0, 0.0, 0.0, 50.0, 50.0, 50.0])
    assert counts[45.0] == 0                       # load at 45: KEDA polls at 30, 60, ...
    assert (counts[60.0], codes[60.0]) == (1, "keda-activate")
    assert counts[75.0] == 5                       # HPA: 50 / threshold 10, +4 pods allowed


def test_activation_threshold_is_strict() -> None:
    counts, _, _ = drive(keda(activation_threshold=5.0), [5.0] * 4)
    assert set(counts.values()) == {0}
    counts, _, _ = drive(keda(activation_threshold=5.0), [5.5] * 2)
    assert counts[0.0] == 1


def test_cooldown_period_before_scale_to_zero() -> None:
    counts, codes, _ = drive(keda(), [50.0] * 15 + [0.0] * 30)
    # last active at the poll at 210; cooldown 300 s -> the first poll after 510 scales to 0
    assert counts[510.0] == 1 and counts[525.0] == 1
    assert (counts[540.0], codes[540.0]) == (0, "keda-scale-to-zero")


def test_min_replica_count_one_never_scales_to_zero() -> None:
    counts, _, _ = drive(keda(min_replicas=1), [50.0] * 5 + [0.0] * 60)
    assert counts[0.0] == 1 and min(counts.values()) == 1


def test_query_errors_without_fallback_hold_and_never_scale_to_zero() -> None:
    counts, codes, _ = drive(keda(), [50.0] * 6 + [None] * 60)
    assert set(list(counts.values())[6:]) == {counts[75.0]}
    assert codes[90.0 + 15 * 40] == "hpa-no-metrics"
    assert min(counts.values()) > 0


def test_fallback_replaces_the_metric_after_the_failure_threshold() -> None:
    policy = keda(fallback=Fallback(failure_threshold=3, replicas=6))
    counts, codes, state = drive(policy, [20.0, 20.0, None, None, None, None, None])
    assert counts[15.0] == 2
    assert [counts[t] for t in (30.0, 45.0, 60.0)] == [2, 2, 2]   # failures 1..3: hold
    assert counts[75.0] == 6                                         # 4th failure: fallback
    assert state["pools"]["unified"]["failures"] == 5
    # a successful query resets the count
    _, _, state = drive(policy, [20.0], state, start_s=105.0, ready=6)
    assert state["pools"]["unified"]["failures"] == 0


def test_fallback_scale_down_is_stabilised_by_the_hpa() -> None:
    policy = keda(fallback=Fallback(failure_threshold=0, replicas=2))
    counts, _, _ = drive(policy, [100.0] * 3 + [None] * 30)
    assert counts[30.0] == 10
    assert counts[60.0] == 10          # fallback asks 2, the 300-s window still holds 10
    assert counts[30.0 + 15 * 20] == 2


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="threshold"):
        KedaPrometheus(threshold=0)
    with pytest.raises(ValueError, match="behavior"):
        Fallback(failure_threshold=1, replicas=2, behavior="sometimes")


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(pool_steps, st.integers(0, 3), st.integers(3, 40), st.floats(1, 64))
def test_within_bounds_deterministic_and_json_state(steps, lo, hi, threshold) -> None:
    policy = keda(min_replicas=lo, max_replicas=hi, threshold=threshold)
    observations = observations_from(steps, TICK)
    a, _, state_a = run(policy, observations, via_json=True)
    b, _, state_b = run(policy, observations, via_json=False)
    assert a == b
    assert json_roundtrip(state_b) == state_a
    assert all(lo <= n <= hi for n in a)


@settings(max_examples=50, deadline=None)
@given(pool_steps, st.integers(0, 3), st.integers(3, 40))
def test_query_errors_never_scale_down_without_fallback(steps, lo, hi) -> None:
    policy, state = keda(min_replicas=lo, max_replicas=hi), None
    for o in observations_from(steps, TICK):
        decision, state = policy.decide(o, state)
        pool = o.pools["unified"]
        if pool.running_requests is None and lo <= pool.current_replicas <= hi:
            assert decision.desired_replicas["unified"] >= pool.current_replicas


def test_first_decision_with_min_replicas_starts_at_min_even_without_metrics() -> None:
    counts, codes, _ = run(keda(min_replicas=2), [unified(0.0, 0, running=None, waiting=None)])
    assert (counts, codes) == ([2], ["keda-min-replicas"])
