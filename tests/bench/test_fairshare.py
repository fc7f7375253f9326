"""Fair-share bench on a synthetic contended pool (independent of ../shared)."""

from __future__ import annotations

import numpy as np
import pytest

from tidal.bench.fairshare import (ALLOCATORS, Scenario, Tenant, fair_shares_of,
                                   first_come_first_served, jain, markdown, proportional, run,
                                   run_allocator)


def _scenario(seed: int = 3, minutes: int = 240) -> Scenario:
    """Six tenants with drifting, noisy demand; the pool holds 60 % of the peak."""
    rng = np.random.default_rng(seed)
    base = np.array([14, 10, 8, 8, 6, 6])
    wave = 1 + 0.5 * np.sin(np.arange(minutes)[:, None] / 20 + np.arange(6))
    demand = np.maximum(0, np.round(base * wave + rng.normal(0, 1.5, (minutes, 6)))).astype(int)
    capacity = int(0.6 * demand.sum(axis=1).max())
    weights = (4.0, 3.0, 2.0, 1.0, 1.0, 1.0)
    guarantees = (4, 0, 0, 0, 3, 0)
    tenants = tuple(Tenant(f"t{i}", w, g, (i,)) for i, (w, g) in enumerate(zip(weights,
                                                                                 guarantees)))
    return Scenario(tenants, demand, capacity, 0.1)


def test_tidal_meets_the_targets_where_the_naive_allocators_do_not() -> None:
    outcomes = {o.name: o for o in run(_scenario())}
    tidal, prop = outcomes["tidal (gentle)"], outcomes["proportional"]
    assert tidal.contended_minutes > 0
    assert tidal.jain_mean >= 0.95
    assert tidal.guarantee_violations == 0
    assert tidal.forced_moves_per_hour < prop.forced_moves_per_hour
    assert prop.guarantee_violations > 0               # it ignores guarantees
    assert outcomes["fcfs"].forced_moves_per_hour == 0  # it never preempts
    for o in outcomes.values():                        # all are work-conserving here
        assert o.served_fraction == pytest.approx(1.0)


def test_naive_allocators_respect_capacity_and_demand() -> None:
    tenants = _scenario().tenants
    grants, _ = proportional(10, tenants, [9, 9, 3, 0, 1, 4], [0] * 6, {})
    assert sum(grants) == 10 and all(g <= d for g, d in zip(grants, [9, 9, 3, 0, 1, 4]))
    held = [5, 0, 0, 0, 0, 5]
    grants, state = first_come_first_served(10, tenants, [6, 4, 0, 0, 0, 5], held, {})
    assert grants == [5, 0, 0, 0, 0, 5]                # nobody is preempted
    grants, _ = first_come_first_served(10, tenants, [6, 4, 0, 0, 0, 2], grants, state)
    assert grants == [6, 2, 0, 0, 0, 2]                # the first unmet demand is served first


def test_jain_is_one_at_the_fair_share_and_falls_away_from_it() -> None:
    tenants = _scenario().tenants
    demand = [20, 20, 20, 20, 20, 20]
    fair = fair_shares_of(30, tenants, demand)
    assert sum(fair) == pytest.approx(30)
    assert fair[0] == pytest.approx(4 + 4 * 23 / 12)   # guarantee, then weight 4 of 12
    assert jain(fair, fair) == pytest.approx(1.0)
    assert jain([30, 0, 0, 0, 0, 0], fair) < 0.5


def test_a_broken_allocator_is_caught() -> None:
    def greedy(capacity, tenants, demand, held, state):
        return [d for d in demand], state
    with pytest.raises(AssertionError, match="greedy"):
        run_allocator(_scenario(), "greedy", greedy)


def test_the_report_lists_every_allocator_and_tenant() -> None:
    scenario = _scenario(minutes=30)
    text = markdown(scenario, run(scenario))
    assert all(f"| {name} |" in text for name in ALLOCATORS)
    assert all(f"| {t.name} |" in text for t in scenario.tenants)
