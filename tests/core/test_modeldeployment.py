"""The ModelDeployment decision core: bounds, override, hold, wake from zero, placement, predictors.

Property tests run the real entry point on generated observations; the state round trip is the one
the operator persists.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.modeldeployment import ChildKey
from tidal.controllers.workload_state import WorkloadState, decode_state, encode_state
from tidal.core.modeldeployment import decide_workload, kv_ttl_seconds, split_override
from tidal.predictors.pauses import SessionPausePredictor
from tidal.core.state import CoreState
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation, ReplicaStart

ACCS = {"a": AcceleratorProfile("a", 1.0, 100.0, 1000.0, 80e9), "b": AcceleratorProfile("b", 3.0, 900.0, 1000.0, 80e9)}


def _md(**spec_extra: Any) -> ModelDeployment:
    spec: dict[str, Any] = {
        "model": {"name": "m", "parametersBillions": 8}, "engine": {"image": "img"},
        "slo": {"ttft": "500ms"}, "pools": {"unified": {"minReplicas": 1, "maxReplicas": 8}},
        "placement": {"acceleratorClasses": ["b", "a"]}, "autoscaling": {"predictor": "holt-winters"},
    }
    spec.update(spec_extra)
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "ns"}, "spec": spec})


def _obs(now: float, pools: dict[str, PoolObservation], placement: dict[str, dict[str, int]] | None = None,
         available: bool = True, **extra: Any) -> Observation:
    return Observation(now, pools, available, accelerators=ACCS, placement=placement or {}, **extra)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 8), st.integers(0, 8), st.one_of(st.none(), st.floats(0, 500)))
def test_never_leaves_bounds_and_holds_on_missing_metrics(ready: int, spec_n: int, inflight: float | None) -> None:
    obs = PoolObservation(ready_replicas=min(ready, spec_n), starting_replicas=spec_n - min(ready, spec_n),
                          running_requests=inflight, waiting_requests=0.0 if inflight is not None else None)
    wd, _ = decide_workload(_md(), _obs(0.0, {"unified": obs}, {"unified": {"a": spec_n}}, inflight is not None), None)
    want = wd.decision.desired_replicas["unified"]
    assert 1 <= want <= 8
    if inflight is None:
        assert want == min(max(spec_n, 1), 8), "missing metrics hold (bounded), never zero"
        assert wd.decision.reasons[0].code == "hold-no-metrics"
    assert sum(n for k, n in wd.by_child.items() if k.pool == "unified") == want
    for key, before, after in wd.changes:
        assert before == spec_n and wd.by_child[key] == after and before != after


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 400), st.floats(0, 400), st.integers(1, 8))
def test_replicas_are_monotone_in_load(low: float, high: float, ready: int) -> None:
    low, high = sorted((low, high))
    want = []
    for inflight in (low, high):
        obs = PoolObservation(ready_replicas=ready, running_requests=inflight, waiting_requests=0.0)
        wd, _ = decide_workload(_md(), _obs(0.0, {"unified": obs}, {"unified": {"a": ready}}), None)
        want.append(wd.decision.desired_replicas["unified"])
    assert want[0] <= want[1]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 4), st.integers(1, 20), st.integers(0, 4), st.integers(1, 20))
def test_override_is_clamped_to_every_pool_and_split_by_their_ratio(n: int, pmin: int, pmax: int, dmin: int,
                                                                    dmax: int) -> None:
    md = _md(mode="disaggregated", pools={"prefill": {"minReplicas": min(pmin, pmax), "maxReplicas": pmax},
                                          "decode": {"minReplicas": min(dmin, dmax), "maxReplicas": dmax}})
    wd, _ = decide_workload(md.model_copy(update={"spec": md.spec.model_copy(update={"replicas": n})}),
                            _obs(0.0, {}), None)
    out = wd.decision.desired_replicas
    assert min(pmin, pmax) <= out["prefill"] <= pmax and min(dmin, dmax) <= out["decode"] <= dmax
    assert all(r.code == "manual-override" for r in wd.decision.reasons) and wd.override is not None
    if sum(out.values()) == n:  # nothing clamped: the shares follow maxReplicas within one replica
        assert abs(out["prefill"] * (pmax + dmax) - n * pmax) < pmax + dmax
    else:  # clamped: some pool sits at a bound, and the message says so
        assert "clamped" in wd.override.message
        assert out["prefill"] in (min(pmin, pmax), pmax) or out["decode"] in (min(dmin, dmax), dmax)
    assert split_override(n, {"prefill": md.spec.pools.prefill, "decode": md.spec.pools.decode}) == wd.override


def test_kubectl_scale_past_max_is_clamped_and_reported() -> None:
    md = _md(replicas=50)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": PoolObservation(ready_replicas=2)}, {"unified": {"a": 2}}),
                            None)
    assert wd.decision.desired_replicas == {"unified": 8}
    assert wd.by_child == {ChildKey("unified", "a"): 8, ChildKey("unified", "b"): 0}
    assert wd.override is not None and "clamped to 8" in wd.override.message
    disagg = _md(replicas=50, mode="disaggregated",
                 pools={"prefill": {"maxReplicas": 4}, "decode": {"maxReplicas": 12}})
    wd, _ = decide_workload(disagg, _obs(0.0, {}), None)
    assert wd.decision.desired_replicas == {"prefill": 4, "decode": 12}
    wd, _ = decide_workload(disagg.model_copy(update={"spec": disagg.spec.model_copy(update={"replicas": 8})}),
                            _obs(0.0, {}), None)
    assert wd.decision.desired_replicas == {"prefill": 2, "decode": 6}


def test_pool_at_zero_wakes_on_entry_demand_and_otherwise_stays() -> None:
    md = _md(pools={"unified": {"minReplicas": 0, "maxReplicas": 4}})
    zero = PoolObservation(ready_replicas=0)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": zero}, {"unified": {"a": 0}}, False), None)
    assert wd.decision.desired_replicas == {"unified": 0}
    assert wd.decision.reasons[0].code == "hold-zero-no-demand-signal"
    idle = PoolObservation(ready_replicas=0, entry_request_rate_rps=0.0)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": idle}, {"unified": {"a": 0}}, False), None)
    assert wd.decision.desired_replicas == {"unified": 0} and wd.decision.reasons[0].code == "idle-at-zero"
    demand = PoolObservation(ready_replicas=0, entry_request_rate_rps=0.2)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": demand}, {"unified": {"a": 0}}, False), None)
    assert wd.decision.desired_replicas == {"unified": 1} and wd.decision.reasons[0].code == "scale-from-zero"
    assert wd.changes == ((ChildKey("unified", "a"), 0, 1),)
    queued = PoolObservation(ready_replicas=0, running_requests=0.0, waiting_requests=40.0)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": queued}, {"unified": {"a": 0}}), None)
    assert wd.decision.desired_replicas == {"unified": 3}, "with in-flight known the rule sizes it: ceil(40/16)"


def test_missing_classes_are_limits_and_no_class_places_nothing() -> None:
    obs = PoolObservation(ready_replicas=2)
    wd, _ = decide_workload(_md(), Observation(0.0, {"unified": obs}, False, accelerators={"a": ACCS["a"]}), None)
    assert [r.code for r in wd.capacity_limits] == ["accelerator-missing"] and "'b'" in wd.capacity_limits[0].message
    none, _ = decide_workload(_md(), Observation(0.0, {"unified": obs}, False), None)
    assert none.by_child == {} and [r.code for r in none.capacity_limits] == ["accelerator-missing",
                                                                               "no-accelerator-class"]


def test_scale_down_waits_for_scale_down_delay_and_the_window_survives_a_restart() -> None:
    md = _md(autoscaling={"scaleDownDelay": "5m", "predictor": "none"})
    key = ChildKey("unified", "a")

    def tick(now: float, inflight: float, replicas: int, state: CoreState | None) -> Any:
        obs = PoolObservation(ready_replicas=replicas, running_requests=inflight, waiting_requests=0.0)
        return decide_workload(md, _obs(now, {"unified": obs}, {"unified": {"a": replicas}}), state)

    busy, state = tick(0.0, 100.0, 1, None)
    assert busy.by_child[key] == 7  # ceil(100 / 16): scale-ups are immediate
    state = _restart(state)
    quiet, state = tick(15.0, 0.0, 7, state)
    assert quiet.by_child[key] == 7 and quiet.decision.reasons[0].code == "scale-down-stabilized"
    later, _ = tick(301.0, 0.0, 7, state)
    assert later.by_child[key] == 1 and later.changes == ((key, 7, 1),)


def test_a_restart_never_shortens_the_scale_down_window() -> None:
    """The state is saved when the decision changes; steady ticks after that are not saved. A crash
    then loses the recent recommendations, and the saved ones have aged out of the window."""
    from tidal.policies.utilization import resume_window

    md = _md(autoscaling={"scaleDownDelay": "30s", "predictor": "none"})
    key = ChildKey("unified", "a")

    def tick(now: float, inflight: float, replicas: int, state: CoreState | None) -> Any:
        obs = PoolObservation(ready_replicas=replicas, running_requests=inflight, waiting_requests=0.0)
        return decide_workload(md, _obs(now, {"unified": obs}, {"unified": {"a": replicas}}), state)

    saved, state = tick(0.0, 80.0, 1, None)  # scale-up to 5: a new decision, saved at once
    assert saved.by_child[key] == 5
    # Steady at 5 until t=40 (not saved), crash, load drops, restart at t=45.
    naive, _ = tick(45.0, 10.0, 5, _restart(copy.deepcopy(state)))
    assert naive.by_child[key] == 1, "without resuming, the restart would scale down at once"
    resumed = _restart(state)
    resumed.recommendations = resume_window({"recommendations": resumed.recommendations}, 45.0,
                                            {"unified": 5})["recommendations"]
    held, resumed = tick(45.0, 10.0, 5, resumed)
    assert held.by_child[key] == 5 and held.decision.reasons[0].code == "scale-down-stabilized"
    at_74, resumed = tick(74.0, 10.0, 5, resumed)
    assert at_74.by_child[key] == 5
    assert tick(76.0, 10.0, 5, resumed)[0].by_child[key] == 1  # one full window after the restart


def test_a_partially_observed_pool_is_never_scaled_down() -> None:
    md = _md(autoscaling={"scaleDownDelay": "0s", "predictor": "none"})
    obs = PoolObservation(ready_replicas=5, running_requests=16.0, waiting_requests=0.0, unobserved_replicas=1)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": obs}, {"unified": {"a": 5}}), None)
    assert wd.decision.desired_replicas["unified"] == 5
    assert [r.code for r in wd.decision.reasons if r.pool == "unified"] == ["hold-partial-metrics"]
    grown, _ = decide_workload(md, _obs(0.0, {"unified": replace(obs, running_requests=200.0)},
                                        {"unified": {"a": 5}}), None)
    assert grown.decision.desired_replicas["unified"] == 8  # scale-up on the reporting pods is kept (max 8)


def _restart(state: CoreState) -> CoreState:
    """What the operator does across a restart: encode into the state ConfigMap, decode, rebuild."""
    parts = state.to_parts()
    stored = decode_state(encode_state(WorkloadState(forecaster=parts["forecaster"], cold_start=parts["coldStart"],
                                                     counted_pods=parts["countedPods"], policy=parts["policy"])))
    back, problems = CoreState.from_parts(stored.forecaster, stored.cold_start, stored.counted_pods, stored.policy)
    assert problems == []
    return back


def _start(uid: str, total_s: float) -> ReplicaStart:
    return ReplicaStart(uid, "unified", "a", "n1", 2.0, 10.0, 0.0, total_s - 12.0)


def test_cold_start_is_learnt_once_per_replica_and_forecast_kv_ttl_are_reported() -> None:
    md = _md()
    state = None
    seen = []
    for i in range(12):
        rate = 5.0 + (i % 3)
        obs = PoolObservation(ready_replicas=1, running_requests=8.0, waiting_requests=0.0, request_rate_rps=rate)
        starts = tuple(_start(f"u{j}", 300.0) for j in range(min(i, 6)))
        wd, state = decide_workload(md, _obs(i * 60.0, {"unified": obs}, {"unified": {"a": 1}}, starts=starts,
                                             interval_s=15.0), state)
        seen.append(len(wd.learned_starts))
    assert seen == [0] + [1] * 6 + [0] * 5, "each uid is learnt once even though it is observed every tick"
    assert state is not None and state.counted_starts == [f"u{j}" for j in range(6)]
    assert wd.cold_start_s is not None and wd.cold_start_s > 100
    assert wd.forecast is not None and wd.forecast.lower_rps <= wd.forecast.rps <= wd.forecast.upper_rps
    assert wd.decision.forecast_rps == wd.forecast.rps
    assert wd.forecast.horizon_s == pytest.approx(max(60.0, wd.cold_start_s))
    # auto, before any pause is learnt: the prior's pauses (median 30 s) outlast the default 10 s
    # break-even hold, so no pin is worth its memory (tidal/policies/kv_ttl.py).
    assert wd.kv_ttl_s == kv_ttl_seconds(md) == 0.0
    short = SessionPausePredictor()
    for i in range(100):
        short.observe(float(i), 1.0 + 0.1 * (i % 10))
    assert 1.9 <= kv_ttl_seconds(md, short) <= 10.0
    assert kv_ttl_seconds(_md(kvCache={"ttl": "auto", "maxTTL": "1s"}), short) <= 1.0
    assert kv_ttl_seconds(_md(kvCache={"ttl": "off"})) is None
    assert kv_ttl_seconds(_md(kvCache={"ttl": "45s"})) == 45.0


def test_same_inputs_same_decisions_and_state_survives_a_restart() -> None:
    """Deterministic, and a core rebuilt from its persisted form decides exactly as the live one."""
    md = _md()

    def run(restart_at: int | None) -> list[Any]:
        state, out = None, []
        for i in range(30):
            if restart_at == i and state is not None:
                state = _restart(state)
            obs = PoolObservation(ready_replicas=2, running_requests=float(10 + 7 * (i % 5)), waiting_requests=1.0,
                                  request_rate_rps=3.0 + (i % 4))
            starts = (_start(f"u{i}", 200.0 + i),) if i % 7 == 0 else ()
            wd, state = decide_workload(md, _obs(i * 15.0, {"unified": obs}, {"unified": {"a": 2}},
                                                 starts=starts, interval_s=15.0), state)
            out.append((wd.decision, wd.by_child, wd.forecast, wd.cold_start_s, wd.kv_ttl_s))
        return out

    live = run(None)
    assert live == run(None)
    assert live == run(17)


def test_the_call_does_not_touch_a_deep_copied_branch() -> None:
    md = _md()
    obs = _obs(60.0, {"unified": PoolObservation(ready_replicas=1, request_rate_rps=2.0)}, {"unified": {"a": 1}},
               starts=(_start("x", 100.0),))
    _, state = decide_workload(md, obs, None)
    branch = copy.deepcopy(state)
    a, _ = decide_workload(md, obs, state)
    b, _ = decide_workload(md, obs, branch)
    assert a == b


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), st.integers(1, 6), st.one_of(st.none(), st.floats(0, 50)),
       st.one_of(st.none(), st.floats(0, 100)))
def test_a_pool_at_zero_leaves_it_exactly_when_demand_is_seen(min_n: int, max_n: int, entry: float | None,
                                                              waiting: float | None) -> None:
    min_n = min(min_n, max_n)
    md = _md(pools={"unified": {"minReplicas": min_n, "maxReplicas": max_n}})
    obs = PoolObservation(ready_replicas=0, entry_request_rate_rps=entry, waiting_requests=waiting,
                          running_requests=None if waiting is None else 0.0)
    wd, _ = decide_workload(md, _obs(0.0, {"unified": obs}, {"unified": {"a": 0}}, waiting is not None), None)
    want = wd.decision.desired_replicas["unified"]
    demand = (entry or 0.0) > 0 or (waiting or 0.0) > 0
    assert min_n <= want <= max_n
    if min_n == 0:
        assert (want > 0) == demand, wd.decision.reasons


def test_scale_to_zero_parks_after_the_idle_window_and_wakes_on_demand() -> None:
    md = _md(autoscaling={"predictor": "none", "scaleToZero": True, "scaleToZeroAfter": "2m"},
             pools={"unified": {"minReplicas": 2, "maxReplicas": 8}})
    state: CoreState | None = None

    def tick(now: float, replicas: int, entry: float | None, inflight: float | None = 0.0) -> Any:
        nonlocal state
        obs = PoolObservation(ready_replicas=replicas, running_requests=inflight, waiting_requests=0.0,
                              entry_request_rate_rps=entry)
        wd, state = decide_workload(md, _obs(now, {"unified": obs}, {"unified": {"a": replicas}}), state)
        return wd

    assert tick(0.0, 2, 0.0).decision.desired_replicas == {"unified": 2}  # idle clock starts
    assert tick(60.0, 2, 0.0, inflight=None).decision.desired_replicas == {"unified": 2}, "unknown is not idle"
    assert tick(90.0, 2, 0.0).decision.desired_replicas == {"unified": 2}  # the clock restarts at 90 s
    assert tick(200.0, 2, 0.0).decision.desired_replicas == {"unified": 2}, "110 s idle < 2m"
    parked = tick(210.0, 2, 0.0)
    assert parked.decision.desired_replicas == {"unified": 0} and parked.decision.reasons[0].code == "scale-to-zero"
    assert tick(225.0, 0, 0.0).decision.desired_replicas == {"unified": 0}, "parked below minReplicas"
    state = _restart(state)  # parked survives a restart
    assert tick(240.0, 0, 0.0).decision.desired_replicas == {"unified": 0}
    woken = tick(255.0, 0, 0.5)
    assert woken.decision.desired_replicas == {"unified": 2}, "demand at the entry: back to minReplicas"
    # Without an entry signal nothing could wake it, so it is never parked, and the reasons say so.
    state = None
    for t in (0.0, 200.0, 400.0):
        wd = tick(t, 2, None)
        assert wd.decision.desired_replicas == {"unified": 2}
    assert wd.decision.reasons[-1].code == "scale-to-zero-no-entry-signal"


def test_disaggregated_scale_to_zero_parks_and_wakes_prefill_and_decode_together_on_the_entry_signal() -> None:
    """In P/D mode a request at the entry needs a prefill *and* a decode replica: both wake on the
    entry pool's signal (the activator holds requests until both are Ready), not decode after
    prefill has served (which, behind the activator, would never happen)."""
    md = _md(mode="disaggregated", autoscaling={"predictor": "none", "scaleToZero": True, "scaleToZeroAfter": "1m"},
             pools={"prefill": {"minReplicas": 1, "maxReplicas": 4}, "decode": {"minReplicas": 2, "maxReplicas": 6}})
    state: CoreState | None = None

    def tick(now: float, replicas: dict[str, int], entry: float, held: float = 0.0) -> Any:
        nonlocal state
        pools = {p: PoolObservation(ready_replicas=n, running_requests=0.0,
                                    waiting_requests=held if p == "prefill" else 0.0, request_rate_rps=0.0,
                                    entry_request_rate_rps=entry if p == "prefill" else 0.0)
                 for p, n in replicas.items()}
        wd, state = decide_workload(md, _obs(now, pools, {p: {"a": n} for p, n in replicas.items()}), state)
        return wd

    running = {"prefill": 1, "decode": 2}
    assert tick(0.0, running, 0.0).decision.desired_replicas == running
    parked = tick(70.0, running, 0.0)
    assert parked.decision.desired_replicas == {"prefill": 0, "decode": 0}
    zero = {"prefill": 0, "decode": 0}
    assert tick(80.0, zero, 0.0).decision.desired_replicas == zero
    woken = tick(90.0, zero, 0.05, held=3.0)
    assert woken.decision.desired_replicas["prefill"] >= 1 and woken.decision.desired_replicas["decode"] >= 2
    # Without the scaleToZero park, minReplicas 0 on both pools: the decode pool at zero wakes on the
    # entry's demand too, and says so.
    md0 = _md(mode="disaggregated", autoscaling={"predictor": "none"},
              pools={"prefill": {"minReplicas": 0, "maxReplicas": 4}, "decode": {"minReplicas": 0, "maxReplicas": 6}})
    at_zero = {p: PoolObservation(ready_replicas=0, running_requests=0.0, waiting_requests=0.0, request_rate_rps=0.0,
                                  entry_request_rate_rps=0.0) for p in zero}
    wd, _ = decide_workload(md0, _obs(0.0, at_zero, {p: {"a": 0} for p in zero}, False), None)
    assert wd.decision.desired_replicas == zero
    assert [r.code for r in wd.decision.reasons if r.pool] == ["idle-at-zero", "idle-at-zero"]
    at_zero["prefill"] = replace(at_zero["prefill"], entry_request_rate_rps=0.1)
    wd, _ = decide_workload(md0, _obs(0.0, at_zero, {p: {"a": 0} for p in zero}, False), None)
    assert wd.decision.desired_replicas == {"prefill": 1, "decode": 1}
    assert [r.code for r in wd.decision.reasons if r.pool] == ["scale-from-zero", "scale-from-zero"]
