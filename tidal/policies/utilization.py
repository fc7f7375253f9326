"""A simple utilisation-target rule: replicas = ceil(in-flight requests / target per replica).

The shape follows the Kubernetes HPA formula ``desired = ceil(current * metric /
target)`` with the metric being in-flight requests per ready replica, which
reduces to ``ceil(total in-flight / target)``; like the HPA, changes within a
tolerance of the target (10 %, the HPA default
``--horizontal-pod-autoscaler-tolerance``) are ignored. Missing metrics hold
the current size (never scale to zero on missing data).

Scale-down is stabilised like the HPA's: the policy scales down only to the highest
recommendation of the last ``scale_down_stabilization_s`` seconds (HPA default 300 s,
``--horizontal-pod-autoscaler-downscale-stabilization``), so a short lull does not cancel pods
that are still starting. The window lives in the returned state (a JSON-friendly dict), so
shells that persist the state keep it across ticks and restarts; with ``state=None`` only the
current recommendation counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from tidal.policies.defaults import HPA_SCALE_DOWN_STABILIZATION_S, HPA_TOLERANCE, TARGET_INFLIGHT_PER_REPLICA
from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

# Defaults live in tidal/policies/defaults.py (meaning and source there); these names are kept
# for the baselines and tests that import them from here.
HPA_DEFAULT_TOLERANCE = HPA_TOLERANCE
HPA_DEFAULT_SCALE_DOWN_STABILIZATION_S = HPA_SCALE_DOWN_STABILIZATION_S
DEFAULT_TARGET_INFLIGHT_PER_REPLICA = TARGET_INFLIGHT_PER_REPLICA

REASON_HOLD_NO_METRICS = "hold-no-metrics"
REASON_WITHIN_TOLERANCE = "within-tolerance"
REASON_SCALE = "utilization-target"
REASON_BOUNDS = "bounded"
REASON_STABILIZED = "scale-down-stabilized"


@dataclass(frozen=True)
class UtilizationTarget:
    target_inflight_per_replica: float = DEFAULT_TARGET_INFLIGHT_PER_REPLICA
    min_replicas: int = 1
    max_replicas: int = 16
    tolerance: float = HPA_DEFAULT_TOLERANCE
    scale_down_stabilization_s: float = HPA_DEFAULT_SCALE_DOWN_STABILIZATION_S
    name: str = "utilization"

    def __post_init__(self) -> None:
        if self.target_inflight_per_replica <= 0:
            raise ValueError("target_inflight_per_replica must be > 0")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError("need 0 <= min_replicas <= max_replicas")
        if self.tolerance < 0:
            raise ValueError("tolerance must be >= 0")
        if self.scale_down_stabilization_s < 0:
            raise ValueError("scale_down_stabilization_s must be >= 0")

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
        now = observation.now_s
        horizon = now - self.scale_down_stabilization_s
        past: dict[str, list[list[float]]] = state.get("recommendations", {}) if isinstance(state, dict) else {}
        desired, reasons, window = {}, [], {}
        for pool, obs in observation.pools.items():
            n, reason = self._pool(pool, obs)
            desired[pool], reason, window[pool] = stabilize_scale_down(
                pool, n, reason, obs.current_replicas, past.get(pool, ()), now, horizon,
                self.scale_down_stabilization_s)
            reasons.append(reason)
        return Decision(desired_replicas=desired, reasons=tuple(reasons)), {"recommendations": window}


def stabilize_scale_down(pool: str, recommended: int, reason: Reason, current: int,
                         past: Iterable[Sequence[float]], now_s: float, horizon_s: float,
                         window_s: float) -> tuple[int, Reason, list[list[float]]]:
    """HPA-style scale-down stabilisation of one pool: (replicas, reason, the window to keep).

    The window keeps the recommendations newer than ``horizon_s`` plus this one; a scale-down goes
    only as far as the window's highest recommendation, never above what runs (``current``), and
    scale-ups are never delayed. Shared by every rule that keeps such a window in its state.
    """
    kept = [[t, r] for t, r in past if horizon_s < t <= now_s]
    kept.append([now_s, recommended])
    stable = min(current, int(max(r for _, r in kept)))
    if stable > recommended:
        reason = Reason(REASON_STABILIZED, f"{reason.message}; scale-down held at {stable}, the highest "
                        f"recommendation of the last {window_s:g}s", pool)
        return stable, reason, kept
    return recommended, reason, kept


def resume_window(state: Any, now_s: float, current: Mapping[str, int]) -> dict[str, Any]:
    """The scale-down window after a restart: each pool's current size counts as recommended at ``now_s``.

    Nothing says what was recommended while the operator was down, and the state is persisted only
    when the decision changes, so recommendations of the last ticks before a crash may be missing.
    Counting what runs as recommended at the restart makes a restart lengthen a pending scale-down
    by at most the downtime and never shorten it, without a state write per tick.
    """
    past: Mapping[str, Any] = state.get("recommendations", {}) if isinstance(state, dict) else {}
    window = {pool: [list(entry) for entry in entries] for pool, entries in past.items()}
    for pool, replicas in current.items():
        window.setdefault(pool, []).append([now_s, replicas])
    return {**(state if isinstance(state, dict) else {}), "recommendations": window}
