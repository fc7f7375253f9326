"""Pure pieces of the ModelDeployment runtime: placement, replica observation, conditions, state.

Property tests state the invariants the operator relies on; they exercise the real functions with
generated inputs, no cluster.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.modeldeployment import ChildKey
from tidal.controllers.modeldeployment_decide import decide, place, preference_order
from tidal.controllers.modeldeployment_observe import (
    ChildDeployment,
    ChildPod,
    observe_replicas,
    start_times,
    summarize_pod,
)
from tidal.controllers.modeldeployment_status import ConditionValue, merge_conditions
from tidal.controllers.workload_state import MAX_DECISIONS, WorkloadState, decode_state, encode_state
from tidal.policies.interface import Observation, PoolObservation

CLASSES = ("a", "b", "c")


@given(st.integers(0, 200), st.dictionaries(st.sampled_from(CLASSES), st.integers(0, 50)),
       st.permutations(CLASSES))
def test_place_keeps_the_total_and_moves_as_little_as_possible(desired: int, current: dict[str, int],
                                                               order: list[str]) -> None:
    out = place(desired, current, order)
    assert sum(out.values()) == desired and all(n >= 0 for n in out.values())
    have = sum(current.get(c, 0) for c in order)
    if desired >= have:  # growing never moves a running replica
        assert all(out[c] >= current.get(c, 0) for c in order)
        assert all(out[c] == current.get(c, 0) for c in order[1:])
    else:  # shrinking never adds anywhere, and empties the least preferred first
        assert all(out[c] <= current.get(c, 0) for c in order)
        touched = [i for i, c in enumerate(order) if out[c] < current.get(c, 0)]
        if touched:
            first = min(touched)
            assert all(out[c] == 0 for c in order[first + 1:])


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


def _md(**spec_extra: Any) -> ModelDeployment:
    spec: dict[str, Any] = {
        "model": {"name": "m", "parametersBillions": 8}, "engine": {"image": "img"},
        "slo": {"ttft": "500ms"}, "pools": {"unified": {"minReplicas": 1, "maxReplicas": 8}},
        "placement": {"acceleratorClasses": ["b", "a"]},
    }
    spec.update(spec_extra)
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "ns"}, "spec": spec})


def _acc(name: str, cost: float, tflops: float) -> AcceleratorClass:
    return AcceleratorClass.model_validate({"metadata": {"name": name}, "spec": {
        "memory": "80Gi", "peakTflops": tflops, "memoryBandwidthGbps": 1000, "hourlyCost": cost}})


def test_preference_order_follows_the_strategy() -> None:
    accs = {"a": _acc("a", 1.0, 100), "b": _acc("b", 3.0, 900)}
    assert preference_order(_md(), accs) == ["a", "b"]
    assert preference_order(_md(placement={"acceleratorClasses": ["a", "b"], "strategy": "fastest"}), accs) == [
        "b", "a"]
    assert preference_order(_md(), {"b": accs["b"]}) == ["b"]


@settings(max_examples=60)
@given(st.integers(0, 8), st.integers(0, 8), st.one_of(st.none(), st.floats(0, 500)))
def test_decide_never_leaves_bounds_and_holds_on_missing_metrics(ready: int, spec_n: int,
                                                                inflight: float | None) -> None:
    md = _md()
    obs = PoolObservation(ready_replicas=min(ready, spec_n), starting_replicas=spec_n - min(ready, spec_n),
                          running_requests=inflight, waiting_requests=0.0 if inflight is not None else None)
    current = {ChildKey("unified", "a"): spec_n}
    wd = decide(md, Observation(0.0, {"unified": obs}, inflight is not None), current, ["a", "b"])
    want = wd.decision.desired_replicas["unified"]
    assert 1 <= want <= 8
    if inflight is None:
        assert want == min(max(spec_n, 1), 8), "missing metrics hold (bounded), never zero"
        assert wd.decision.reasons[0].code == "hold-no-metrics"
    assert sum(n for k, n in wd.by_child.items() if k.pool == "unified") == want
    for key, before, after in wd.changes:
        assert current[key] == before and wd.by_child[key] == after and before != after


def test_manual_override_and_missing_classes() -> None:
    md = _md(replicas=5)
    obs = PoolObservation(ready_replicas=2)
    wd = decide(md, Observation(0.0, {"unified": obs}, False), {ChildKey("unified", "a"): 2}, ["a"])
    assert wd.by_child == {ChildKey("unified", "a"): 5} and wd.changes == ((ChildKey("unified", "a"), 2, 5),)
    assert wd.decision.reasons[0].code == "manual-override"
    none = decide(_md(), Observation(0.0, {"unified": obs}, False), {}, [])
    assert none.by_child == {} and none.capacity_limits[0].code == "no-accelerator-class"


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
    for i in range(pods):
        state.add_counted_pod(f"uid-{i}")
    assert len(state.decisions) == min(n_decisions, MAX_DECISIONS)
    text = encode_state(state, max_bytes)
    assert len(text.encode()) <= max_bytes
    back = decode_state(text)
    assert back.last_scale_event == "7:unified/a:1->3" and back.tick == 9
    if back.decisions:  # only the oldest are dropped
        assert back.decisions[-1] == state.decisions[-1]
    if len(json.dumps(state.to_dict())) < max_bytes // 2:
        assert back.decisions == state.decisions and back.forecaster == state.forecaster


def test_scale_down_waits_for_scale_down_delay_and_the_window_survives_a_restart() -> None:
    md = _md(autoscaling={"scaleDownDelay": "5m"})
    key = ChildKey("unified", "a")

    def tick(now: float, inflight: float, replicas: int, state: Any) -> Any:
        obs = PoolObservation(ready_replicas=replicas, running_requests=inflight, waiting_requests=0.0)
        return decide(md, Observation(now, {"unified": obs}), {key: replicas}, ["a"], state)

    busy = tick(0.0, 100.0, 1, None)
    assert busy.by_child[key] == 7  # ceil(100 / 16): scale-ups are immediate
    # A restart in between: the window goes through the persisted state.
    stored = decode_state(encode_state(WorkloadState(policy=dict(busy.policy_state or {})))).policy
    quiet = tick(15.0, 0.0, 7, stored)
    assert quiet.by_child[key] == 7 and quiet.decision.reasons[0].code == "scale-down-stabilized"
    later = tick(301.0, 0.0, 7, quiet.policy_state)
    assert later.by_child[key] == 1 and later.changes == ((key, 7, 1),)


def test_a_restart_never_shortens_the_scale_down_window() -> None:
    """The state is saved when the decision changes; steady ticks after that are not saved. A crash
    then loses the recent recommendations, and the old ones have aged out of the window."""
    from tidal.policies.utilization import resume_window

    md = _md(autoscaling={"scaleDownDelay": "30s"})
    key = ChildKey("unified", "a")

    def tick(now: float, inflight: float, replicas: int, state: Any) -> Any:
        obs = PoolObservation(ready_replicas=replicas, running_requests=inflight, waiting_requests=0.0)
        return decide(md, Observation(now, {"unified": obs}), {key: replicas}, ["a"], state)

    saved = tick(0.0, 80.0, 1, None)  # scale-up to 5: a new decision, saved at once
    assert saved.by_child[key] == 5
    # Steady at 5 until t=40 (not saved), crash, load drops, restart at t=45.
    stored = decode_state(encode_state(WorkloadState(policy=dict(saved.policy_state or {})))).policy
    naive = tick(45.0, 10.0, 5, stored)
    assert naive.by_child[key] == 1, "without resuming, the restart would scale down at once"
    resumed = resume_window(stored, 45.0, {"unified": 5})
    held = tick(45.0, 10.0, 5, resumed)
    assert held.by_child[key] == 5 and held.decision.reasons[0].code == "scale-down-stabilized"
    assert tick(74.0, 10.0, 5, held.policy_state).by_child[key] == 5
    assert tick(76.0, 10.0, 5, held.policy_state).by_child[key] == 1  # one full window after the restart


def test_settle_applies_bridges_a_lagging_index_then_trusts_it_again() -> None:
    from tidal.controllers.modeldeployment import ChildKey
    from tidal.operator.modeldeployment_controller import APPLY_SETTLE_TICKS, settle_applies

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
