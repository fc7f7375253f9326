"""A simple utilisation-target rule: replicas = ceil(in-flight requests / target per replica).

The shape follows the Kubernetes HPA formula ``desired = ceil(current * metric /
target)`` with the metric being in-flight requests per ready replica, which
reduces to ``ceil(total in-flight / target)``; like the HPA, changes within a
tolerance of the target (10 %, the HPA default
``--horizontal-pod-autoscaler-tolerance``) are ignored. Missing metrics hold
the current size (never scale to zero on missing data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

HPA_DEFAULT_TOLERANCE = 0.1
# In-flight requests per replica; the order of vLLM's useful batch sizes for chat
# workloads on one GPU (the KPA's concurrency-target default is 100 per pod for
# generic HTTP; LLM replicas saturate much earlier).
DEFAULT_TARGET_INFLIGHT_PER_REPLICA = 16.0

REASON_HOLD_NO_METRICS = "hold-no-metrics"
REASON_WITHIN_TOLERANCE = "within-tolerance"
REASON_SCALE = "utilization-target"
REASON_BOUNDS = "bounded"


@dataclass(frozen=True)
class UtilizationTarget:
    target_inflight_per_replica: float = DEFAULT_TARGET_INFLIGHT_PER_REPLICA
    min_replicas: int = 1
    max_replicas: int = 16
    tolerance: float = HPA_DEFAULT_TOLERANCE
    name: str = "utilization"

    def __post_init__(self) -> None:
        if self.target_inflight_per_replica <= 0:
            raise ValueError("target_inflight_per_replica must be > 0")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.tolerance < 0:
            raise ValueError("tolerance must be >= 0")

    def _pool(self, pool: str, obs: PoolObservation) -> tuple[int, Reason]:
        current = obs.current_replicas
        if obs.running_requests is None or obs.waiting_requests is None:
            held = min(max(current, self.min_replicas), self.max_replicas)
            return held, Reason(REASON_HOLD_NO_METRICS, "in-flight requests unknown; holding",
                                pool)
        inflight = obs.running_requests + obs.waiting_requests
        base = max(obs.ready_replicas, 1)
        ratio = (inflight / base) / self.target_inflight_per_replica
        if obs.ready_replicas > 0 and abs(ratio - 1.0) <= self.tolerance:
            want = current
            reason = Reason(REASON_WITHIN_TOLERANCE,
                            f"{inflight:.0f} in flight on {obs.ready_replicas} ready "
                            f"(ratio {ratio:.2f} within {self.tolerance:.0%})", pool)
        else:
            want = math.ceil(inflight / self.target_inflight_per_replica)
            reason = Reason(REASON_SCALE,
                            f"{inflight:.0f} in flight / target {self.target_inflight_per_replica:g}"
                            f" per replica -> {want}", pool)
        bounded = min(max(want, self.min_replicas), self.max_replicas)
        if bounded != want:
            reason = Reason(REASON_BOUNDS, f"{reason.message}; bounded to {bounded} "
                            f"[{self.min_replicas}, {self.max_replicas}]", pool)
        return bounded, reason

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        desired, reasons = {}, []
        for pool, obs in observation.pools.items():
            n, reason = self._pool(pool, obs)
            desired[pool] = n
            reasons.append(reason)
        return Decision(desired_replicas=desired, reasons=tuple(reasons)), state
