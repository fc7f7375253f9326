"""Placement never picks an accelerator class whose profile cannot meet the SLO."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelDeployment
from tidal.core.modeldeployment import decide_workload
from tidal.core.placement import (
    REASON_CLASS_FULL,
    REASON_MOVE,
    PoolPlacement,
    class_goodput,
    class_preference,
    cost_per_goodput,
    feasible_preference,
    place_pool,
    plan_move,
    planner_mix,
    replicas_fitting,
    take_replicas,
)
from tidal.policies.capacity import idle_violation, slo_targets
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation
from tidal.policies.placement import place
from tidal.policies.profile import build_profile, model_shape

GB = 1e9
L4 = AcceleratorProfile("l4", 0.8, 121.0, 300.0, 24 * GB)
H100 = AcceleratorProfile("h100", 4.0, 989.0, 3350.0, 80 * GB)


def _md(params_b: float, gpus: int, ttft: str = "2s", **extra: Any) -> ModelDeployment:
    spec: dict[str, Any] = {
        "model": {"name": "m", "parametersBillions": params_b}, "engine": {"image": "img"},
        "slo": {"ttft": ttft, "tpot": "100ms"},
        "pools": {"unified": {"minReplicas": 1, "maxReplicas": 8, "gpusPerReplica": gpus}},
        "placement": {"acceleratorClasses": ["l4", "h100"]}, "autoscaling": {"predictor": "none"}, **extra}
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": spec})


def _decide(md: ModelDeployment, classes: dict[str, AcceleratorProfile], ready: int = 1):
    obs = Observation(0.0, {"unified": PoolObservation(ready_replicas=ready, request_rate_rps=50.0,
                                                       running_requests=10.0, waiting_requests=0.0)},
                      accelerators=classes, placement={"unified": {}})
    return decide_workload(md, obs, None)[0]


def test_a_cheaper_class_that_cannot_hold_the_model_is_passed_over_and_said() -> None:
    wd = _decide(_md(70, 4), {"l4": L4, "h100": H100})  # 140 GB of weights: 4 x 80 GB holds them, 4 x 24 GB not
    assert {k.accelerator for k, n in wd.by_child.items() if n} == {"h100"}
    said = [r for r in wd.decision.reasons if r.code == "accelerator-cannot-meet-slo"]
    assert len(said) == 1 and "'l4'" in said[0].message and "kv-cache" in said[0].message
    assert not wd.capacity_limits


def test_when_no_class_can_meet_the_slo_the_order_is_kept_and_it_is_a_capacity_limit() -> None:
    wd = _decide(_md(405, 1), {"l4": L4, "h100": H100})
    assert {k.accelerator for k, n in wd.by_child.items() if n} == {"l4"}, "cheapest first, as before"
    assert "accelerator-cannot-meet-slo" in {r.code for r in wd.capacity_limits}


@settings(max_examples=60, deadline=None)
@given(st.floats(1, 200), st.integers(1, 8), st.floats(10, 2000), st.floats(100, 5000), st.floats(8, 192),
       st.sampled_from(["200ms", "1s", "5s"]))
def test_placement_never_picks_a_class_that_cannot_meet_the_slo(params_b: float, gpus: int, tflops: float,
                                                                bandwidth: float, memory_gb: float, ttft: str) -> None:
    md = _md(params_b, gpus, ttft)
    classes = {"l4": AcceleratorProfile("l4", 0.5, tflops, bandwidth, memory_gb * GB), "h100": H100}
    kept, unfit = feasible_preference(md, classes, ["l4", "h100"], planner_mix(None))
    wd = _decide(md, classes)
    used = {k.accelerator for k, n in wd.by_child.items() if n}
    slo, shape = slo_targets(md.spec.slo), model_shape(md.spec.model)
    for name in used:
        fits = idle_violation("unified", build_profile(shape, classes[name], gpus), planner_mix(None), slo) is None
        assert fits or len(unfit) == 2, f"{name} placed although it cannot meet the SLO and another can"
    assert set(kept) | {r.message.split("'")[1] for r in unfit} == {"l4", "h100"}


# --- ranking by cost per goodput, and sizing each class with its own goodput ------------------------

L40S = AcceleratorProfile("l40s", 1.1, 362.0, 864.0, 48 * GB)
A100 = AcceleratorProfile("a100", 1.79, 312.0, 2039.0, 80 * GB)


def _mixed(params_b: float, gpus: int, classes: list[str], **extra: Any) -> ModelDeployment:
    md = _md(params_b, gpus, **extra)
    spec = md.model_dump(by_alias=True, exclude_none=True)["spec"]
    spec["placement"]["acceleratorClasses"] = classes
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": spec})


def test_cheapest_ranks_by_cost_per_goodput_not_by_hourly_cost() -> None:
    """An H100 at 2.2x an L40S's price serves more than 2.2x its requests of an 8B chat mix (and the
    L4, cheapest per hour, serves a seventh of an L40S): cost per goodput orders H100, L40S, L4."""
    md = _mixed(8, 1, ["l4", "l40s", "h100"])
    h100 = AcceleratorProfile("h100", 2.99, 989.0, 3350.0, 80 * GB)
    classes = {"l4": L4, "l40s": L40S, "h100": h100}
    ranked = class_preference(md, classes, planner_mix(None))
    assert ranked.ordered == ["l4", "l40s", "h100"]  # by hourlyCost
    assert ranked.preference == ["h100", "l40s", "l4"]
    costs = ranked.cost_per_goodput
    assert costs["h100"] == pytest.approx(cost_per_goodput(md, h100, planner_mix(None)))
    assert costs["h100"] < costs["l40s"] < costs["l4"]
    # at 4.0/h the H100 no longer pays: the L40S serves the same requests for less
    dear = class_preference(md, {**classes, "h100": replace(h100, hourly_cost=4.0)}, planner_mix(None))
    assert dear.preference[0] == "l40s"


def test_fastest_keeps_peak_flops_and_a_70b_model_needs_the_classes_with_memory() -> None:
    md = _mixed(8, 1, ["l4", "l40s", "a100"], placement={"acceleratorClasses": ["l4", "l40s", "a100"],
                                                          "strategy": "fastest"})
    assert class_preference(md, {"l4": L4, "l40s": L40S, "a100": A100}, planner_mix(None)).preference == [
        "l40s", "a100", "l4"]
    classes = {"l4": L4, "l40s": L40S, "a100": A100}
    big = _mixed(70, 2, ["l4", "l40s", "a100"])  # 140 GB of weights: 2 GPUs of any class leave no KV cache
    assert len(class_preference(big, classes, planner_mix(None)).unfit) == 3
    tp4 = class_preference(_mixed(70, 4, ["l4", "l40s", "a100"]), classes, planner_mix(None))
    assert set(tp4.preference) == {"l40s", "a100"} and len(tp4.unfit) == 1 and "'l4'" in tp4.unfit[0].message


def test_each_class_counts_with_its_own_goodput() -> None:
    """3 replicas run on an A100 (the class they were placed on before), the H100 is now preferred:
    the planner sizes the pool in H100 replicas (seeing the 3 A100s as the H100s they are worth),
    and the replicas it adds go to the H100 for what the A100s do not serve."""
    md = _mixed(8, 1, ["a100", "h100"])
    h100 = AcceleratorProfile("h100", 2.99, 989.0, 3350.0, 80 * GB)
    classes = {"a100": A100, "h100": h100}
    obs = Observation(0.0, {"unified": PoolObservation(ready_replicas=3, request_rate_rps=300.0,
                                                       running_requests=30.0, waiting_requests=0.0)},
                      accelerators=classes, placement={"unified": {"a100": 3}})
    wd, state = decide_workload(md, obs, None)
    mix = planner_mix(state)
    g = {c: class_goodput(md, classes[c], mix)["unified"] for c in classes}
    assert g["h100"] > 2 * g["a100"]
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed["a100"] == 3, "replicas stay where they run"
    needed = math.ceil(300.0 / g["h100"] - 1e-9)  # the planner's count, in H100 replicas
    assert wd.rule_replicas == {"unified": needed}
    assert placed["h100"] == math.ceil((needed * g["h100"] - 3 * g["a100"]) / g["h100"] - 1e-9)
    assert wd.decision.desired_replicas == {"unified": 3 + placed["h100"]}


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 400), st.lists(st.floats(0.5, 50), min_size=1, max_size=4),
       st.lists(st.integers(0, 6), min_size=4, max_size=4), st.lists(st.none() | st.integers(0, 8), min_size=4,
                                                                       max_size=4),
       st.integers(0, 3), st.integers(4, 40), st.booleans())
def test_place_pool_serves_the_capacity_within_room_and_bounds(capacity: float, rates: list[float], current: list[int],
                                                               rooms: list[int | None], lo: int, hi: int,
                                                               hold: bool) -> None:
    names = [f"c{i}" for i in range(len(rates))]
    g = dict(zip(names, rates))
    cur = dict(zip(names, current))
    room = dict(zip(names, rooms))
    out = place_pool(capacity, cur, names, g, room, (lo, hi), hold).replicas
    total = sum(out.values())
    served = sum(out[c] * g[c] for c in names)
    have = sum(cur[c] * g[c] for c in names)
    assert all(n >= 0 for n in out.values())
    assert total <= max(hi, sum(cur.values())) and total >= min(lo, total)
    if have < capacity and sum(cur.values()) <= hi:  # growing: running replicas stay, new ones only where there is room
        assert all(out[c] >= cur[c] for c in names) or total == hi, "only a pool at maxReplicas swaps"
        grown = {c: out[c] - cur[c] for c in names}
        assert all(room[c] is None or grown[c] <= room[c] for c in names) or total <= lo
        if total < hi and all(r is None for r in rooms):
            assert served >= capacity - 1e-6
    else:  # shrinking never adds, and keeps the capacity
        assert all(out[c] <= cur[c] for c in names) or total == lo
        if sum(cur.values()) <= hi and total > lo:
            assert served >= capacity - 1e-6


@given(st.integers(0, 200), st.dictionaries(st.sampled_from(("a", "b", "c")), st.integers(0, 50)),
       st.permutations(("a", "b", "c")))
def test_place_pool_by_count_is_the_old_split(desired: int, current: dict[str, int], order: list[str]) -> None:
    """Counted in replicas (every goodput 1), unlimited room, nothing starting: exactly
    tidal.policies.placement.place, so single-class workloads and non-planner policies keep it."""
    out = place_pool(float(desired), current, order, {c: 1.0 for c in order}, {c: None for c in order},
                     (0, 10_000), False)
    assert out.replicas == place(desired, current, order)


# --- class capacity: spill past a full class, and moves that pay for their cold start -----------------

H100_CHEAP = AcceleratorProfile("h100", 2.99, 989.0, 3350.0, 80 * GB)


def _busy(ready: int, rate: float, starting: int = 0) -> PoolObservation:
    return PoolObservation(ready_replicas=ready, starting_replicas=starting, request_rate_rps=rate,
                           running_requests=10.0, waiting_requests=0.0)


def test_a_full_class_spills_to_the_next_and_is_reported_by_name() -> None:
    md = _mixed(8, 1, ["l40s", "h100"])
    classes = {"h100": replace(H100_CHEAP, free_gpus=1), "l40s": replace(L40S, free_gpus=20)}
    obs = Observation(0.0, {"unified": _busy(1, 400.0)}, accelerators=classes, placement={"unified": {"h100": 1}})
    wd, _ = decide_workload(md, obs, None)
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed["h100"] == 2, "one more on the preferred class: its one free GPU"
    assert placed["l40s"] >= 1, "the rest spilled to the next feasible class"
    full = [r for r in wd.capacity_limits if r.code == REASON_CLASS_FULL]
    assert len(full) == 1 and "'h100'" in full[0].message and "1 GPU(s) free" in full[0].message
    # unknown free GPUs (no inventory yet) never spill: the H100 takes the load
    unknown = {"h100": H100_CHEAP, "l40s": L40S}
    wd, _ = decide_workload(md, replace(obs, accelerators=unknown), None)
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed["h100"] > 2 and placed["l40s"] == 0
    assert not [r for r in wd.capacity_limits if r.code == REASON_CLASS_FULL]


def test_every_class_full_starts_nothing_more_and_names_them_all() -> None:
    """A replica no class has room for would only wait Pending, and the pending-pod guard would then
    hold the pool's scale-up even after another class frees GPUs: it is not started."""
    md = _mixed(8, 1, ["l40s", "h100"])
    classes = {"h100": replace(H100_CHEAP, free_gpus=0), "l40s": replace(L40S, free_gpus=0)}
    obs = Observation(0.0, {"unified": _busy(1, 400.0)}, accelerators=classes, placement={"unified": {"h100": 1}})
    wd, _ = decide_workload(md, obs, None)
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed == {"l40s": 0, "h100": 1}
    assert {r.message.split("'")[1] for r in wd.capacity_limits if r.code == REASON_CLASS_FULL} == {"h100", "l40s"}


def test_free_gpus_are_shared_by_the_pools_and_counted_in_gpus_per_replica() -> None:
    placed = place_pool(6.0, {}, ["a", "b"], {"a": 1.0, "b": 1.0}, {"a": 4 // 2, "b": None}, (0, 10), False)
    assert placed.replicas == {"a": 2, "b": 4} and placed.full == (("a", 2, 6),)


def test_a_move_happens_only_when_the_saving_outlasts_the_cold_start() -> None:
    start = place_pool(30.0, {"worse": 3}, ["better", "worse"], {"better": 20.0, "worse": 10.0},
                       {"better": 8, "worse": None}, (1, 10), False)
    assert start.replicas == {"better": 0, "worse": 3}, "replicas stay where they run"
    cost = {"better": 3.0, "worse": 2.0}  # $/h per replica: 2 better (6/h) replace 3 worse (6/h)... no saving
    assert plan_move(start, 30.0, ["better", "worse"], {"better": 20.0, "worse": 10.0}, {"better": 8, "worse": None},
                     cost, 60.0, 10).move is None
    cost = {"better": 2.0, "worse": 2.0}  # 2 better (4/h) replace 3 worse (6/h): 2/h saved
    rates, room = {"better": 20.0, "worse": 10.0}, {"better": 8, "worse": None}
    moved = plan_move(start, 30.0, ["better", "worse"], rates, room, cost, 60.0, 10)
    assert moved.move == ("worse", "better", 3, 2) and moved.replicas == {"better": 2, "worse": 3}
    # the saving over an hour (2) against the new replicas' cost during the cold start (4/h x start)
    assert plan_move(start, 30.0, ["better", "worse"], rates, room, cost, 1700.0, 10).move is not None
    assert plan_move(start, 30.0, ["better", "worse"], rates, room, cost, 1900.0, 10).move is None
    assert plan_move(start, 30.0, ["better", "worse"], rates, {"better": 1, "worse": None}, cost, 60.0, 10).move is None, \
        "no room: a move never waits Pending"
    assert plan_move(start, 30.0, ["better", "worse"], rates, {"better": None, "worse": None}, cost, 60.0, 10).move is None, \
        "unknown room: no move"
    # once the new replicas run, the old ones are surplus and leave; while they start, they stay
    held = place_pool(30.0, moved.replicas, ["better", "worse"], rates, room, (1, 10), True)
    assert held.replicas == {"better": 2, "worse": 3}
    done = place_pool(30.0, moved.replicas, ["better", "worse"], rates, room, (1, 10), False)
    assert done.replicas == {"better": 2, "worse": 0}


def test_decide_workload_moves_spilled_replicas_back_when_the_preferred_class_has_room() -> None:
    """5 L40S replicas (5.5/h) serve 100 req/s that 2 H100s at 2.0/h (4.0/h) serve: 1.5/h saved over
    the hour pays 2 H100s through a predicted ~390 s cold start (0.43)."""
    md = _mixed(8, 1, ["l40s", "h100"])
    classes = {"h100": replace(H100_CHEAP, hourly_cost=2.0, free_gpus=8), "l40s": replace(L40S, free_gpus=8)}
    obs = Observation(0.0, {"unified": _busy(5, 100.0)}, accelerators=classes, placement={"unified": {"l40s": 5}})
    wd, _ = decide_workload(md, obs, None)
    assert [r for r in wd.decision.reasons if r.code == REASON_MOVE], wd.decision.reasons
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed == {"h100": 2, "l40s": 5}, "make before break: the L40S replicas stay this tick"
    # while the new ones start, the L40S replicas are kept; nothing moves again
    again = replace(obs, pools={"unified": _busy(5, 100.0, starting=placed["h100"])},
                    placement={"unified": {k: v for k, v in placed.items()}})
    wd2, _ = decide_workload(md, again, None)
    assert {k.accelerator: n for k, n in wd2.by_child.items()}["l40s"] == placed["l40s"]
    assert not [r for r in wd2.decision.reasons if r.code == REASON_MOVE]
    # once they run, the L40S replicas are surplus and leave
    done = replace(obs, pools={"unified": _busy(7, 100.0)}, placement={"unified": placed})
    wd3, _ = decide_workload(md, done, None)
    assert {k.accelerator: n for k, n in wd3.by_child.items()} == {"h100": 2, "l40s": 0}
    # at 2.99/h per H100 the 2 H100s (5.98/h) cost more than the 5 L40S replicas they would replace: no move
    dear = replace(obs, accelerators={**classes, "h100": replace(H100_CHEAP, free_gpus=8)})
    assert not [r for r in decide_workload(md, dear, None)[0].decision.reasons if r.code == REASON_MOVE]



def test_pack_places_like_cheapest() -> None:
    """``pack`` ranks as ``cheapest`` does: tidal sets no packing of its own (docs/placement.md)."""
    classes = {"l4": L4, "l40s": L40S, "a100": A100}
    cheapest = class_preference(_mixed(8, 1, ["l4", "l40s", "a100"]), classes, planner_mix(None))
    pack = class_preference(_mixed(8, 1, ["l4", "l40s", "a100"],
                                   placement={"acceleratorClasses": ["l4", "l40s", "a100"], "strategy": "pack"}),
                            classes, planner_mix(None))
    assert pack.preference == cheapest.preference and pack.cost_per_goodput == cheapest.cost_per_goodput


@pytest.mark.parametrize("metrics", [False, True])
def test_a_pool_split_over_classes_is_held_as_it_runs(metrics: bool) -> None:
    """Missing metrics hold a pool; so does the planner's scale-down window. Replicas of other classes
    are shown to the planner in (rounded) preferred-class units, but a hold keeps every class's count
    exactly: never a scale-down on missing metrics, never a replica added or removed by rounding."""
    md = _mixed(8, 1, ["l40s", "h100"])
    classes = {"h100": replace(H100_CHEAP, free_gpus=8), "l40s": replace(L40S, free_gpus=8)}
    state = None
    for t, rate in ((0.0, 100.0), (15.0, 60.0)):  # the second tick is inside the scale-down window
        obs = Observation(t, {"unified": _busy(4, rate)}, metrics_available=metrics or t == 0.0,
                          accelerators=classes, placement={"unified": {"h100": 1, "l40s": 3}})
        wd, state = decide_workload(md, obs, state)
    assert {k.accelerator: n for k, n in wd.by_child.items()} == {"h100": 1, "l40s": 3}
    assert wd.decision.desired_replicas == {"unified": 4}


# --- the last fraction, surplus, the room a move may take, classes the correction rules out -------------

GRAIN_RATES = {"h100": 22.0, "l40s": 4.5, "a100": 9.0}
GRAIN_COST = {"h100": 2.99, "l40s": 1.10, "a100": 1.79}
GRAIN_ORDER = ["h100", "a100", "l40s"]  # by cost per goodput: 0.136, 0.199, 0.244 $/h per req/s


def test_the_last_fraction_of_a_replica_stays_on_the_preferred_class() -> None:
    """24 req/s: two H100s, not one H100 and an L40S for the other 2 req/s, which would be cheaper
    by the profiles but mixes a slower class into the pool's learnt correction (docs/placement.md)."""
    room = {c: None for c in GRAIN_ORDER}
    placed = place_pool(24.0, {}, GRAIN_ORDER, GRAIN_RATES, room, (1, 10), False, GRAIN_COST)
    assert placed.replicas == {"h100": 2, "a100": 0, "l40s": 0}
    assert plan_move(placed, 24.0, GRAIN_ORDER, GRAIN_RATES, {"h100": 4, "a100": 4, "l40s": 4},
                     GRAIN_COST, 120.0, 10).move is None


def test_surplus_leaves_where_it_saves_the_most() -> None:
    """An H100 and an L40S that both turned surplus (24 -> 10 req/s): the H100 leaves first, it saves
    the most per hour, as long as what stays serves the capacity; not while replicas start."""
    room = {"h100": 4, "a100": 4, "l40s": 4}
    running = {"h100": 1, "a100": 1, "l40s": 1}
    assert place_pool(9.0, running, GRAIN_ORDER, GRAIN_RATES, room, (1, 10), True, GRAIN_COST).replicas == running
    done = place_pool(9.0, running, GRAIN_ORDER, GRAIN_RATES, room, (1, 10), False, GRAIN_COST)
    assert done.replicas == {"h100": 0, "a100": 1, "l40s": 0}


@settings(max_examples=150, deadline=None)
@given(st.floats(1, 120), st.lists(st.integers(0, 5), min_size=3, max_size=3),
       st.lists(st.none() | st.integers(0, 6), min_size=3, max_size=3), st.integers(4, 30),
       st.floats(10, 3000))
def test_split_and_move_never_start_more_than_a_class_has_room_for(capacity: float, current: list[int],
                                                                   rooms: list[int | None], hi: int,
                                                                   cold_start_s: float) -> None:
    """The split and the move together start at most ``room`` replicas on a class: a move that reused
    the room the split already took would leave a replica Pending, and the pending-pod guard would
    then hold the pool's scale-up (seen on the placement bench's code trace before the fix)."""
    cur = dict(zip(GRAIN_ORDER, current))
    room = dict(zip(GRAIN_ORDER, rooms))
    if sum(cur.values()) == 0 or sum(cur.values()) > hi:
        return
    placed = place_pool(capacity, cur, GRAIN_ORDER, GRAIN_RATES, room, (1, hi), False, GRAIN_COST)
    left = {c: None if r is None else r - max(0, placed.replicas[c] - cur[c]) for c, r in room.items()}
    assert all(r is None or r >= 0 for r in left.values())
    moved = plan_move(placed, capacity, GRAIN_ORDER, GRAIN_RATES, left, GRAIN_COST, cold_start_s, hi)
    for c in GRAIN_ORDER:
        assert room[c] is None or moved.replicas[c] - cur[c] <= room[c], (c, cur, placed, moved)
    assert sum(moved.replicas.values()) <= hi


def test_decide_workload_moves_only_into_the_room_the_split_left() -> None:
    """One H100 free and a load that needs more: the split takes the free H100 and spills the rest;
    no move then asks for another H100 (it would wait Pending for good)."""
    md = _mixed(8, 1, ["l40s", "a100", "h100"])
    h100 = replace(H100_CHEAP, hourly_cost=2.0)  # cheap enough that an H100 for the spilled rest would pay
    classes = {"h100": replace(h100, free_gpus=1), "a100": replace(A100, free_gpus=8),
               "l40s": replace(L40S, free_gpus=4)}
    g = class_goodput(md, h100, planner_mix(None))["unified"]
    for share in (2.2, 2.5, 2.8):  # the rest, past two H100s, costs more on A100s or L40Ss than on an H100
        obs = Observation(0.0, {"unified": _busy(1, share * g)}, accelerators=classes,
                          placement={"unified": {"h100": 1}})
        wd, _ = decide_workload(md, obs, None)
        placed = {k.accelerator: n for k, n in wd.by_child.items()}
        assert placed["h100"] == 2 and placed["a100"] + placed["l40s"] >= 1, (share, placed)
        assert not [r for r in wd.decision.reasons if r.code == REASON_MOVE], share


def test_a_class_the_correction_rules_out_gets_no_replica_and_the_rest_still_split_by_goodput() -> None:
    """A class whose goodput is 0 at the learnt correction (an L4 whose corrected decode misses the
    TPOT) gets no new replica; the others are still sized by goodput, not by count."""
    rates = {"h100": 22.0, "l40s": 4.5, "l4": 0.0}
    order, room, cost = ["h100", "l40s", "l4"], {c: None for c in rates}, {"h100": 2.99, "l40s": 1.10, "l4": 0.80}
    out = place_pool(30.0, {"l4": 2}, order, rates, room, (1, 10), False, cost)
    assert out.replicas == {"h100": 2, "l40s": 0, "l4": 2}, "make before break: the L4s stay this tick"
    done = place_pool(30.0, out.replicas, order, rates, room, (1, 10), False, cost)
    assert done.replicas == {"h100": 2, "l40s": 0, "l4": 0}, "the L4s serve nothing the SLO counts: surplus"


# --- multi-GPU replicas: free GPUs count per node ------------------------------------------------------

def _tp(gpus: int, classes: list[str]) -> ModelDeployment:
    md = _mixed(8, gpus, classes)
    spec = md.model_dump(by_alias=True, exclude_none=True)["spec"]
    spec["pools"]["unified"]["maxReplicas"] = 40
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": spec})


def test_eight_free_gpus_one_per_node_host_no_two_gpu_replica() -> None:
    md = _tp(2, ["l40s", "h100"])
    spread = replace(H100_CHEAP, free_gpus=8, free_by_node=(1,) * 8)
    classes = {"h100": spread, "l40s": replace(L40S, free_gpus=16, free_by_node=(8, 8))}
    obs = Observation(0.0, {"unified": _busy(1, 400.0)}, accelerators=classes, placement={"unified": {"h100": 1}})
    wd, _ = decide_workload(md, obs, None)
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed["h100"] == 1, "no node has 2 free H100s: nothing more starts there"
    assert placed["l40s"] >= 1, "the rest spilled to the class with whole nodes free"
    full = [r for r in wd.capacity_limits if r.code == REASON_CLASS_FULL and "'h100'" in r.message]
    assert full and "8 GPU(s) free" in full[0].message and "at most 1 on one node" in full[0].message
    # without a per-node count (an older status) the class's free GPUs count as one node's
    lumped = {**classes, "h100": replace(spread, free_by_node=None)}
    wd, _ = decide_workload(md, replace(obs, accelerators=lumped), None)
    assert {k.accelerator: n for k, n in wd.by_child.items()}["h100"] > 1


@settings(max_examples=120, deadline=None)
@given(st.sampled_from([1, 2, 4, 8]), st.lists(st.integers(0, 8), min_size=1, max_size=6),
       st.lists(st.integers(0, 8), min_size=1, max_size=6), st.floats(1.0, 2000.0), st.integers(1, 4))
def test_new_replicas_fit_on_one_node_each(gpus: int, h100_nodes: list[int], l40s_nodes: list[int], rate: float,
                                           ready: int) -> None:
    """Whatever the load, the core starts on a class at most ``sum(free // gpusPerReplica)`` over its
    nodes, counting both pools' share and any move: a replica's GPUs must sit on one node."""
    md = _tp(gpus, ["l40s", "h100"])
    classes = {"h100": replace(H100_CHEAP, hourly_cost=2.0, free_gpus=sum(h100_nodes), free_by_node=tuple(h100_nodes)),
               "l40s": replace(L40S, free_gpus=sum(l40s_nodes), free_by_node=tuple(l40s_nodes))}
    obs = Observation(0.0, {"unified": _busy(ready, rate)}, accelerators=classes,
                      placement={"unified": {"h100": ready}})
    wd, _ = decide_workload(md, obs, None)
    placed = {k.accelerator: n for k, n in wd.by_child.items()}
    assert placed.get("h100", 0) - ready <= sum(f // gpus for f in h100_nodes)
    assert placed.get("l40s", 0) <= sum(f // gpus for f in l40s_nodes)


@given(st.lists(st.integers(0, 16), max_size=8), st.sampled_from([1, 2, 4, 8]), st.integers(0, 10))
def test_taking_replicas_uses_whole_blocks_on_one_node(nodes: list[int], gpus: int, k: int) -> None:
    after = take_replicas(nodes, gpus, k)
    placed = min(k, replicas_fitting(nodes, gpus))
    assert sum(after) == sum(nodes) - placed * gpus
    assert replicas_fitting(after, gpus) == replicas_fitting(nodes, gpus) - placed


def test_each_class_keeps_its_replicas_through_the_scale_down_window() -> None:
    """The split follows every tick's load and goodput estimate; a class's replicas leave only after
    ``scaleDownDelay`` (5 min by default), as the planner's count does: a residual L40S is not
    stopped and restarted with the load. Never more than run, never past maxReplicas."""
    from tidal.core.modeldeployment import _stabilized_split
    from tidal.core.state import CoreState

    md, state = _mixed(8, 1, ["l40s", "h100"]), CoreState()
    running = {"h100": 1, "l40s": 2}

    def held(t: float, wanted: dict[str, int], hi: int = 10) -> dict[str, int]:
        return _stabilized_split(md, state, "unified", t, PoolPlacement(wanted), running, hi).replicas

    assert held(0.0, {"h100": 1, "l40s": 2}) == {"h100": 1, "l40s": 2}
    assert held(15.0, {"h100": 1, "l40s": 1}) == {"h100": 1, "l40s": 2}, "recommended 2 within the window"
    assert held(200.0, {"h100": 1, "l40s": 0}) == {"h100": 1, "l40s": 2}
    assert held(200.0, {"h100": 1, "l40s": 0}, hi=2) == {"h100": 1, "l40s": 1}, "within maxReplicas"
    assert held(301.0, {"h100": 1, "l40s": 0}) == {"h100": 1, "l40s": 1}, "the 2 left the window; 1 at 15 s did not"
    assert held(500.0, {"h100": 1, "l40s": 0}) == {"h100": 1, "l40s": 0}
    running = {"h100": 1, "l40s": 0}
    assert held(510.0, {"h100": 1, "l40s": 0}) == {"h100": 1, "l40s": 0}, "never more than runs"
