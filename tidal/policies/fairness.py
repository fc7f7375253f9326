"""Weighted max-min sharing of scarce GPUs between tenants, with guarantees, caps, deficit counters
and hysteresis.

Why this shape: guaranteed minimums come first (a tenant's contract), the rest is divided by
weighted max-min (water-filling), the classic fair allocation that no tenant can improve without
hurting one that has less. Integer rounding hands leftover GPUs to the tenants that were short-changed
most in earlier ticks (deficit counters, as in deficit round robin), and ``gentle`` rebalancing lets a
tenant keep a GPU above its fair share until someone actually needs it back, so replicas are not
reshuffled every tick (the locality argument of deficit-based longest-prefix-match scheduling).
Pure: the FairSharePolicy controller and the simulator call :func:`allocate` the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence

DEFICIT_DECAY = 0.9
"""Per-tick decay of owed GPUs: old debts fade in ~10 ticks so a long-gone shortfall cannot dominate."""
DEFAULT_HYSTERESIS_GPUS = 1
"""GPUs a tenant may keep above its fair share under gentle rebalancing (one replica's worth)."""
DEFICIT_FORCE_THRESHOLD_GPUS = 2.0
"""Once any tenant is owed this many GPU-ticks, hysteresis is suspended so it is paid back."""


@dataclass(frozen=True)
class TenantDemand:
    """One tenant's claim this tick."""

    name: str
    weight: float
    demand_gpus: int
    guaranteed_gpus: int = 0
    max_gpus: int | None = None
    held_gpus: int = 0


@dataclass(frozen=True)
class TenantGrant:
    name: str
    demand_gpus: int
    fair_gpus: int
    grant_gpus: int
    deficit: float


@dataclass(frozen=True)
class FairShareReason:
    code: str
    message: str


@dataclass(frozen=True)
class Allocation:
    capacity_gpus: int
    grants: tuple[TenantGrant, ...]
    fairness_index: float | None
    reasons: tuple[FairShareReason, ...] = ()
    deficits: Mapping[str, float] = field(default_factory=dict)
    """State for the next tick."""

    def grant_of(self, name: str) -> int:
        return next((g.grant_gpus for g in self.grants if g.name == name), 0)


def water_fill(amount: float, needs: Sequence[float], weights: Sequence[float]) -> list[float]:
    """Weighted max-min split of ``amount`` over ``needs``: x_i = min(need_i, w_i * level)."""
    alloc = [0.0] * len(needs)
    active = [i for i, n in enumerate(needs) if n > 0]
    remaining = float(amount)
    while active and remaining > 1e-9:
        total_weight = sum(weights[i] for i in active)
        level = remaining / total_weight
        saturated = [i for i in active if needs[i] - alloc[i] <= weights[i] * level + 1e-12]
        if not saturated:
            for i in active:
                alloc[i] += weights[i] * level
            break
        for i in saturated:
            remaining -= needs[i] - alloc[i]
            alloc[i] = float(needs[i])
        active = [i for i in active if i not in saturated]
    return alloc


def _round(shares: Sequence[float], caps: Sequence[int], budget: int, priority: Sequence[float]) -> list[int]:
    """Integer grants that sum to at most ``budget``: floors, then leftovers by fractional part + priority."""
    grants = [min(int(math.floor(s + 1e-9)), c) for s, c in zip(shares, caps)]
    leftover = min(budget - sum(grants), int(round(sum(shares))) - sum(grants))
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - grants[i]) - priority[i], i))
    for i in order:
        if leftover <= 0:
            break
        if grants[i] < caps[i] and shares[i] - grants[i] > 1e-9:
            grants[i] += 1
            leftover -= 1
    return grants


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index (1 = equal, 1/n = one takes all); None when nothing is allocated."""
    if not values or sum(values) <= 0:
        return None
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def allocate(
    capacity_gpus: int,
    tenants: Sequence[TenantDemand],
    deficits: Mapping[str, float] | None = None,
    rebalance: Literal["gentle", "immediate"] = "gentle",
    hysteresis_gpus: int = DEFAULT_HYSTERESIS_GPUS,
) -> Allocation:
    """Grants per tenant that never exceed capacity, demand or cap."""
    deficits = dict(deficits or {})
    capacity = max(0, int(capacity_gpus))
    needs = [max(0, min(t.demand_gpus, t.max_gpus if t.max_gpus is not None else t.demand_gpus)) for t in tenants]
    weights = [t.weight for t in tenants]
    owed = [max(0.0, deficits.get(t.name, 0.0)) for t in tenants]
    reasons: list[FairShareReason] = []

    guarantees = [min(t.guaranteed_gpus, n) for t, n in zip(tenants, needs)]
    if sum(guarantees) > capacity:
        reasons.append(FairShareReason("GuaranteesExceedCapacity",
                                       f"guaranteed demand {sum(guarantees)} GPUs exceeds capacity {capacity}; guarantees shared by weight"))
        guarantees = _round(water_fill(capacity, guarantees, weights), guarantees, capacity, owed)
    rest = water_fill(capacity - sum(guarantees), [n - g for n, g in zip(needs, guarantees)], weights)
    shares = [g + r for g, r in zip(guarantees, rest)]
    fair = _round(shares, needs, capacity, owed)
    grants = list(fair)

    force = any(d >= DEFICIT_FORCE_THRESHOLD_GPUS for d in owed)
    if rebalance == "gentle" and not force and hysteresis_gpus > 0:
        grants = _keep_held(tenants, needs, fair, guarantees, hysteresis_gpus)
        if grants != fair:
            reasons.append(FairShareReason("Hysteresis", "kept GPUs in place within the hysteresis band"))
    elif force and rebalance == "gentle":
        reasons.append(FairShareReason("DeficitRepaid", "a tenant is owed GPUs; hysteresis suspended this tick"))

    new_deficits = {
        t.name: DEFICIT_DECAY * deficits.get(t.name, 0.0) + (f - g)
        for t, f, g in zip(tenants, fair, grants)
    }
    result = tuple(
        TenantGrant(t.name, n, f, g, new_deficits[t.name]) for t, n, f, g in zip(tenants, needs, fair, grants)
    )
    index = jain_index([g.grant_gpus / t.weight for g, t in zip(result, tenants) if g.demand_gpus > 0])
    return Allocation(capacity, result, index, tuple(reasons), new_deficits)


def _keep_held(
    tenants: Sequence[TenantDemand], needs: Sequence[int], fair: Sequence[int],
    guarantees: Sequence[int], band: int,
) -> list[int]:
    """Let over-holders keep up to ``band`` GPUs above fair, paid for by slowing growers (never below
    what they hold or are guaranteed). Total stays equal to the fair total, so capacity holds."""
    grants = list(fair)
    keep_extra = [max(0, min(t.held_gpus, needs[i], fair[i] + band) - fair[i]) for i, t in enumerate(tenants)]
    growth_room = [max(0, fair[i] - max(t.held_gpus, guarantees[i])) for i, t in enumerate(tenants)]
    budget = min(sum(keep_extra), sum(growth_room))
    if budget == 0:
        return grants
    taken = 0
    for i in sorted(range(len(tenants)), key=lambda i: -growth_room[i]):
        take = min(growth_room[i], budget - taken)
        grants[i] -= take
        taken += take
    given = 0
    for i in sorted(range(len(tenants)), key=lambda i: -keep_extra[i]):
        add = min(keep_extra[i], budget - given)
        grants[i] += add
        given += add
    return grants
