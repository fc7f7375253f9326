"""Weighted max-min sharing of scarce GPUs between tenants, with guarantees, caps, priorities,
deficit counters and hysteresis; and a tenant's grant divided between its workloads.

Why this shape:

- **Guarantees first, then weighted max-min** (:func:`weighted_max_min`). A tenant's guaranteed
  GPUs are its contract (Kueue's ``nominalQuota``, YARN's guaranteed queue capacity); what is left
  is divided by weighted max-min -- the allocation no tenant can improve without taking from one
  that has less per unit of weight (Bertsekas & Gallager, *Data Networks*, sec. 6.5.2) -- computed
  in whole GPUs by the divisor method, which makes a tenant's grant monotone in its weight.
- **Deficit counters** (deficit round robin, Shreedhar & Varghese, SIGCOMM'95): a tenant held below
  its fair share accumulates a debt (decaying by ``DEFICIT_DECAY`` per tick); debts break ties in
  its favour and, past ``DEFICIT_FORCE_THRESHOLD_GPUS``, suspend hysteresis so the debt is repaid.
- **Hysteresis** (``gentle``): a tenant may keep up to ``hysteresis_gpus`` GPUs above its fair share
  until someone is owed enough, so running replicas are not reshuffled on every small change of
  demand -- the locality argument of deficit-based longest-prefix-match scheduling (DLPM, Cao et
  al., "Locality-aware Fair Scheduling in LLM Serving", arXiv:2501.14312).
- **Work conservation**: every GPU someone wants is granted (``sum(grants) == min(capacity,
  sum(needs))``); an idle tenant's share is lent and comes back on the tick its demand returns
  (all but the hysteresis band at once, the band once the debt crosses the threshold).
- **Priorities inside a tenant** (:func:`split_tenant_grant`): a tenant's grant goes to its
  workloads by strict priority (higher ``spec.tenant.priority`` first, as Kubernetes pod priority
  orders PriorityClasses), and by weighted max-min on ``spec.tenant.weight`` within one priority.
- **The cap on a decision** is the decision core's (tidal/core/grant.py): a workload's replicas
  cut to fit its share of the tenant's grant.

Pure: the FairSharePolicy controller, the decision core and the fair-share bench call these the
same way.
"""

from __future__ import annotations

import heapq
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


def weighted_max_min(
    capacity: int,
    needs: Sequence[int],
    weights: Sequence[float],
    *,
    floors: Sequence[int] | None = None,
    tiers: Sequence[int] | None = None,
    tiebreak: Sequence[float] | None = None,
) -> list[int]:
    """Integer weighted max-min: whole GPUs, never more than ``needs``, at most ``capacity`` in all.

    Every tenant's ``s``-th GPU (0-based) above its floor has the key ``(tier, (s + 1) / weight)``;
    its first ``floors[i]`` GPUs come before every tier, ordered by ``(s + 1) / weight``
    (guarantees come first and, when they do not all fit, are themselves shared by weight). The ``min(capacity, sum(needs))``
    smallest keys win; ties go to the larger ``tiebreak`` (e.g. GPUs owed), then to the earlier
    tenant. Within a tier this is the sequential divisor method of apportionment (D'Hondt /
    Jefferson: the next unit goes to the largest ``weight / (units + 1)``), whose result is the
    integer weighted max-min fair allocation (Bertsekas & Gallager, *Data Networks*, 2nd ed.,
    sec. 6.5.2, water-filling, here in whole units). Divisor methods are the apportionments that
    are *population monotone* (Balinski & Young, *Fair Representation*, 1982): raising one
    tenant's weight lowers every one of its keys and leaves the others' alone, so its grant can
    only grow -- the property the old "floor, then largest remainder" rounding lacked. The price
    (Balinski & Young's impossibility theorem) is that a grant may differ from the fractional
    water-fill share by more than one GPU; what holds instead is that no tenant short of its need
    has fewer GPUs per weight, counting its next one, than any other has.
    ``tiers`` (lower served first) give strict priority between groups, as Kubernetes pod
    priority does between PriorityClasses. Cost: O(capacity x log n).
    """
    n = len(needs)
    floors = [0] * n if floors is None else list(floors)
    tiers = [0] * n if tiers is None else list(tiers)
    tiebreak = [0.0] * n if tiebreak is None else list(tiebreak)
    if not (len(weights) == len(floors) == len(tiers) == len(tiebreak) == n):
        raise ValueError("needs, weights, floors, tiers and tiebreak need one value per tenant")
    if any(w <= 0 for w in weights):
        raise ValueError(f"weights must be > 0, got {list(weights)}")
    cap = [max(0, int(x)) for x in needs]
    floor = [min(max(0, int(f)), c) for f, c in zip(floors, cap)]
    grants = [0] * n

    def key(i: int) -> tuple:
        s = grants[i]
        if s < floor[i]:
            return (0, 0, (s + 1) / weights[i], -tiebreak[i], i)
        return (1, tiers[i], (s - floor[i] + 1) / weights[i], -tiebreak[i], i)

    heap = [key(i) for i in range(n) if cap[i] > 0]
    heapq.heapify(heap)
    budget = min(max(0, int(capacity)), sum(cap))
    for _ in range(budget):
        i = heapq.heappop(heap)[-1]
        grants[i] += 1
        if grants[i] < cap[i]:
            heapq.heappush(heap, key(i))
    return grants


def jain_index(values: Sequence[float]) -> float | None:
    """Jain's fairness index (1 = equal, 1/n = one takes all); None when nothing is allocated.
    :func:`allocate` applies it to grants over :func:`fair_shares`."""
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
    fair = weighted_max_min(capacity, needs, weights, floors=guarantees, tiebreak=owed)
    guarantees = [min(g, f) for g, f in zip(guarantees, fair)]
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
    ideal = fair_shares(capacity, needs, weights, [t.guaranteed_gpus for t in tenants])
    index = jain_index([g.grant_gpus / x for g, x in zip(result, ideal) if x > 1e-9])
    return Allocation(capacity, result, index, tuple(reasons), new_deficits)


def fair_shares(capacity: float, needs: Sequence[float], weights: Sequence[float],
                guarantees: Sequence[float]) -> list[float]:
    """The fractional allocation :func:`allocate` approximates in whole GPUs: guarantees (up to
    need) first, the rest by weighted max-min. Jain's index is taken of grants normalised by it
    (Jain, Chiu & Hawe, DEC-TR-301, 1984, normalise each user's throughput by its fair one), so a
    tenant that wants less than its weighted share does not count as treated unfairly."""
    floors = [min(float(g), float(n)) for g, n in zip(guarantees, needs)]
    if sum(floors) > capacity:           # guarantees that do not fit are shared by weight
        floors = water_fill(capacity, floors, weights)
    rest = water_fill(max(0.0, capacity - sum(floors)), [n - f for n, f in zip(needs, floors)],
                      weights)
    return [f + r for f, r in zip(floors, rest)]


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


@dataclass(frozen=True)
class WorkloadClaim:
    """One workload's claim on its tenant's grant (a ModelDeployment's ``spec.tenant``)."""

    name: str
    demand_gpus: int
    priority: int = 0
    weight: float = 1.0


def split_tenant_grant(grant_gpus: int, workloads: Sequence[WorkloadClaim]) -> dict[str, int]:
    """A tenant's grant divided between its workloads: strict priority (higher first), weighted
    max-min on ``weight`` within a priority, never above a workload's demand. Sums to
    ``min(grant_gpus, total demand)``."""
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        raise ValueError(f"workload names must be unique, got {names}")
    grants = weighted_max_min(grant_gpus, [w.demand_gpus for w in workloads],
                              [w.weight for w in workloads],
                              tiers=[-w.priority for w in workloads])
    return dict(zip(names, grants))
