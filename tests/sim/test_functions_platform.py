"""Serverless platform simulator: invariants, keep-alive semantics, pre-warm, reproducibility."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.baselines.keepalive_fixed import (DETAIL_IDLE_TIMEOUT_S, DETAIL_KEEP_ALIVE_S,
                                                      FixedKeepAlive)
from tidal.policies.interface import POOL_FUNCTION, Decision, Observation
from tidal.sim.serverless import (HUAWEI_R1, FunctionSimConfig, FunctionSimulation,
                                  FunctionWorkload, fixed_cold_start)
from tidal.sim.serverless.observation import FunctionPoolObservation


def workload(arrivals: list[tuple[float, int, float]], *, functions: int = 1,
             memory_mb: float = 1024.0, horizon_s: float | None = None) -> FunctionWorkload:
    """(arrival, function, duration) triples -> a workload (sorted by arrival)."""
    rows = sorted(arrivals, key=lambda r: r[0])
    arr = np.array([r[0] for r in rows], dtype=float)
    return FunctionWorkload(
        function_ids=tuple(f"f{i}" for i in range(functions)),
        memory_mb=np.full(functions, memory_mb),
        arrival_s=arr, function_index=np.array([r[1] for r in rows], dtype=np.int64),
        duration_s=np.array([r[2] for r in rows], dtype=float),
        horizon_s=horizon_s if horizon_s is not None else (float(arr.max()) + 1 if rows else 60.0))


def run(wl: FunctionWorkload, policy: Any, **cfg: Any):
    cfg.setdefault("cold_start", fixed_cold_start(2.0))
    return FunctionSimulation(wl, policy, FunctionSimConfig(**cfg)).run()


invocation_lists = st.lists(
    st.tuples(st.floats(0, 300, allow_nan=False), st.integers(0, 2),
              st.floats(0, 30, allow_nan=False)),
    min_size=1, max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=invocation_lists, concurrency=st.integers(1, 3),
       keep_alive=st.sampled_from([0.0, 5.0, 60.0, math.inf]),
       huawei=st.booleans(), max_instances=st.sampled_from([None, 1, 2]),
       seed=st.integers(0, 3))
def test_invariants_hold_on_any_workload(rows, concurrency, keep_alive, huawei, max_instances,
                                         seed) -> None:
    wl = workload(rows, functions=3)
    res = run(wl, FixedKeepAlive(keep_alive), concurrency=concurrency, seed=seed,
              max_instances=max_instances,
              cold_start=HUAWEI_R1 if huawei else fixed_cold_start(2.0))
    inv, ins = res.invocations, res.instances
    # Every invocation is served, never before it arrives, for exactly its run time.
    assert not np.isnan(inv["finish_s"]).any()
    assert np.all(inv["start_s"] >= inv["arrival_s"] - 1e-9)
    assert np.all(inv["finish_s"] >= inv["arrival_s"])
    np.testing.assert_allclose(inv["finish_s"] - inv["start_s"], inv["duration_s"], atol=1e-9)
    inst = inv["instance"]
    # Each invocation ran on an instance of its own function, after that instance was ready.
    assert np.all(ins["function_index"][inst] == inv["function_index"])
    assert np.all(inv["start_s"] >= ins["ready_s"][inst] - 1e-9)
    # An invocation that started an instance waited at least (here: exactly) its cold start.
    trig = inv["triggered_start"]
    cold_start = ins["ready_s"] - ins["created_s"]
    assert np.all(inv["wait_s"][trig] >= cold_start[inst[trig]] - 1e-9)
    assert np.all(inv["cold"][trig])
    # No instance ever runs more than `concurrency` invocations at once.
    for i in np.unique(inst):
        events = sorted([(s, 1) for s in inv["start_s"][inst == i]]
                        + [(f, -1) for f in inv["finish_s"][inst == i]])
        running = np.cumsum([d for _, d in events])
        assert running.max() <= concurrency
    # Instances never exceed the cap; idle time fits inside each instance's life.
    if max_instances is not None:
        for f in range(3):
            mine = ins["function_index"] == f
            gone = np.where(np.isnan(ins["removed_s"][mine]), np.inf, ins["removed_s"][mine])
            events = sorted([(c, 1) for c in ins["created_s"][mine]] + [(g, -1) for g in gone],
                            key=lambda e: (e[0], e[1]))
            assert max(np.cumsum([d for _, d in events]), default=0) <= max_instances
    assert np.all(ins["idle_s"] <= ins["lifetime_s"] + 1e-6)
    assert res.summary["wasted_gb_hours"] <= res.summary["gb_hours"] + 1e-9


@settings(max_examples=30, deadline=None)
@given(rows=invocation_lists, concurrency=st.integers(1, 3))
def test_keep_alive_zero_makes_every_invocation_after_idle_cold(rows, concurrency) -> None:
    wl = workload(rows, functions=3)
    res = run(wl, FixedKeepAlive(0.0), concurrency=concurrency)
    inv = res.invocations
    for f in range(3):
        mine = np.flatnonzero(inv["function_index"] == f)
        for k in mine:
            earlier = mine[mine < k]
            # Nothing of this function in flight (running or waiting) when k arrives.
            busy = np.any((inv["arrival_s"][earlier] <= inv["arrival_s"][k])
                          & (inv["finish_s"][earlier] > inv["arrival_s"][k]))
            if not busy:
                assert inv["cold"][k], (k, inv["arrival_s"][k])
    if concurrency == 1:
        assert inv["cold"].all()


@settings(max_examples=30, deadline=None)
@given(rows=invocation_lists, concurrency=st.integers(1, 3))
def test_infinite_keep_alive_starts_at_most_one_instance_per_concurrent_slot(rows,
                                                                             concurrency) -> None:
    wl = workload(rows, functions=3)
    res = run(wl, FixedKeepAlive(math.inf), concurrency=concurrency)
    inv, ins = res.invocations, res.instances
    assert np.isnan(ins["removed_s"]).all()
    for f in range(3):
        mine = inv["function_index"] == f
        starts = int(np.sum(ins["function_index"] == f))
        assert starts == int(np.sum(inv["triggered_start"] & mine))
        # Peak number of this function's invocations in flight (arrived, not finished).
        events = sorted([(a, 1) for a in inv["arrival_s"][mine]]
                        + [(e, -1) for e in inv["finish_s"][mine]], key=lambda x: (x[0], x[1]))
        peak = max(np.cumsum([d for _, d in events]), default=0)
        # A new instance starts only when every existing one has all its slots taken.
        assert starts <= math.ceil(peak / concurrency)


def test_fixed_keep_alive_by_hand() -> None:
    # One function, 1 GB, cold start 2 s, run time 1 s, keep-alive 600 s.
    wl = workload([(0.0, 0, 1.0), (100.0, 0, 1.0), (800.0, 0, 1.0)], horizon_s=900.0)
    res = run(wl, FixedKeepAlive(600.0))
    inv, ins = res.invocations, res.instances
    assert inv["cold"].tolist() == [True, False, True]  # idle 97 s < 600; idle 699 s > 600
    np.testing.assert_allclose(inv["wait_s"], [2.0, 0.0, 2.0])
    np.testing.assert_allclose(ins["removed_s"][0], 101.0 + 600.0)  # exact, not tick-rounded
    # Idle: [3, 100] + [101, 701] on the first instance, [803, 900] on the second.
    np.testing.assert_allclose(res.summary["wasted_gb_hours"], (97 + 600 + 97) / 3600.0)
    np.testing.assert_allclose(res.summary["gb_hours"], (701 + 100) / 3600.0)
    assert res.summary["cold_start_ratio"] == pytest.approx(2 / 3)


def test_prewarmed_instances_serve_warm_and_early_arrivals_wait_for_the_start() -> None:
    wl = workload([(1.0, 0, 0.5), (10.0, 0, 0.5), (10.0, 0, 0.5), (10.0, 0, 0.5)],
                  horizon_s=30.0)
    res = run(wl, FixedReplicas({POOL_FUNCTION: 2}))
    inv, ins = res.invocations, res.instances
    assert res.summary["prewarm_starts"] == 2
    # t=1: both pre-warm instances still starting (ready at 2): joins one, waits 1 s, counts cold.
    assert inv["cold"][0] and not inv["triggered_start"][0]
    assert inv["wait_s"][0] == pytest.approx(1.0)
    # t=10: two warm instances serve two invocations, the third starts a new instance.
    assert inv["cold"][1:].sum() == 1 and inv["triggered_start"][1:].sum() == 1
    # Three instances, two desired: the one idle longest goes at the next tick (t = 15 s).
    removed = ins["removed_s"][~np.isnan(ins["removed_s"])]
    assert removed.tolist() == [15.0]
    assert len(ins["removed_s"]) == 3


def test_max_instances_queues_instead_of_starting() -> None:
    wl = workload([(0.0, 0, 5.0), (0.5, 0, 5.0)], horizon_s=30.0)
    res = run(wl, FixedKeepAlive(600.0), max_instances=1)
    inv = res.invocations
    assert res.summary["instance_starts"] == 1
    assert inv["start_s"][1] == pytest.approx(inv["finish_s"][0])
    assert not inv["cold"][1]


@dataclass
class Recording:
    """Wraps a policy and keeps every observation it is given."""

    inner: Any
    name: str = "recording"

    def __post_init__(self) -> None:
        self.seen: list[Observation] = []

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        self.seen.append(observation)
        return self.inner.decide(observation, state)


def test_observation_carries_exact_idle_gaps_and_only_the_past() -> None:
    rows = [(5.0, 0, 1.0), (40.0, 0, 1.0), (41.5, 0, 0.2), (200.0, 0, 1.0)]
    wl = workload(rows, horizon_s=240.0)
    rec = Recording(FixedKeepAlive(600.0))
    res = run(wl, rec)
    finish = res.invocations["finish_s"]
    gaps = [g for o in rec.seen for g in o.pools[POOL_FUNCTION].idle_gaps_s]
    # Function went idle at the end of each execution and stayed idle until the next arrival.
    np.testing.assert_allclose(gaps, [40.0 - finish[0], 41.5 - finish[1], 200.0 - finish[2]])
    for obs in rec.seen:
        pool = obs.pools[POOL_FUNCTION]
        assert isinstance(pool, FunctionPoolObservation)
        assert pool.last_arrival_s is None or pool.last_arrival_s <= obs.now_s
        span = min(60.0, obs.now_s)
        arrived = sum(1 for a, _, _ in rows if obs.now_s - span <= a <= obs.now_s)
        assert pool.request_rate_rps * span == pytest.approx(arrived)
    assert sum(o.pools[POOL_FUNCTION].arrivals_since_last_tick for o in rec.seen) == len(rows)


def test_same_seed_same_result_other_seed_other_cold_starts() -> None:
    rng = np.random.default_rng(7)
    rows = [(float(t), int(f), float(d)) for t, f, d in
            zip(np.sort(rng.uniform(0, 600, 300)), rng.integers(0, 5, 300),
                rng.exponential(2.0, 300))]
    wl = workload(rows, functions=5, horizon_s=600.0)
    a = run(wl, FixedKeepAlive(30.0), cold_start=HUAWEI_R1, seed=1)
    b = run(wl, FixedKeepAlive(30.0), cold_start=HUAWEI_R1, seed=1)
    c = run(wl, FixedKeepAlive(30.0), cold_start=HUAWEI_R1, seed=2)
    assert a.summary == b.summary
    np.testing.assert_array_equal(a.invocations["finish_s"], b.invocations["finish_s"])
    assert not np.array_equal(a.instances["ready_s"] - a.instances["created_s"],
                              c.instances["ready_s"] - c.instances["created_s"])


def test_longer_keep_alive_never_more_cold_starts_on_the_same_workload() -> None:
    rng = np.random.default_rng(3)
    rows = [(float(t), int(f), 0.5) for t, f in
            zip(np.sort(rng.uniform(0, 1800, 400)), rng.integers(0, 8, 400))]
    wl = workload(rows, functions=8, horizon_s=1800.0)
    colds = [run(wl, FixedKeepAlive(k)).summary["cold_starts"] for k in (0.0, 10.0, 60.0, 600.0)]
    assert colds == sorted(colds, reverse=True) and colds[0] > colds[-1]


class BadKeepAlive:
    name = "bad"

    def decide(self, observation, state):
        return Decision({POOL_FUNCTION: 0}, details={DETAIL_IDLE_TIMEOUT_S: -1.0}), state


def test_bad_policy_output_names_the_field() -> None:
    with pytest.raises(ValueError, match="idle_timeout_s"):
        run(workload([(0.0, 0, 1.0)]), BadKeepAlive())


def test_fixed_keep_alive_decision_and_validation() -> None:
    obs = Observation(now_s=0.0, pools={POOL_FUNCTION: FunctionPoolObservation(ready_replicas=3)})
    decision, _ = FixedKeepAlive(600.0, min_instances=1).decide(obs, None)
    assert decision.desired_replicas == {POOL_FUNCTION: 1}
    assert decision.details[DETAIL_IDLE_TIMEOUT_S] == decision.details[DETAIL_KEEP_ALIVE_S] == 600
    assert decision.reasons and decision.reasons[0].pool == POOL_FUNCTION
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="keep_alive_s"):
            FixedKeepAlive(bad)


def test_auto_keepalive_policy_runs_on_the_simulator() -> None:
    keepalive = pytest.importorskip("tidal.policies.keepalive")
    rows = [(float(t), 0, 0.3) for t in np.arange(0, 3600, 300.0)]
    wl = workload(rows, horizon_s=3600.0)
    policy = keepalive.KeepAlivePolicy(concurrency_target=1, activity_window_s=60.0,
                                       cold_start_s=2.0, name="auto")
    res = run(wl, policy)
    assert res.summary["invocations"] == len(rows)
    assert not np.isnan(res.invocations["finish_s"]).any()


def test_cost_is_counted_inside_the_window_latency_to_completion() -> None:
    # Runs past the 50 s window: latency counts all of it, memory only the window.
    res = run(workload([(0.0, 0, 100.0)], horizon_s=50.0), FixedKeepAlive(math.inf))
    assert res.invocations["finish_s"][0] == pytest.approx(102.0)
    assert res.summary["latency_p50_s"] == pytest.approx(102.0)
    assert res.summary["gb_hours"] == pytest.approx(50.0 / 3600.0)
    assert res.summary["busy_gb_hours"] == pytest.approx(48.0 / 3600.0)
    assert res.summary["wasted_gb_hours"] == 0.0
    with pytest.raises(ValueError, match="horizon_s"):
        workload([(60.0, 0, 1.0)], horizon_s=50.0)


def test_warm_up_is_replayed_but_not_measured() -> None:
    rows = [(0.0, 0, 1.0), (100.0, 0, 1.0)]
    arr = np.array([r[0] for r in rows])
    wl = FunctionWorkload(function_ids=("f0",), memory_mb=np.array([1024.0]), arrival_s=arr,
                          function_index=np.zeros(2, dtype=np.int64),
                          duration_s=np.ones(2), horizon_s=200.0, measure_from_s=50.0)
    res = run(wl, FixedKeepAlive(600.0))
    s = res.summary
    assert s["invocations"] == 1 and s["warmup_invocations"] == 1
    assert s["cold_starts"] == 0 and s["instance_starts"] == 0  # warmed up before the window
    assert s["gb_hours"] == pytest.approx(150.0 / 3600.0)
    assert s["wasted_gb_hours"] == pytest.approx((50.0 + 99.0) / 3600.0)


def test_observation_reports_the_peak_between_ticks() -> None:
    wl = workload([(1.0, 0, 5.0), (2.0, 0, 5.0), (3.0, 0, 5.0), (20.0, 0, 1.0)],
                  horizon_s=40.0)
    rec = Recording(FixedKeepAlive(600.0))
    run(wl, rec)
    at = {o.now_s: o.pools[POOL_FUNCTION] for o in rec.seen}
    assert at[15.0].running_requests == 0 and at[15.0].peak_in_flight_since_last_tick == 3
    assert at[30.0].peak_in_flight_since_last_tick == 1


def test_an_llm_style_autoscaler_drives_the_function_pool() -> None:
    from tidal.policies.utilization import UtilizationTarget

    rng = np.random.default_rng(5)
    rows = [(float(t), int(f), float(d)) for t, f, d in
            zip(np.sort(rng.uniform(0, 300, 200)), rng.integers(0, 3, 200),
                rng.exponential(3.0, 200))]
    res = run(workload(rows, functions=3, horizon_s=300.0),
              UtilizationTarget(target_inflight_per_replica=1.0, min_replicas=0,
                                max_replicas=50))
    assert not np.isnan(res.invocations["finish_s"]).any()
    assert res.summary["invocations"] == 200
