"""Kubernetes HPA (autoscaling/v2) on vLLM's num_requests_running + num_requests_waiting per pod.

A re-implementation of the kube-controller-manager's horizontal pod autoscaler, in the
structure of its source so it can be checked line by line:

- ``plain_metric_replicas`` is ``calcPlainMetricReplicas`` of
  ``pkg/controller/podautoscaler/replica_calculator.go``: usage ratio = mean metric of the
  ready pods with metrics / target; within the tolerance -> keep the current count;
  otherwise ``ceil(ratio * readyPodCount)``. When pods miss metrics they are counted at 100 %
  of the target on a scale-down and 0 on a scale-up; when pods are not yet ready
  (``Pending``) and the ratio asks for a scale-up they are counted at 0; the ratio is
  recomputed and any change of direction or result within tolerance keeps the current count.
- ``external_per_pod_replicas`` is ``GetExternalPerPodMetricReplicas`` (an External metric
  with an ``AverageValue`` target, used by KEDA): no pod grouping at all.
- ``hpa_reconcile`` is ``reconcileAutoscaler`` + ``normalizeDesiredReplicasWithBehaviors`` of
  ``horizontal.go``: out-of-bounds current counts are brought to the bounds first; a metric
  error keeps the current count and records nothing; otherwise the recommendation is
  stabilised (``stabilizeRecommendationWithBehaviors``: the lowest recommendation of the
  scale-up window and the highest of the scale-down window bound the result) and then rate
  limited by the scaling policies (``calculateScaleUpLimitWithScalingRules``,
  ``calculateScaleDownLimitWithBehaviors``, replica changes of the last ``periodSeconds``
  counted from the stored scale events) and bounded by min/max replicas.

Defaults (``tidal.policies.baselines.defaults``): sync period 15 s, tolerance 0.1, scale-down
stabilisation 300 s, scale-up policies 100 %/15 s and 4 pods/15 s with ``selectPolicy: Max``,
scale-down policy 100 %/15 s -- the "Default behavior" block of the HPA documentation.

Where the aggregate pool observation replaces the per-pod view (docs/baselines.md):

- the metric of each ready pod is unknown, only their sum (running + waiting of the pool); the
  HPA formula only needs the mean over ready pods, so this is exact for the replica count
  (the HPA's milli-unit integer rounding of the mean is not reproduced);
- ``pending_replicas`` are the HPA's unready (``Pending`` phase) pods; ``starting_replicas``
  are its pods with missing metrics (the container runs, vLLM's ``/metrics`` is not up yet);
- draining pods carry a deletion timestamp and are ignored, but their in-flight requests are
  part of the pool sum (the observation does not split them);
- the simulator's t=0 decision sees a workload with no pods. The HPA would stay disabled at 0
  replicas (implicit maintenance mode); a real Deployment starts at ``spec.replicas`` >= 1 and
  the HPA raises it to ``minReplicas``, so 0 current replicas are brought to ``min_replicas``.

A call sooner than ``sync_period_s`` after the last evaluation returns the previous result:
the HPA had not run yet. State (a JSON-friendly dict per pool): last evaluation time and
result, the recommendations of the stabilisation windows, and the scale events of the policy
periods.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.perpool import decide_per_pool
from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

REASON_BETWEEN_SYNCS = "hpa-between-syncs"
REASON_NO_METRICS = "hpa-no-metrics"
REASON_BOUNDS = "hpa-bounds"
REASON_RECOMMENDATION = "hpa-recommendation"
REASON_SCALE_DOWN_STABILIZED = "hpa-scale-down-stabilized"
REASON_SCALE_UP_STABILIZED = "hpa-scale-up-stabilized"
REASON_SCALE_UP_LIMIT = "hpa-scale-up-limit"
REASON_SCALE_DOWN_LIMIT = "hpa-scale-down-limit"

_POLICY_TYPES = (d.HPA_POLICY_PODS, d.HPA_POLICY_PERCENT)
_SELECT_POLICIES = (d.HPA_SELECT_POLICY_MAX, d.HPA_SELECT_POLICY_MIN, d.HPA_SELECT_POLICY_DISABLED)


@dataclass(frozen=True)
class ScalingPolicy:
    """One ``HPAScalingPolicy``: allow ``value`` pods or percent of change per ``period_s``."""

    kind: str
    value: int
    period_s: float

    def __post_init__(self) -> None:
        if self.kind not in _POLICY_TYPES:
            raise ValueError(f"scaling policy kind must be one of {_POLICY_TYPES}, "
                             f"got {self.kind!r}")
        if self.value <= 0:
            raise ValueError(f"scaling policy value must be > 0, got {self.value}")
        if not 0 < self.period_s <= 1800:
            raise ValueError(f"scaling policy period_s must be in (0, 1800], got {self.period_s}")


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``spec.behavior``: stabilisation window, policies and their selection."""

    stabilization_window_s: float
    policies: tuple[ScalingPolicy, ...]
    select_policy: str = d.HPA_SELECT_POLICY_MAX

    def __post_init__(self) -> None:
        if self.stabilization_window_s < 0:
            raise ValueError("stabilization_window_s must be >= 0")
        if self.select_policy not in _SELECT_POLICIES:
            raise ValueError(f"select_policy must be one of {_SELECT_POLICIES}, "
                             f"got {self.select_policy!r}")

    @property
    def longest_period_s(self) -> float:
        return max((p.period_s for p in self.policies), default=0.0)


DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_s=d.HPA_SCALE_UP_STABILIZATION_S,
    policies=(ScalingPolicy(d.HPA_POLICY_PERCENT, d.HPA_SCALE_UP_PERCENT, d.HPA_POLICY_PERIOD_S),
              ScalingPolicy(d.HPA_POLICY_PODS, d.HPA_SCALE_UP_PODS, d.HPA_POLICY_PERIOD_S)),
    select_policy=d.HPA_SELECT_POLICY_MAX)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_s=d.HPA_DOWNSCALE_STABILIZATION_S,
    policies=(ScalingPolicy(d.HPA_POLICY_PERCENT, d.HPA_SCALE_DOWN_PERCENT,
                            d.HPA_POLICY_PERIOD_S),),
    select_policy=d.HPA_SELECT_POLICY_MAX)


@dataclass(frozen=True)
class Behavior:
    """``spec.behavior`` with the documented defaults."""

    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN


@dataclass(frozen=True)
class PodGroups:
    """``groupPods`` of the replica calculator, as counts: what the HPA sees of a pool."""

    ready: int           # running pods with a metric sample (readyPodCount)
    metric_sum: float    # sum of their metric values
    missing: int = 0     # running pods without a metric sample
    unready: int = 0     # pending pods


def group_pods(obs: PoolObservation) -> PodGroups | None:
    """The pool's pods as the HPA groups them; None when the metric is unavailable."""
    if obs.running_requests is None or obs.waiting_requests is None:
        return None
    return PodGroups(ready=obs.ready_replicas,
                     metric_sum=obs.running_requests + obs.waiting_requests,
                     missing=obs.starting_replicas, unready=obs.pending_replicas)


def within_tolerance(ratio: float, tolerance: float) -> bool:
    """``Tolerances.isWithin`` with the same tolerance up and down."""
    return (1.0 - tolerance) <= ratio <= (1.0 + tolerance)


def plain_metric_replicas(current: int, target: float, tolerance: float,
                          pods: PodGroups) -> int | None:
    """``calcPlainMetricReplicas``; None is the HPA's "did not receive metrics" error."""
    if pods.ready <= 0:
        return None
    usage_ratio = (pods.metric_sum / pods.ready) / target
    scale_up_with_unready = pods.unready > 0 and usage_ratio > 1.0
    if not scale_up_with_unready and pods.missing == 0:
        if within_tolerance(usage_ratio, tolerance):
            return current
        return math.ceil(usage_ratio * pods.ready)
    total, count = pods.metric_sum, pods.ready
    if pods.missing > 0:
        if usage_ratio < 1.0:          # scale-down: missing pods at exactly the target
            total += pods.missing * target
            count += pods.missing
        elif usage_ratio > 1.0:        # scale-up: missing pods at 0
            count += pods.missing
    if scale_up_with_unready:          # scale-up: not-yet-ready pods at 0
        count += pods.unready
    new_ratio = (total / count) / target
    if (within_tolerance(new_ratio, tolerance) or (usage_ratio < 1.0 < new_ratio)
            or (usage_ratio > 1.0 > new_ratio)):
        return current
    new_replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and new_replicas > current) or (new_ratio > 1.0 and new_replicas < current):
        return current
    return new_replicas


def external_per_pod_replicas(status_replicas: int, usage: float, target_per_pod: float,
                              tolerance: float) -> int:
    """``GetExternalPerPodMetricReplicas``: an External metric with an AverageValue target."""
    if status_replicas <= 0:
        return math.ceil(usage / target_per_pod)
    ratio = usage / (target_per_pod * status_replicas)
    if within_tolerance(ratio, tolerance):
        return status_replicas
    return math.ceil(usage / target_per_pod)


def _changes_in_period(now_s: float, period_s: float, events: list[list[float]]) -> int:
    """``getReplicasChangePerPeriod``: replicas changed by events after ``now - period``."""
    cutoff = now_s - period_s
    return int(sum(n for t, n in events if t > cutoff))


def scale_up_limit(now_s: float, current: int, up_events: list[list[float]],
                   down_events: list[list[float]], rules: ScalingRules) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow now."""
    if rules.select_policy == d.HPA_SELECT_POLICY_DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = (current - _changes_in_period(now_s, policy.period_s, up_events)
                 + _changes_in_period(now_s, policy.period_s, down_events))
        if policy.kind == d.HPA_POLICY_PODS:
            proposals.append(start + policy.value)
        else:  # rounded up so that a small percentage still adds a pod
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
    if not proposals:
        return current
    return min(proposals) if rules.select_policy == d.HPA_SELECT_POLICY_MIN else max(proposals)


def scale_down_limit(now_s: float, current: int, up_events: list[list[float]],
                     down_events: list[list[float]], rules: ScalingRules) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow now."""
    if rules.select_policy == d.HPA_SELECT_POLICY_DISABLED:
        return current
    proposals = []
    for policy in rules.policies:
        start = (current - _changes_in_period(now_s, policy.period_s, up_events)
                 + _changes_in_period(now_s, policy.period_s, down_events))
        if policy.kind == d.HPA_POLICY_PODS:
            proposals.append(start - policy.value)
        else:  # int32() truncation, as in the Go code
            proposals.append(int(start * (1 - policy.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select_policy == d.HPA_SELECT_POLICY_MIN else min(proposals)


def stabilize(now_s: float, current: int, desired: int, behavior: Behavior,
              recommendations: list[list[float]]) -> tuple[int, list[list[float]]]:
    """``stabilizeRecommendationWithBehaviors``; returns the result and the new history."""
    up_cutoff = now_s - behavior.scale_up.stabilization_window_s
    down_cutoff = now_s - behavior.scale_down.stabilization_window_s
    up_rec, down_rec = desired, desired
    for t, r in recommendations:
        if t > up_cutoff:
            up_rec = min(up_rec, int(r))
        if t > down_cutoff:
            down_rec = max(down_rec, int(r))
    result = max(current, up_rec)
    result = min(result, down_rec)
    oldest = min(up_cutoff, down_cutoff)
    history = [[t, r] for t, r in recommendations if t > oldest] + [[now_s, desired]]
    return result, history


def _record_event(now_s: float, previous: int, new: int, behavior: Behavior,
                  up_events: list[list[float]], down_events: list[list[float]]
                  ) -> tuple[list[list[float]], list[list[float]]]:
    """``storeScaleEvent``: remember a rescale for the policies' periods."""
    up_keep = now_s - behavior.scale_up.longest_period_s
    down_keep = now_s - behavior.scale_down.longest_period_s
    up = [[t, n] for t, n in up_events if t > up_keep]
    down = [[t, n] for t, n in down_events if t > down_keep]
    if new > previous:
        up.append([now_s, new - previous])
    elif new < previous:
        down.append([now_s, previous - new])
    return up, down


@dataclass(frozen=True)
class HPAResult:
    """One HPA evaluation: the replicas to set, why (code and message), the new pool state."""

    desired: int
    code: str
    message: str
    state: dict[str, Any]


def hpa_reconcile(now_s: float, current: int, metric_replicas: int | None, min_replicas: int,
                  max_replicas: int, behavior: Behavior, pool_state: Mapping[str, Any] | None,
                  metric_note: str = "") -> HPAResult:
    """One HPA evaluation of one scale target: ``reconcileAutoscaler`` from the replica proposal on.

    ``current`` is the target's ``spec.replicas``; ``metric_replicas`` the replica
    calculator's proposal (None: the metric could not be computed).
    """
    st = dict(pool_state or {})
    recs = [list(x) for x in st.get("recommendations", [])]
    up_events = [list(x) for x in st.get("scale_up_events", [])]
    down_events = [list(x) for x in st.get("scale_down_events", [])]
    if current > max_replicas:
        desired, code = max_replicas, REASON_BOUNDS
        message = f"current {current} above maxReplicas {max_replicas}"
    elif current < min_replicas:
        desired, code = min_replicas, REASON_BOUNDS
        message = f"current {current} below minReplicas {min_replicas}"
    elif metric_replicas is None:
        return HPAResult(current, REASON_NO_METRICS,
                         f"metric unavailable{metric_note}; keeping {current}",
                         {**st, "last_sync_s": now_s, "desired": current})
    else:
        stabilized, recs = stabilize(now_s, current, metric_replicas, behavior, recs)
        desired, code = stabilized, REASON_RECOMMENDATION
        message = f"recommendation {metric_replicas}{metric_note}"
        if stabilized != metric_replicas:
            code = (REASON_SCALE_UP_STABILIZED if metric_replicas >= current
                    else REASON_SCALE_DOWN_STABILIZED)
            message += f"; stabilized to {stabilized}"
        if desired > current:
            limit = max(scale_up_limit(now_s, current, up_events, down_events, behavior.scale_up),
                        current)
            allowed = min(max_replicas, limit)
            if desired > allowed:
                if allowed == limit and limit < max_replicas:
                    code = REASON_SCALE_UP_LIMIT
                    message += f"; scale-up policies allow {allowed} now"
                else:
                    code = REASON_BOUNDS
                    message += f"; bounded by maxReplicas {max_replicas}"
                desired = allowed
        elif desired < current:
            limit = min(scale_down_limit(now_s, current, up_events, down_events,
                                         behavior.scale_down), current)
            allowed = max(min_replicas, limit)
            if desired < allowed:
                if allowed == limit and limit > min_replicas:
                    code = REASON_SCALE_DOWN_LIMIT
                    message += f"; scale-down policies allow {allowed} now"
                else:
                    code = REASON_BOUNDS
                    message += f"; bounded by minReplicas {min_replicas}"
                desired = allowed
    if desired != current:
        up_events, down_events = _record_event(now_s, current, desired, behavior,
                                               up_events, down_events)
    new_state = {"last_sync_s": now_s, "desired": desired, "recommendations": recs,
                 "scale_up_events": up_events, "scale_down_events": down_events}
    return HPAResult(desired, code, message, new_state)


def sync_due(now_s: float, pool_state: Mapping[str, Any] | None, period_s: float) -> bool:
    """True when the controller loop runs at ``now_s`` (first call, or a period has passed)."""
    if not pool_state or "last_sync_s" not in pool_state:
        return True
    return now_s - float(pool_state["last_sync_s"]) >= period_s - d.TIME_SLACK_S


def validate_bounds(min_replicas: int, max_replicas: int, min_allowed: int = 0) -> None:
    """Reject replica bounds no rival accepts, naming the field (shared by every baseline)."""
    if not isinstance(min_replicas, int) or not isinstance(max_replicas, int):
        raise ValueError("min_replicas and max_replicas must be ints")
    if min_replicas < min_allowed:
        raise ValueError(f"min_replicas must be >= {min_allowed}, got {min_replicas}")
    if max_replicas < max(min_replicas, 1):
        raise ValueError(f"max_replicas must be >= max(min_replicas, 1), got {max_replicas} "
                         f"with min_replicas {min_replicas}")


@dataclass(frozen=True)
class KubernetesHPA:
    """The HPA on a Pods metric ``vllm:num_requests_running + vllm:num_requests_waiting``.

    ``target_per_pod`` is the ``target.averageValue`` of the metric. ``min_replicas`` must be
    >= 1 (``minReplicas`` of a Pods-metric HPA cannot be 0 without an alpha feature gate).
    """

    min_replicas: int = d.HPA_MIN_REPLICAS
    max_replicas: int = 16
    target_per_pod: float = d.TARGET_INFLIGHT_PER_POD
    tolerance: float = d.HPA_TOLERANCE
    sync_period_s: float = d.HPA_SYNC_PERIOD_S
    behavior: Behavior = field(default_factory=Behavior)
    name: str = "hpa"

    @property
    def tick_s(self) -> float:
        """The rival's control period (the simulator may tick faster; calls in between hold)."""
        return self.sync_period_s

    def __post_init__(self) -> None:
        validate_bounds(self.min_replicas, self.max_replicas, min_allowed=1)
        if not self.target_per_pod > 0:
            raise ValueError(f"target_per_pod must be > 0, got {self.target_per_pod}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if not self.sync_period_s > 0:
            raise ValueError(f"sync_period_s must be > 0, got {self.sync_period_s}")

    def _pool(self, now_s: float, pool: str, obs: PoolObservation,
              pool_state: Mapping[str, Any] | None) -> tuple[int, Reason, dict[str, Any]]:
        if not sync_due(now_s, pool_state, self.sync_period_s):
            held = int(pool_state["desired"])  # type: ignore[index]
            return held, Reason(REASON_BETWEEN_SYNCS, f"next HPA sync not due; keeping {held}",
                                pool), dict(pool_state)  # type: ignore[arg-type]
        # 0 current replicas: the Deployment's creation, brought to minReplicas by hpa_reconcile
        current = obs.current_replicas
        pods = group_pods(obs)
        proposal, note = None, ""
        if pods is not None:
            proposal = plain_metric_replicas(current, self.target_per_pod,
                                             self.tolerance, pods)
            if pods.ready > 0:
                note = (f" ({pods.metric_sum:g} in flight on {pods.ready} ready, "
                        f"{pods.missing} missing, {pods.unready} unready; target "
                        f"{self.target_per_pod:g}/pod)")
            else:
                note = " (no ready pod reports the metric)"
        result = hpa_reconcile(now_s, current, proposal, self.min_replicas,
                               self.max_replicas, self.behavior, pool_state, note)
        return result.desired, Reason(result.code, result.message, pool), result.state

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        return decide_per_pool(observation, state, self._pool)
