"""The one loop every per-pool baseline shares: each pool decided on its own, its state kept apart.

The rivals (HPA, KEDA, Knative KPA, AIBrix) scale one target at a time; a ModelDeployment's
pools are such targets. The state a shell persists is ``{"pools": {pool: that pool's state}}``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

PoolRule = Callable[[float, str, PoolObservation, Any], tuple[int, Reason, Any]]
"""(now, pool, the pool's observation, its previous state) -> (replicas, reason, new state)."""


def decide_per_pool(observation: Observation, state: Any, rule: PoolRule) -> tuple[Decision, dict[str, Any]]:
    """Apply ``rule`` to every pool of ``observation`` with that pool's part of ``state``."""
    past: Mapping[str, Any] = state.get("pools", {}) if isinstance(state, dict) else {}
    desired, reasons, pools = {}, [], {}
    for pool, obs in observation.pools.items():
        desired[pool], reason, pools[pool] = rule(observation.now_s, pool, obs, past.get(pool))
        reasons.append(reason)
    return Decision(desired_replicas=desired, reasons=tuple(reasons)), {"pools": pools}
