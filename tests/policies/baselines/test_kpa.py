"""Knative KPA baseline: window averages, panic entry and exit, rate limits, scale to zero."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import (json_roundtrip, observations_from, pool_steps, run,
                                              unified)
from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.kpa import KnativeKPA
from tidal.policies.baselines.windows import knative_average, knative_is_empty, knative_record

TICK = d.KNATIVE_TICK_S


def kpa(**kw) -> KnativeKPA:
    kw.setdefault("min_replicas", 0)
    kw.setdefault("max_replicas", 100)
    kw.setdefault("target_concurrency_per_pod", 10.0)  # x 70 % -> 7 per pod
    return KnativeKPA(**kw)


def drive(policy, phases, state=None, start_s=0.0):
    """phases: (seconds, concurrency or None, ready or 'follow'); ready 'follow' = last count."""
    t, counts, codes, ready = start_s, [], [], 0
    for seconds, conc, ready_spec in phases:
        end = t + seconds
        while t < end - 1e-9:
            if ready_spec != "follow":
                ready = ready_spec
            o = unified(t, ready, running=conc, waiting=0.0 if conc is not None else None)
            decision, state = policy.decide(o, state)
            state = json_roundtrip(state)
            n = decision.desired_replicas["unified"]
            counts.append((t, n))
            codes.append((t, decision.reasons[0].code))
            if ready_spec == "follow":
                ready = n
            t += TICK
    return dict(counts), dict(codes), state


def test_defaults_are_knatives() -> None:
    p = KnativeKPA()
    assert p.target_value == pytest.approx(70.0)       # 100 x 70 %
    assert p.panic_window_s == 6.0                      # 10 % of 60 s
    assert p.tick_s == 2.0


# --- TimedFloat64Buckets -------------------------------------------------------------------------

def test_window_average_is_over_the_partial_window_since_the_first_write() -> None:
    s = None
    for t in range(6):                                  # first write 5 s ago, window 60 s
        s = knative_record(s, float(t), 10.0, 60.0, 1.0)
    assert knative_average(s, 5.0, 60.0, 1.0) == 10.0


def test_window_average_counts_gaps_as_zero_and_stops_at_the_last_write() -> None:
    s = None
    for t in (0.0, 1.0, 3.0):                            # bucket 2 missing -> 0
        s = knative_record(s, t, 8.0, 60.0, 1.0)
    assert knative_average(s, 3.0, 60.0, 1.0) == 6.0     # 24 over 4 buckets
    assert knative_average(s, 13.0, 60.0, 1.0) == 6.0    # no data since: average up to it
    assert not knative_is_empty(s, 63.0, 60.0, 1.0)
    assert knative_is_empty(s, 63.5 + 1, 60.0, 1.0)


def test_same_bucket_values_add_up() -> None:
    s = knative_record(None, 0.2, 3.0, 6.0, 1.0)
    s = knative_record(s, 0.7, 4.0, 6.0, 1.0)
    assert knative_average(s, 0.9, 6.0, 1.0) == 7.0


# --- decider ------------------------------------------------------------------------------------

def test_panic_entry_when_the_panic_window_needs_twice_the_ready_pods() -> None:
    counts, codes, _ = drive(kpa(), [(40, 5.0, 1), (6, 100.0, 1)])
    assert counts[38.0] == 1 and codes[38.0] == "kpa-stable"
    # at t=40 the 6-s panic window holds four buckets at 5 and two at 100: 36.67 / 7 -> 6
    # pods for 1 ready: 6 >= 200 % -> panic, scaling on the panic window
    assert (counts[40.0], codes[40.0]) == (6, "kpa-panic")
    assert counts[44.0] == 15                            # ceil(100 / 7)


def test_no_scale_down_while_panicking_and_exit_after_a_stable_window() -> None:
    counts, codes, _ = drive(kpa(), [(40, 5.0, 1), (6, 100.0, 1), (62, 5.0, 15)])
    # last over-threshold tick at 44: panic holds 15 pods until 44 + 60 < now
    assert all(counts[t] == 15 and codes[t] == "kpa-panic" for t in range(46, 105, 2))
    # out of panic at 106: the stable window (all at 5) wants 1, max-scale-down-rate 2 allows 7
    assert (counts[106.0], codes[106.0]) == (7, "kpa-stable")


def test_scale_up_rate_keeps_at_least_one_more_pod() -> None:
    # autoscaler.go's comment: MSUR=1.1, OCC=3, RPC=2, TV=1 -> 3 pods, not floor(2.2)
    policy = kpa(max_scale_up_rate=1.1, target_concurrency_per_pod=1.0, target_utilization=1.0)
    counts, _, _ = drive(policy, [(2, 3.0, 2)])
    assert counts[0.0] == 3


def test_a_restarted_decider_starts_in_panic_then_halves_per_tick_then_scales_to_zero() -> None:
    counts, codes, _ = drive(kpa(), [(64, 0.0, 10), (60, 0.0, "follow")])
    assert all(counts[t] == 10 for t in range(0, 61, 2))         # panic from the start: held
    assert [counts[t] for t in (64.0, 66.0, 68.0)] == [5, 2, 1]   # floor(ready / 2) per tick
    # 70: wants 0; active for >= the stable window -> marked inactive, one pod kept
    assert counts[70.0] == 1 and codes[70.0] == "kpa-scale-to-zero-wait"
    # inactive for the 30-s grace period, then 0
    assert all(counts[t] == 1 for t in range(70, 100, 2))
    assert (counts[100.0], codes[100.0]) == (0, "kpa-scale-to-zero")


def test_a_new_revision_starts_at_initial_scale_and_activates_from_zero() -> None:
    policy = kpa()
    counts, _, state = drive(policy, [(2, 0.0, 0)])
    assert counts[0.0] == 1                                      # initial-scale 1
    # from zero: 3 requests queued at the activator -> 1 pod
    counts, _, _ = run(policy, [unified(2.0, 0, running=0.0, waiting=3.0)], state)
    assert counts == [1]


def test_scale_to_zero_disabled_keeps_one_pod() -> None:
    counts, _, _ = drive(kpa(enable_scale_to_zero=False), [(200, 0.0, "follow")])
    assert counts[198.0] == 1


def test_min_replicas_bound_the_result() -> None:
    counts, _, _ = drive(kpa(min_replicas=2, max_replicas=3), [(10, 0.0, 2), (10, 500.0, 2)])
    assert set(counts.values()) <= {2, 3}
    assert counts[18.0] == 3


def test_missing_data_uses_the_partial_window_then_holds() -> None:
    # Knative's documented partial-window average: after the last scrape the windows average
    # the data they hold, so a drop recorded before the metrics vanished still scales down
    # (rival behaviour, pinned); only a whole stable window without data holds the scale.
    policy = kpa()
    counts, codes, state = drive(policy, [(60, 28.0, "follow")])
    assert counts[58.0] == 4
    counts, codes, state = drive(policy, [(30, 0.0, 4), (80, None, 4)], state, start_s=60.0)
    assert counts[88.0] < 4                                       # scaled down on old samples
    assert codes[160.0] == "kpa-no-data"
    assert counts[160.0] == counts[158.0]


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="target_concurrency_per_pod"):
        KnativeKPA(target_concurrency_per_pod=0)
    with pytest.raises(ValueError, match="max_replicas"):
        KnativeKPA(min_replicas=3, max_replicas=2)
    with pytest.raises(ValueError, match="panic_threshold_percentage"):
        KnativeKPA(panic_threshold_percentage=50)


# --- properties ---------------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(pool_steps, st.integers(0, 3), st.integers(3, 40), st.floats(1, 200))
def test_within_bounds_deterministic_and_json_state(steps, lo, hi, target) -> None:
    policy = kpa(min_replicas=lo, max_replicas=hi, target_concurrency_per_pod=target)
    observations = observations_from(steps, TICK)
    a, _, state_a = run(policy, observations, via_json=True)
    b, _, state_b = run(policy, observations, via_json=False)
    assert a == b
    assert json_roundtrip(state_b) == state_a
    assert all(lo <= n <= hi for n in a)
