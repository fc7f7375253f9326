"""Pure pieces of the ModelDeployment runtime: replica observation, conditions, state.

Property tests state the invariants the operator relies on; they exercise the real functions with
generated inputs, no cluster.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.controllers.modeldeployment_observe import (
    ChildDeployment,
    ChildPod,
    observe_replicas,
    start_times,
    summarize_pod,
)
from tidal.controllers.modeldeployment_status import ConditionValue, merge_conditions
from tidal.controllers.workload_state import MAX_DECISIONS, WorkloadState, decode_state, encode_state

CLASSES = ("a", "b", "c")


def _deployment(pool: str, acc: str, spec: int, ready: int) -> ChildDeployment:
    return ChildDeployment(f"m-{pool}-{acc}", "ns", "m", pool, acc, spec, ready)


def _pod(i: int, acc: str, *, scheduled: bool, ready: bool, deleting: bool) -> ChildPod:
    return ChildPod(f"p{i}", "ns", f"uid{i}", "m", "unified", acc, "n1" if scheduled else None,
                    scheduled=scheduled, ready=ready and scheduled, deleting=deleting)


@given(st.dictionaries(st.sampled_from(CLASSES), st.integers(0, 8), min_size=1),
       st.lists(st.tuples(st.sampled_from(CLASSES), st.booleans(), st.booleans(), st.booleans()), max_size=20))
def test_observed_replicas_sum_to_the_spec_so_hold_keeps_what_runs(spec: dict[str, int], pods: list[Any]) -> None:
    deployments = [_deployment("unified", acc, n, 0) for acc, n in spec.items()]
    pod_objs = [_pod(i, acc, scheduled=s, ready=r, deleting=d) for i, (acc, s, r, d) in enumerate(pods)]
    obs = observe_replicas(["unified"], deployments, pod_objs)["unified"].observation
    assert obs.current_replicas == sum(spec.values())
    assert min(obs.ready_replicas, obs.starting_replicas, obs.pending_replicas, obs.draining_replicas) >= 0
    live_ready = sum(1 for p in pod_objs if p.ready and not p.deleting)
    assert obs.ready_replicas == min(live_ready, sum(spec.values())) or not any(not p.deleting for p in pod_objs)


def test_pod_phases_from_timestamps() -> None:
    pod = summarize_pod({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z",
                     "labels": {"tidal.dev/deployment": "m", "tidal.dev/pool": "unified",
                                "tidal.dev/accelerator": "a"}},
        "spec": {"nodeName": "n1"},
        "status": {"conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:02Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:01:30Z"}],
            "containerStatuses": [{"state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}}}]},
    })
    assert pod is not None and pod.ready and pod.node == "n1"
    times = start_times(pod)
    assert times is not None
    assert (times.scheduling_s, times.image_pull_s, times.after_start_s) == (2.0, 2.0, 86.0)
    assert times.image_cached  # a 2 s "pull" is a cached image
    assert summarize_pod({"metadata": {"labels": {}}}) is None


def test_condition_transition_time_moves_only_on_flips() -> None:
    first = merge_conditions(None, [ConditionValue("Ready", "False", "ReplicasStarting", "0/1")], 100.0, 1)
    same = merge_conditions(first, [ConditionValue("Ready", "False", "ReplicasStarting", "0/2")], 200.0, 2)
    flip = merge_conditions(same, [ConditionValue("Ready", "True", "ReplicasReady", "ok"),
                                   ConditionValue("Degraded", "False", "AllStepsSucceeded", "")], 300.0, 2)
    assert first[0]["lastTransitionTime"] == same[0]["lastTransitionTime"] == "1970-01-01T00:01:40Z"
    assert flip[0]["lastTransitionTime"] == "1970-01-01T00:05:00Z"
    assert [c["type"] for c in flip] == ["Ready", "Degraded"]
    kept = merge_conditions(flip, [ConditionValue("Degraded", "True", "StepFailed", "x")], 400.0, 3)
    assert [c["type"] for c in kept] == ["Ready", "Degraded"] and kept[0] == flip[0]


@settings(max_examples=40)
@given(st.integers(0, 60), st.integers(200, 20_000), st.integers(0, 300))
def test_state_stays_bounded_and_round_trips(n_decisions: int, max_bytes: int, pods: int) -> None:
    state = WorkloadState(forecaster={"kind": "x", "blob": "y" * 5000}, cold_start={"kind": "cold", "z": "w" * 3000},
                          last_scale_event="7:unified/a:1->3", tick=9)
    for i in range(n_decisions):
        state.add_decision({"tick": i, "reasons": [{"code": "c", "message": "m" * 50}]})
    state.counted_pods = [f"uid-{i}" for i in range(pods)]
    assert len(state.decisions) == min(n_decisions, MAX_DECISIONS)
    text = encode_state(state, max_bytes)
    assert len(text.encode()) <= max_bytes
    back = decode_state(text)
    assert back.last_scale_event == "7:unified/a:1->3" and back.tick == 9
    if back.decisions:  # only the oldest are dropped
        assert back.decisions[-1] == state.decisions[-1]
    if len(json.dumps(state.to_dict())) < max_bytes // 2:
        assert back.decisions == state.decisions and back.forecaster == state.forecaster


def test_settle_applies_bridges_a_lagging_index_then_trusts_it_again() -> None:
    from tidal.controllers.modeldeployment import ChildKey
    from tidal.operator.modeldeployment_controller import APPLY_SETTLE_TICKS, apply_settle_ticks, settle_applies

    key, other = ChildKey("unified", "gpu-a"), ChildKey("unified", "gpu-b")
    recent = {key: (1, 2, 10)}
    # The watch has not delivered the write yet: the operator's own write counts.
    assert settle_applies({key: 1, other: 3}, recent, 11) == {key: 2, other: 3}
    assert key in recent
    # The index caught up: the entry is dropped.
    assert settle_applies({key: 2}, recent, 12) == {key: 2} and not recent
    # Someone else changed it since: their value stands.
    recent = {key: (1, 2, 10)}
    assert settle_applies({key: 5}, recent, 11) == {key: 5} and not recent
    # A write that never shows up is not believed forever.
    recent = {key: (1, 2, 10)}
    assert settle_applies({key: 1}, recent, 11 + APPLY_SETTLE_TICKS) == {key: 1} and not recent
    # ...but for a minute at least, however short the tick (1 s ticks on starved CPUs: > 3 ticks).
    assert apply_settle_ticks(15.0) == max(APPLY_SETTLE_TICKS, 4) and apply_settle_ticks(1.0) == 60
    recent = {key: (1, 2, 10)}
    assert settle_applies({key: 1}, recent, 50, apply_settle_ticks(1.0)) == {key: 2}
    assert settle_applies({key: 1}, recent, 71, apply_settle_ticks(1.0)) == {key: 1} and not recent
