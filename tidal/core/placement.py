"""Placement over accelerator classes: which classes can serve a ModelDeployment, in which order, and
how a pool's replicas split over them (docs/placement.md).

Feasibility: placement never picks a class whose performance profile cannot meet the SLO. A class
is left out of the preference order when, on the profile built from the CRs (the model's size, the
class's datasheet; tidal/policies/profile.py) with each pool's ``gpusPerReplica``, the weights leave
no KV cache or a lone request of the current mix already misses a target
(tidal/policies/capacity.py ``idle_violation``): more replicas of it would not help. When no allowed
class passes, the order is kept as it is (something must be tried) and every class is reported.

Order (:func:`class_preference`): ``fastest`` keeps descending ``peakTflops``; ``cheapest`` and
``pack`` rank the feasible classes by cost per goodput, ``hourlyCost x gpusPerReplica / goodput per
replica`` summed over the pools (goodput from the class's profile at the planner's current mix and
``spec.slo``, tidal/policies/capacity.py), so an L40S that serves an 8B model's decode for less per
request than an H100 comes first, and an H100 that serves 3x an A100's requests for 1.7x its price
does too. Ties keep ascending ``hourlyCost``, then the spec's order.

Split (:func:`place_pool`): the SLO planner sizes a pool in replicas of the most preferred class
(the core shows it the replicas of other classes in those units, weighted by goodput); that many
replicas are a capacity in requests per second, ``replicas x goodput`` of that class. Replicas stay
where they run and count with their own class's goodput; missing capacity goes to the most
preferred class with room (free GPUs per node, ``AcceleratorProfile.free_by_node``: a replica's GPUs
sit on one node; :func:`replicas_fitting`), spilling to the next and reporting the class that ran
out (what no class has room for is not started: a Pending replica would hold the pool's scale-up);
surplus leaves where it saves the most per hour (by count: the least preferred class first), but
not while the pool has replicas starting or Pending on more than one class (the
replicas a spill or a move started are not undone before they serve, nor the ones they replace
removed before).

Moves (:func:`plan_move`): replicas start on a better class for those of a worse class only when the
hourly saving over :data:`PLACEMENT_MOVE_HORIZON_S` exceeds the new replicas' cost during one
predicted cold start, in the room the split left. The old ones leave as surplus once the new ones
started. The last fraction of a replica is not placed on a cheaper class of its own (one H100 and
one L40S for 1.1 H100s' load): the online correction is learnt per pool from latencies mixed over
its classes, and a slower class serving part of a pool inflates the faster one's correction, which
asks for more replicas again (docs/placement.md, "Granularity"). Pure; both shells call it through
the core (the simulator shell also to choose what it simulates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Mapping, Sequence

from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.modeldeployment import pools_of
from tidal.core.state import CoreState
from tidal.policies.capacity import (
    LIMIT_INFEASIBLE,
    Correction,
    RequestMix,
    SLOTargets,
    goodput,
    idle_violation,
    slo_targets,
)
from tidal.policies.defaults import (
    PLACEMENT_BISECTION_STEPS,
    PLACEMENT_GOODPUT_RESOLUTION,
    PLACEMENT_MOVE_HORIZON_S,
    PLACEMENT_RANK_HYSTERESIS,
)
from tidal.policies.interface import POOL_UNIFIED, AcceleratorProfile, Reason
from tidal.policies.placement import STRATEGY_FASTEST, preference_order
from tidal.policies.planner import DEFAULT_MIX
from tidal.policies.profile import ModelShape, build_profile, model_shape

REASON_CLASS_CANNOT_MEET_SLO = "accelerator-cannot-meet-slo"
REASON_CLASS_FULL = "accelerator-class-full"
REASON_MOVE = "placement-move"


def planner_mix(state: CoreState | None) -> RequestMix:
    """The request mix the SLO planner last measured (its state), else its default mix."""
    mix = (state.planner.get("mix") if state is not None else None) or ()
    try:
        return RequestMix(float(mix[0]), float(mix[1]))
    except (IndexError, TypeError, ValueError):
        return DEFAULT_MIX


def feasible_preference(md: ModelDeployment, accelerators: Mapping[str, AcceleratorProfile],
                        preference: Sequence[str], mix: RequestMix) -> tuple[list[str], list[Reason]]:
    """``preference`` without the classes that cannot meet ``spec.slo`` for ``mix``, and why each left."""
    slo = slo_targets(md.spec.slo)
    shape = model_shape(md.spec.model)
    kept, reasons = [], []
    for name in preference:
        why = []
        for pool, spec in pools_of(md).items():
            role = pool if pool in ("unified", "prefill", "decode") else POOL_UNIFIED
            limit = idle_violation(role, build_profile(shape, accelerators[name], spec.gpus_per_replica), mix, slo)
            if limit is not None:
                why.append(f"pool {pool} on {spec.gpus_per_replica} GPU(s): {limit}")
        if why:
            reasons.append(Reason(REASON_CLASS_CANNOT_MEET_SLO,
                                  f"AcceleratorClass {name!r} cannot meet spec.slo for a mean request of "
                                  f"{mix.prompt_tokens:.0f} in / {mix.output_tokens:.0f} out tokens even idle ("
                                  + "; ".join(why) + "): not placed there"))
        else:
            kept.append(name)
    if not kept:
        return list(preference), reasons
    return kept, reasons


def _role(pool: str) -> str:
    return pool if pool in ("unified", "prefill", "decode") else POOL_UNIFIED


@lru_cache(maxsize=4096)
def _goodput_rps(role: str, shape: ModelShape, accelerator: AcceleratorProfile, tp: int, mix: RequestMix,
                 slo: SLOTargets, correction: Correction) -> tuple[float, bool]:
    """(goodput per replica, whether even an idle replica misses the SLO); cached: the ranking asks
    for every class each tick, and the inputs repeat while the mix holds."""
    g = goodput(role, build_profile(shape, accelerator, tp), mix, slo, correction, PLACEMENT_BISECTION_STEPS)
    return g.rate_rps, g.limit == LIMIT_INFEASIBLE


def _coarse(value: float) -> float:
    """``value`` on a log grid of :data:`PLACEMENT_GOODPUT_RESOLUTION` steps (0 stays 0)."""
    if value <= 0:
        return 0.0
    step = math.log1p(PLACEMENT_GOODPUT_RESOLUTION)
    return round(math.exp(round(math.log(value) / step) * step), 9)


def class_goodput(md: ModelDeployment, accelerator: AcceleratorProfile, mix: RequestMix,
                  corrections: Mapping[str, Correction] | None = None) -> dict[str, float]:
    """Goodput per replica of each pool of ``md`` on ``accelerator`` (req/s; 0 when even an idle
    replica misses the SLO), with the pool's profile correction when given. The mix and corrections
    are taken at :data:`PLACEMENT_GOODPUT_RESOLUTION`: placement compares classes, and ticks whose
    mix moved less than that reuse the cached result."""
    shape, slo = model_shape(md.spec.model), slo_targets(md.spec.slo)
    bare = replace(accelerator, free_gpus=None, free_by_node=None)  # free GPUs change every tick, the profile does not
    mix = RequestMix(_coarse(mix.prompt_tokens), _coarse(mix.output_tokens))
    out = {}
    for pool, spec in pools_of(md).items():
        given = (corrections or {}).get(pool, Correction())
        corr = Correction(_coarse(given.prefill), _coarse(given.decode))
        rate, infeasible = _goodput_rps(_role(pool), shape, bare, spec.gpus_per_replica, mix, slo, corr)
        out[pool] = 0.0 if infeasible else rate
    return out


def cost_per_goodput(md: ModelDeployment, accelerator: AcceleratorProfile, mix: RequestMix) -> float:
    """``hourlyCost x gpusPerReplica / goodput`` summed over the pools: what one request per second
    costs per hour on this class (``inf`` when a pool has no goodput there)."""
    pools = pools_of(md)
    total = 0.0
    for pool, rate in class_goodput(md, accelerator, mix).items():
        if rate <= 0:
            return math.inf
        total += accelerator.hourly_cost * pools[pool].gpus_per_replica / rate
    return total


@dataclass(frozen=True)
class ClassPreference:
    """The classes a workload may use, in the order placement fills them, and why some were left out."""

    ordered: list[str]
    """Allowed classes that exist, in the strategy's datasheet order (before feasibility)."""
    preference: list[str]
    """Feasible classes, most preferred first (all of ``ordered`` when none is feasible)."""
    unfit: list[Reason]
    cost_per_goodput: Mapping[str, float] = field(default_factory=dict)
    """Per class, $/h per req/s of goodput (``cheapest``/``pack`` with more than one feasible class)."""


def class_preference(md: ModelDeployment, accelerators: Mapping[str, AcceleratorProfile],
                     mix: RequestMix, incumbent: str | None = None) -> ClassPreference:
    """The order placement uses (module docstring): feasible classes, ranked by cost per goodput at
    ``mix`` for ``cheapest`` and ``pack``, by peak FLOP/s for ``fastest``. ``incumbent`` (the class
    most of the workload's replicas run on) keeps its rank against a class less than
    :data:`PLACEMENT_RANK_HYSTERESIS` cheaper: near-ties do not flip with every change of the mix."""
    strategy = md.spec.placement.strategy
    ordered = preference_order(md.spec.placement.accelerator_classes, accelerators, strategy)
    preference, unfit = feasible_preference(md, accelerators, ordered, mix)
    if strategy == STRATEGY_FASTEST or len(preference) < 2 or len(unfit) == len(ordered):
        return ClassPreference(ordered, preference, unfit)
    costs = {n: cost_per_goodput(md, accelerators[n], mix) for n in preference}
    rank = {n: c * (1.0 - PLACEMENT_RANK_HYSTERESIS) if n == incumbent else c for n, c in costs.items()}
    ranked = sorted(preference, key=lambda n: (rank[n], ordered.index(n)))
    return ClassPreference(ordered, ranked, unfit, costs)


def free_nodes(accelerator: AcceleratorProfile) -> tuple[int, ...] | None:
    """Free GPUs of a class per node, largest first (``None``: unknown). Without a per-node count the
    class's free GPUs are taken as one node's: the count a shell without per-node data can give."""
    if accelerator.free_gpus is None:
        return None
    if accelerator.free_by_node is not None:
        return tuple(sorted((max(0, int(f)) for f in accelerator.free_by_node), reverse=True))
    return (max(0, int(accelerator.free_gpus)),)


def replicas_fitting(free_by_node: Sequence[int], gpus_per_replica: int) -> int:
    """Replicas of ``gpus_per_replica`` GPUs the nodes can still host: each on one node."""
    g = max(1, gpus_per_replica)
    return sum(max(0, f) // g for f in free_by_node)


def take_replicas(free_by_node: Sequence[int], gpus_per_replica: int, replicas: int) -> tuple[int, ...]:
    """The nodes' free GPUs after ``replicas`` more replicas, each on the fullest node it fits (a
    packing scheduler's choice, the simulator's; with spreading, fewer large blocks may remain, and a
    later replica waits Pending and is reported ``PodsPending``). Replicas that fit nowhere take nothing."""
    g = max(1, gpus_per_replica)
    nodes = sorted((max(0, f) for f in free_by_node), reverse=True)
    for _ in range(max(0, replicas)):
        fits = [i for i, f in enumerate(nodes) if f >= g]
        if not fits:
            break
        nodes[fits[-1]] -= g  # the least free node that fits
        nodes.sort(reverse=True)
    return tuple(nodes)


@dataclass(frozen=True)
class PoolPlacement:
    """One pool's replicas per class, the classes that ran out, and the move started (if any)."""

    replicas: dict[str, int]
    full: tuple[tuple[str, int, int], ...] = ()
    """(class, replicas placed there, replicas wanted there) where free GPUs ran out."""
    move: tuple[str, str, int, int] | None = None
    """(from, to, replicas of ``from`` replaced, replicas started on ``to``)."""


def place_pool(capacity_rps: float, current: Mapping[str, int], preference: Sequence[str],
               goodput_rps: Mapping[str, float], room: Mapping[str, int | None], bounds: tuple[int, int],
               hold_surplus: bool, replica_cost: Mapping[str, float] | None = None) -> PoolPlacement:
    """Replicas per class serving ``capacity_rps`` (module docstring). ``goodput_rps`` per class (> 0
    to place new replicas there; 0: what runs there serves nothing the SLO counts and leaves as
    surplus; all 1 sizes by count), ``room`` replicas each class can still start (``None``: unknown,
    unlimited), ``bounds`` the pool's ``(minReplicas, maxReplicas)`` on the total, ``hold_surplus``:
    the pool has replicas starting or Pending. With ``replica_cost`` ($/h per replica; by goodput
    only) surplus leaves where that saves the most per hour."""
    if not preference:
        return PoolPlacement({})
    lo, hi = bounds
    out = {c: max(0, int(current.get(c, 0))) for c in preference}
    total = sum(out.values())
    have = sum(out[c] * goodput_rps[c] for c in preference)
    eps = 1e-9 * max(1.0, capacity_rps)
    full = []
    if have < capacity_rps - eps and total <= hi:
        for c in preference if total < hi else ():
            if goodput_rps[c] <= 0:
                continue
            need = math.ceil((capacity_rps - have) / goodput_rps[c] - 1e-9)
            free = room.get(c)
            k = min(need, hi - total, need if free is None else max(free, 0))
            if free is not None and free < need and total + free < hi:
                full.append((c, max(k, 0), need))
            out[c] += k
            total += k
            have += k * goodput_rps[c]
            if have >= capacity_rps - eps or total >= hi:
                break
        # At maxReplicas and still short: swap replicas of the least preferred classes for replicas
        # of a more preferred one with room (the pool cannot grow, only serve more per replica).
        for c in reversed(preference):
            better = [b for b in preference[:preference.index(c)] if goodput_rps[b] > goodput_rps[c]]
            while out[c] > 0 and total >= hi and have < capacity_rps - eps and better:
                b = next((b for b in better if room.get(b) is None
                          or room[b] - (out[b] - current.get(b, 0)) > 0), None)
                if b is None:
                    break
                out[c] -= 1
                out[b] += 1
                have += goodput_rps[b] - goodput_rps[c]
    else:
        # While replicas start, surplus spread over classes is a move or a spill in flight: keep it.
        mixed = sum(1 for c in preference if out[c] > 0) > 1
        if replica_cost is not None and not (hold_surplus and mixed) and total <= hi:
            # surplus leaves where it saves the most per hour: all it can of one class at a time
            while total > lo:
                options = []
                for c in preference:
                    spare = (have - capacity_rps + eps) / goodput_rps[c] if goodput_rps[c] > 0 else out[c]
                    r = min(out[c], total - lo, math.floor(spare))
                    if r >= 1:
                        options.append((r * replica_cost[c], preference.index(c), c, r))
                if not options:
                    break
                _, _, c, r = max(options)
                out[c] -= r
                total -= r
                have -= r * goodput_rps[c]
        for c in reversed(preference):
            if hold_surplus and mixed and total <= hi:
                break
            while out[c] > 0 and total > lo and (total > hi or have - goodput_rps[c] >= capacity_rps - eps):
                out[c] -= 1
                total -= 1
                have -= goodput_rps[c]
    if total < lo:  # minReplicas: on the most preferred class with room (else the most preferred)
        first = next((c for c in preference if goodput_rps[c] > 0 and (
            room.get(c) is None or room[c] - (out[c] - current.get(c, 0)) > 0)), preference[0])
        out[first] += lo - total
    return PoolPlacement(out, tuple(full))


def plan_move(placement: PoolPlacement, capacity_rps: float, preference: Sequence[str],
              goodput_rps: Mapping[str, float], room: Mapping[str, int | None], replica_cost: Mapping[str, float],
              cold_start_s: float | None, hi: int, horizon_s: float = PLACEMENT_MOVE_HORIZON_S) -> PoolPlacement:
    """Start replicas on a better class for all those of the worst class holding some, when that pays
    (module docstring): the better class gets what the capacity the others do not serve needs there.
    ``replica_cost`` is $/h per replica (``hourlyCost x gpusPerReplica``); ``room`` the replicas each
    class can still start after ``placement`` (what the split already started there is taken); the
    new replicas go on the best class with room for them (known free GPUs only: a move never waits
    Pending). The replaced replicas leave as surplus once the new ones run (:func:`place_pool` with
    ``replica_cost``)."""
    if cold_start_s is None or len(preference) < 2:
        return placement
    out = dict(placement.replicas)
    total = sum(out.values())

    def pays(saving_per_h: float, started_per_h: float) -> bool:
        return saving_per_h * horizon_s / 3600.0 > started_per_h * cold_start_s / 3600.0  # type: ignore[operator]

    worst = next((j for j in reversed(preference[1:]) if out[j] > 0), None)
    if worst is not None:
        j = worst
        elsewhere = sum(out[c] * goodput_rps[c] for c in preference if c != j)
        for i in preference[:preference.index(j)]:
            free = room.get(i)
            if free is None or free <= 0 or goodput_rps[i] <= 0:
                continue
            n_new = max(0, math.ceil((capacity_rps - elsewhere) / goodput_rps[i] - 1e-9))
            if n_new > free or total + n_new > hi:
                continue
            if n_new > 0 and pays(out[j] * replica_cost[j] - n_new * replica_cost[i], n_new * replica_cost[i]):
                out[i] += n_new
                return PoolPlacement(out, placement.full, (j, i, out[j], n_new))
    return placement
