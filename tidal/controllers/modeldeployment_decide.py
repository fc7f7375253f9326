"""One autoscaling decision for a ModelDeployment: replicas per pool, then per accelerator class.

Pure: the operator's timer builds the observation, calls :func:`decide`, and applies the result.
The per-pool rule is :class:`tidal.policies.utilization.UtilizationTarget` bounded by the pool's
``minReplicas``/``maxReplicas`` (the simple rule the simulator also drives, until the SLO planner
replaces it); it holds on missing metrics, so this never scales to zero on missing data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment
from tidal.api.types import parse_duration_s
from tidal.controllers.modeldeployment import ChildKey, pools_of
from tidal.policies.guards import ObservationGuard, usable_count
from tidal.policies.interface import Decision, Observation, PoolObservation, Reason
from tidal.policies.utilization import UtilizationTarget

REASON_MANUAL = "manual-override"
REASON_NO_ACCELERATOR = "no-accelerator-class"
REASON_MAX_REACHED = "max-replicas"


def preference_order(md: ModelDeployment, accelerators: Mapping[str, AcceleratorClass]) -> list[str]:
    """Allowed classes that exist, most preferred first.

    ``cheapest`` and ``pack``: ascending ``hourlyCost`` (pack differs only in node packing, which the
    scheduler does); ``fastest``: descending ``peakTflops``. Ties keep the spec's order.
    """
    allowed = [(i, n) for i, n in enumerate(md.spec.placement.accelerator_classes) if n in accelerators]
    if md.spec.placement.strategy == "fastest":
        allowed.sort(key=lambda item: (-accelerators[item[1]].spec.peak_tflops, item[0]))
    else:
        allowed.sort(key=lambda item: (accelerators[item[1]].spec.hourly_cost, item[0]))
    return [n for _, n in allowed]


def place(desired: int, current: Mapping[str, int], preference: Sequence[str]) -> dict[str, int]:
    """Split ``desired`` replicas over the classes in ``preference``, moving as few as possible.

    Replicas stay where they run (a move is a cold start); new replicas go to the most preferred
    class, and removals take from the least preferred first. Only classes in ``preference`` appear
    in the result: a class that was deleted cannot be rendered, so its Deployment is left as is.
    """
    if desired < 0:
        raise ValueError(f"desired replicas must be >= 0, got {desired}")
    if not preference:
        return {}
    out = {acc: max(0, int(current.get(acc, 0))) for acc in preference}
    have = sum(out.values())
    if desired >= have:
        out[preference[0]] += desired - have
    else:
        surplus = have - desired
        for acc in reversed(preference):
            take = min(surplus, out[acc])
            out[acc] -= take
            surplus -= take
            if surplus == 0:
                break
    return out


@dataclass(frozen=True)
class WorkloadDecision:
    """What one tick decided, per pool and per child Deployment, with the reasons."""

    decision: Decision
    by_child: Mapping[ChildKey, int]
    capacity_limits: tuple[Reason, ...] = ()
    changes: tuple[tuple[ChildKey, int, int], ...] = field(default=())
    """(child, from, to) for each Deployment whose replicas change."""
    policy_state: Mapping[str, Any] | None = None
    """The autoscaler's state to persist and hand back next tick (its scale-down window)."""


def decide(
    md: ModelDeployment,
    observation: Observation,
    current: Mapping[ChildKey, int],
    preference: Sequence[str],
    policy_state: Mapping[str, Any] | None = None,
) -> WorkloadDecision:
    """Desired replicas for each pool (autoscaler, bounds, manual override) and their placement.

    ``policy_state`` is what the previous tick returned (``WorkloadDecision.policy_state``): the
    per-pool recommendation window behind ``spec.autoscaling.scaleDownDelay`` (HPA-style
    scale-down stabilisation), which the operator persists so a restart does not shorten it.
    """
    pools = pools_of(md)
    desired: dict[str, int] = {}
    reasons: list[Reason] = []
    limits: list[Reason] = []
    past = dict((policy_state or {}).get("recommendations") or {})
    window: dict[str, Any] = {}
    delay_s = parse_duration_s(md.spec.autoscaling.scale_down_delay)
    for pool, bounds in pools.items():
        obs = observation.pools.get(pool, PoolObservation(ready_replicas=0))
        if md.spec.replicas is not None:
            want = md.spec.replicas
            reasons.append(Reason(REASON_MANUAL, f"spec.replicas={want} set (e.g. kubectl scale); holding it", pool))
        else:
            rule = UtilizationTarget(min_replicas=bounds.min_replicas, max_replicas=bounds.max_replicas,
                                     scale_down_stabilization_s=delay_s)
            policy = ObservationGuard(rule)
            single = Observation(observation.now_s, {pool: obs}, observation.metrics_available)
            decision, state = policy.decide(single, {"recommendations": {pool: past.get(pool, [])}})
            window[pool] = state["recommendations"][pool]
            want = decision.desired_replicas[pool]
            reasons.extend(decision.reasons)
            inflight = sum(v for v in (obs.running_requests, obs.waiting_requests) if usable_count(v))
            if want == bounds.max_replicas and inflight > want * rule.target_inflight_per_replica:
                limits.append(Reason(REASON_MAX_REACHED,
                                     f"pool {pool}: wants more than maxReplicas={bounds.max_replicas}", pool))
        desired[pool] = want
    by_child: dict[ChildKey, int] = {}
    changes: list[tuple[ChildKey, int, int]] = []
    if not preference:
        names = ", ".join(md.spec.placement.accelerator_classes)
        limits.append(Reason(REASON_NO_ACCELERATOR,
                             f"none of the AcceleratorClasses in spec.placement.acceleratorClasses exists ({names})"))
    for pool, want in desired.items():
        cur = {k.accelerator: n for k, n in current.items() if k.pool == pool}
        split = place(want, cur, preference)
        for acc, n in split.items():
            key = ChildKey(pool, acc)
            by_child[key] = n
            before = current.get(key)
            if before is not None and before != n:
                changes.append((key, before, n))
    decision = Decision(desired_replicas=desired, reasons=tuple(reasons))
    return WorkloadDecision(decision, by_child, tuple(limits), tuple(changes), {"recommendations": window})
