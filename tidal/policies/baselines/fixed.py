"""Fixed replicas: the static-provisioning baseline. Always asks for the same count per pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tidal.policies.interface import Decision, Observation, Reason

REASON_FIXED = "fixed"


@dataclass(frozen=True)
class FixedReplicas:
    """Desired replicas are ``replicas[pool]`` whatever the observation says."""

    replicas: Mapping[str, int] = field(default_factory=dict)
    name: str = "fixed"

    def __post_init__(self) -> None:
        for pool, n in self.replicas.items():
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"replicas for pool {pool!r} must be an int >= 0, got {n!r}")

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        desired = {pool: self.replicas.get(pool, obs.current_replicas)
                   for pool, obs in observation.pools.items()}
        reasons = tuple(Reason(REASON_FIXED, f"fixed at {n} replicas", pool)
                        for pool, n in desired.items())
        return Decision(desired_replicas=desired, reasons=reasons), state
