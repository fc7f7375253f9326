"""``spec.autoscaling.policy`` -> the rule that sizes a ModelDeployment's pools, run by the core.

- ``tidal``: the SLO planner (tidal/policies/planner.py) on the performance profile of the
  workload's model on its most preferred accelerator class (replicas on other classes counted in
  its replicas by goodput, tidal/core/placement.py), under ``spec.slo``, with the core's
  forecast one cold start ahead when ``spec.autoscaling.prewarm`` is on. Where the planner cannot
  size -- no AcceleratorClass exists, or no request rate was read this tick -- the pools are sized
  by the in-flight utilisation rule (tidal/policies/utilization.py), and the reasons say so.
- ``hpa``: the Kubernetes HPA on in-flight requests per pod, with its documented defaults
  (tidal/policies/baselines/hpa.py); ``scaleDownDelay`` is its scale-down stabilisation window.
- ``kpa``: Knative's KPA on concurrency, with its documented defaults
  (tidal/policies/baselines/kpa.py); scale to zero is the core's (``scaleToZero``), not the KPA's.
- ``static``: every pool at its ``minReplicas``.

Every rule runs per pool within that pool's ``[minReplicas, maxReplicas]``, behind
:class:`~tidal.policies.guards.ObservationGuard` (partial or garbage metrics never scale down),
with its memory in :class:`~tidal.core.state.CoreState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from tidal.api.modeldeployment import ModelDeployment, PoolSpec
from tidal.policies.baselines.hpa import DEFAULT_SCALE_DOWN, Behavior, KubernetesHPA
from tidal.policies.baselines.kpa import KnativeKPA
from tidal.policies.capacity import replicas_needed, slo_targets
from tidal.policies.defaults import TARGET_INFLIGHT_PER_REPLICA
from tidal.policies.guards import ObservationGuard, usable_count
from tidal.policies.interface import AcceleratorProfile, Autoscaler, Observation, Reason
from tidal.policies.planner import PoolPlan, SLOPlanner
from tidal.policies.profile import build_profile, model_shape
from tidal.policies.utilization import UtilizationTarget
from tidal.core.state import CoreState

POLICY_TIDAL = "tidal"
POLICY_HPA = "hpa"
POLICY_KPA = "kpa"
POLICY_STATIC = "static"
REASON_STATIC = "static"
REASON_PLANNER_FALLBACK = "planner-fallback"


@dataclass(frozen=True)
class PoolsDecision:
    """Replicas per pool from the spec's policy, with one reason per pool."""

    desired: dict[str, int]
    reasons: list[Reason]
    over_max: frozenset[str] = frozenset()
    """Pools whose rule wanted more than ``maxReplicas`` (reported as CapacityLimited)."""
    sized_by_goodput: bool = False
    """The SLO planner sized the pools this tick: ``desired`` counts replicas of the most preferred
    class, a capacity in goodput (tidal/core/placement.py ``place_pool``)."""
    plans: Mapping[str, PoolPlan] = field(default_factory=dict)
    """The planner's per-pool plan (load and goodput behind each count) when it sized the pools."""


def utilization_rule(bounds: PoolSpec, delay_s: float) -> UtilizationTarget:
    return UtilizationTarget(min_replicas=bounds.min_replicas, max_replicas=bounds.max_replicas,
                             scale_down_stabilization_s=delay_s)


def slo_planner(md: ModelDeployment, pools: Mapping[str, PoolSpec], accelerator: AcceleratorProfile,
                delay_s: float) -> SLOPlanner:
    """The planner for ``md`` on ``accelerator``: one profile per pool (its ``gpusPerReplica`` is the
    tensor-parallel degree), the pools' bounds, ``scaleDownDelay`` as its stabilisation window."""
    shape = model_shape(md.spec.model)
    profiles = {pool: build_profile(shape, accelerator, spec.gpus_per_replica) for pool, spec in pools.items()}
    first = next(iter(pools.values()))
    return SLOPlanner(profiles, slo_targets(md.spec.slo), min_replicas=first.min_replicas,
                      max_replicas=first.max_replicas, scale_down_stabilization_s=delay_s,
                      pool_bounds={p: (b.min_replicas, b.max_replicas) for p, b in pools.items()})


def _per_pool(rule_for: Mapping[str, Autoscaler], observation: Observation, memory: dict[str, object],
              ) -> PoolsDecision:
    """Run each pool's rule on that pool alone, with that pool's memory (updated in place)."""
    desired, reasons = {}, []
    for pool, rule in rule_for.items():
        single = replace(observation, pools={pool: observation.pools[pool]})
        decision, memory[pool] = ObservationGuard(rule).decide(single, memory.get(pool))
        desired[pool] = decision.desired_replicas[pool]
        reasons.extend(r for r in decision.reasons if r.pool in (None, pool))
    return PoolsDecision(desired, reasons)


def _inflight(observation: Observation, pool: str) -> float:
    obs = observation.pools[pool]
    return sum(v for v in (obs.running_requests, obs.waiting_requests) if usable_count(v))


def _utilization(pools: Mapping[str, PoolSpec], observation: Observation, state: CoreState, delay_s: float,
                 ) -> PoolsDecision:
    memory: dict[str, object] = {p: {"recommendations": {p: state.recommendations.get(p, [])}} for p in pools}
    out = _per_pool({p: utilization_rule(b, delay_s) for p, b in pools.items()}, observation, memory)
    for pool, window in memory.items():
        state.recommendations[pool] = window["recommendations"][pool]  # type: ignore[index]
    over = frozenset(p for p, b in pools.items() if out.desired[p] == b.max_replicas
                     and _inflight(observation, p) > b.max_replicas * TARGET_INFLIGHT_PER_REPLICA)
    return replace(out, over_max=over)


def _tidal(md: ModelDeployment, pools: Mapping[str, PoolSpec], observation: Observation, state: CoreState,
           accelerator: AcceleratorProfile | None, delay_s: float) -> PoolsDecision:
    if accelerator is None:
        out = _utilization(pools, observation, state, delay_s)
        why = Reason(REASON_PLANNER_FALLBACK, "no AcceleratorClass of spec.placement exists, so the SLO planner "
                     "has no performance profile; sizing by in-flight requests")
        return PoolsDecision(out.desired, [*out.reasons, why])
    planner = ObservationGuard(slo_planner(md, pools, accelerator, delay_s))
    memory = {**state.planner, "recommendations": {p: state.recommendations.get(p, []) for p in pools}}
    decision, after = planner.decide(observation, memory)
    if "plan" not in decision.details:
        # No request rate this tick: the in-flight rule still sees queues (it holds on missing counts).
        out = _utilization(pools, observation, state, delay_s)
        why = Reason(REASON_PLANNER_FALLBACK, "no request rate was read this tick, so the SLO planner cannot size; "
                     "sizing by in-flight requests")
        return PoolsDecision(out.desired, [*out.reasons, why])
    state.planner = {k: v for k, v in after.items() if k != "recommendations"}
    state.recommendations.update(after.get("recommendations", {}))
    plans: Mapping[str, PoolPlan] = decision.details.get("plan", {})
    over = frozenset(p for p, plan in plans.items()
                     if replicas_needed(plan.load_rps, plan.goodput_rps) > pools[p].max_replicas)
    return PoolsDecision(dict(decision.desired_replicas), list(decision.reasons), over, sized_by_goodput=True,
                         plans=dict(plans))


def _baseline(policy: str, pools: Mapping[str, PoolSpec], observation: Observation, state: CoreState,
              delay_s: float) -> PoolsDecision:
    rules: dict[str, Autoscaler] = {}
    for pool, b in pools.items():
        if policy == POLICY_HPA:
            behavior = Behavior(scale_down=replace(DEFAULT_SCALE_DOWN, stabilization_window_s=delay_s))
            # The HPA's minReplicas is at least 1 (without the HPAScaleToZero gate); a pool at zero is
            # left to the core's wake-from-zero below, as Kubernetes disables an HPA at 0 replicas.
            rules[pool] = KubernetesHPA(min_replicas=max(b.min_replicas, 1), max_replicas=b.max_replicas,
                                        target_per_pod=TARGET_INFLIGHT_PER_REPLICA, behavior=behavior)
        else:
            rules[pool] = KnativeKPA(min_replicas=b.min_replicas, max_replicas=b.max_replicas,
                                     target_concurrency_per_pod=TARGET_INFLIGHT_PER_REPLICA,
                                     enable_scale_to_zero=False)
    memory = state.baseline.get(policy, {}) if isinstance(state.baseline.get(policy), dict) else {}
    state.baseline = {policy: memory}  # another policy's memory is dropped when the spec switches
    out = _per_pool(rules, observation, memory)
    if policy == POLICY_HPA:
        for pool, b in pools.items():
            seen = observation.pools.get(pool)
            if b.min_replicas == 0 and (seen is None or seen.current_replicas == 0):
                out.desired[pool] = 0
    over = frozenset(p for p, b in pools.items() if out.desired[p] == b.max_replicas
                     and _inflight(observation, p) > b.max_replicas * TARGET_INFLIGHT_PER_REPLICA)
    return replace(out, over_max=over)


def decide_pools(md: ModelDeployment, pools: Mapping[str, PoolSpec], observation: Observation, state: CoreState,
                 accelerator: AcceleratorProfile | None, delay_s: float) -> PoolsDecision:
    """Replicas per pool from ``spec.autoscaling.policy`` (see the module docstring)."""
    policy = md.spec.autoscaling.policy
    if policy == POLICY_STATIC:
        return PoolsDecision({p: b.min_replicas for p, b in pools.items()},
                             [Reason(REASON_STATIC, f"spec.autoscaling.policy=static: minReplicas {b.min_replicas}", p)
                              for p, b in pools.items()])
    if policy in (POLICY_HPA, POLICY_KPA):
        return _baseline(policy, pools, observation, state, delay_s)
    return _tidal(md, pools, observation, state, accelerator, delay_s)
