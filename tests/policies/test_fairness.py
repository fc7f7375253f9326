"""Fair-share allocation: conservation, bounds, guarantees, work conservation, monotonicity, hysteresis."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.fairness import (TenantDemand, WorkloadClaim, allocate, jain_index, split_tenant_grant,
                                    water_fill, weighted_max_min)

tenant = st.builds(
    TenantDemand,
    name=st.just(""),
    weight=st.floats(0.1, 10),
    demand_gpus=st.integers(0, 40),
    guaranteed_gpus=st.integers(0, 8),
    max_gpus=st.one_of(st.none(), st.integers(0, 40)),
    held_gpus=st.integers(0, 40),
)
tenants = st.lists(tenant, min_size=1, max_size=6).map(
    lambda ts: [TenantDemand(f"t{i}", t.weight, t.demand_gpus, t.guaranteed_gpus, t.max_gpus, t.held_gpus) for i, t in enumerate(ts)]
)
mode = st.sampled_from(["gentle", "immediate"])


def need(t: TenantDemand) -> int:
    return min(t.demand_gpus, t.max_gpus if t.max_gpus is not None else t.demand_gpus)


@given(st.integers(0, 100), tenants, mode)
def test_grants_never_exceed_capacity_demand_or_cap(capacity, ts, rebalance) -> None:
    result = allocate(capacity, ts, rebalance=rebalance)
    assert sum(g.grant_gpus for g in result.grants) <= capacity
    for t, g in zip(ts, result.grants):
        assert 0 <= g.grant_gpus <= need(t)


@given(st.integers(0, 100), tenants)
def test_work_conserving(capacity, ts) -> None:
    """No GPU idles while someone wants it (immediate mode; gentle only moves GPUs between tenants)."""
    for rebalance in ("immediate", "gentle"):
        result = allocate(capacity, ts, rebalance=rebalance)
        assert sum(g.grant_gpus for g in result.grants) == min(capacity, sum(need(t) for t in ts))


@given(st.integers(0, 100), tenants)
def test_guarantees_hold_when_they_fit(capacity, ts) -> None:
    owed = [min(t.guaranteed_gpus, need(t)) for t in ts]
    if sum(owed) <= capacity:
        for rebalance in ("immediate", "gentle"):
            result = allocate(capacity, ts, rebalance=rebalance)
            for o, g in zip(owed, result.grants):
                assert g.grant_gpus >= o


@given(st.integers(1, 60), tenants, st.floats(1.0, 5.0))
def test_more_weight_never_means_fewer_gpus(capacity, ts, factor) -> None:
    before = allocate(capacity, ts, rebalance="immediate").grants[0].grant_gpus
    heavier = [TenantDemand(ts[0].name, ts[0].weight * factor, ts[0].demand_gpus, ts[0].guaranteed_gpus, ts[0].max_gpus, ts[0].held_gpus), *ts[1:]]
    after = allocate(capacity, heavier, rebalance="immediate").grants[0].grant_gpus
    assert after >= before      # the divisor method is population monotone: no rounding slack


def test_weighted_split_of_contended_capacity() -> None:
    ts = [TenantDemand("a", 3, 100), TenantDemand("b", 1, 100)]
    result = allocate(40, ts, rebalance="immediate")
    assert [g.grant_gpus for g in result.grants] == [30, 10]


def test_guarantee_then_weights() -> None:
    ts = [TenantDemand("chat", 1, 100, guaranteed_gpus=20), TenantDemand("batch", 1, 100)]
    assert [g.grant_gpus for g in allocate(30, ts, rebalance="immediate").grants] == [25, 5]


def test_small_demand_is_fully_met_and_rest_goes_to_others() -> None:
    ts = [TenantDemand("a", 1, 3), TenantDemand("b", 1, 100), TenantDemand("c", 2, 100)]
    assert [g.grant_gpus for g in allocate(33, ts, rebalance="immediate").grants] == [3, 10, 20]


def test_gentle_keeps_a_replica_in_place_then_repays() -> None:
    ts = [TenantDemand("a", 1, 10, held_gpus=6), TenantDemand("b", 1, 10, held_gpus=4)]
    first = allocate(10, ts, rebalance="gentle")
    assert [g.grant_gpus for g in first.grants] == [6, 4]  # fair is 5/5, a keeps one within the band
    assert first.deficits["b"] == 1
    # b is owed 1, 1.9, 2.71 GPU-ticks (decay 0.9): the third debt crosses the threshold of 2,
    # so the fourth tick repays it; until then a keeps its replica.
    deficits = first.deficits
    history = [[g.grant_gpus for g in first.grants]]
    for _ in range(5):
        step = allocate(10, ts, deficits=deficits, rebalance="gentle")
        deficits = step.deficits
        history.append([g.grant_gpus for g in step.grants])
    assert history[:3] == [[6, 4]] * 3
    assert history[3] == [5, 5]


def test_water_fill_and_jain() -> None:
    assert water_fill(10, [2, 100, 100], [1, 1, 1]) == [2, 4, 4]
    assert jain_index([1, 1, 1]) == 1.0
    assert abs(jain_index([1, 0, 0]) - 1 / 3) < 1e-12
    assert jain_index([]) is None


@given(st.integers(0, 80), st.lists(st.tuples(st.integers(0, 30), st.floats(0.1, 10)),
                                    min_size=1, max_size=8))
def test_integer_max_min_no_tenant_could_take_a_gpu_from_a_richer_one(capacity, claims) -> None:
    """The divisor method's defining property: a tenant still short of its need never has more
    than one GPU-per-weight less than anyone else, counting the GPU it would get next."""
    needs = [n for n, _ in claims]
    weights = [w for _, w in claims]
    grants = weighted_max_min(capacity, needs, weights)
    assert sum(grants) == min(capacity, sum(needs))
    assert all(0 <= g <= n for g, n in zip(grants, needs))
    for i, gi in enumerate(grants):
        for j, gj in enumerate(grants):
            if gj < needs[j] and gi > 0:
                assert gi / weights[i] <= (gj + 1) / weights[j] + 1e-9


@given(st.integers(0, 80), st.lists(st.tuples(st.integers(0, 30), st.floats(0.1, 10),
                                              st.integers(0, 10)), min_size=1, max_size=8),
       st.integers(0, 7), st.floats(1.0, 8.0))
def test_a_heavier_weight_never_gets_fewer_gpus_even_with_guarantees(capacity, claims, who,
                                                                     factor) -> None:
    who = who % len(claims)
    needs = [n for n, _, _ in claims]
    weights = [w for _, w, _ in claims]
    floors = [g for _, _, g in claims]
    before = weighted_max_min(capacity, needs, weights, floors=floors)[who]
    heavier = [w * factor if i == who else w for i, w in enumerate(weights)]
    assert weighted_max_min(capacity, needs, heavier, floors=floors)[who] >= before


def test_bad_weights_are_refused() -> None:
    import pytest
    with pytest.raises(ValueError, match="weights"):
        weighted_max_min(4, [2, 2], [1.0, 0.0])


claims = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 3), st.floats(0.1, 5)),
                  min_size=1, max_size=6)


@given(st.integers(0, 60), claims)
def test_priorities_inside_a_tenant_are_strict(grant, cs) -> None:
    workloads = [WorkloadClaim(f"w{i}", d, p, w) for i, (d, p, w) in enumerate(cs)]
    split = split_tenant_grant(grant, workloads)
    assert sum(split.values()) == min(grant, sum(w.demand_gpus for w in workloads))
    for w in workloads:
        assert 0 <= split[w.name] <= w.demand_gpus
        if split[w.name] > 0:      # a lower priority gets GPUs only when every higher one is full
            assert all(split[v.name] == v.demand_gpus for v in workloads if v.priority > w.priority)


def test_fairness_index_is_one_when_grants_equal_the_fair_shares() -> None:
    # a small tenant wanting less than its share is not "treated unfairly" by the index
    ts = [TenantDemand("a", 1, 3), TenantDemand("b", 1, 100), TenantDemand("c", 2, 100)]
    result = allocate(33, ts, rebalance="immediate")
    assert result.fairness_index == 1.0
    skewed = allocate(10, [TenantDemand("a", 1, 10, held_gpus=6), TenantDemand("b", 1, 10, held_gpus=4)])
    assert skewed.fairness_index is not None and skewed.fairness_index < 1.0   # hysteresis: 6/4


def test_floors_come_before_every_tier_even_a_negative_one() -> None:
    # tenant 1's guarantee of 3 is served before tenant 0's higher-priority (lower) tier
    assert weighted_max_min(4, [10, 10], [1.0, 1.0], floors=[0, 3], tiers=[-5, 0]) == [1, 3]
    assert weighted_max_min(4, [10, 10], [1.0, 1.0], tiers=[-5, 0]) == [4, 0]
