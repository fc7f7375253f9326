"""Fixed keep-alive: the serverless platforms' default policy, the baseline for tidal's keep-alive.

Production FaaS platforms keep an instance loaded for a fixed time after its
last execution and then evict it. Shahrad et al., "Serverless in the Wild:
Characterizing and Optimizing the Serverless Workload at a Large Cloud
Provider" (USENIX ATC'20), Section 4, report that AWS Lambda and Azure Functions
kept a function's resources in memory for a fixed 10 and 20 minutes after an
execution; their hybrid histogram policy is measured
against the 10-minute fixed keep-alive, which is also OpenWhisk's default
idle-container timeout (``containerProxy.timeouts.idle-container = 10 minutes``
in OpenWhisk's invoker ``application.conf``). No pre-warming: the pool floor stays at ``min_instances`` (0 = scale to zero).

Contract with the simulator shell (``tidal.sim.serverless``) and the operator:
``Decision.details[DETAIL_KEEP_ALIVE_S]`` is the keep-alive in seconds (``inf``
for never); ``desired_replicas["function"]`` is the number of instances to keep
(pre-warmed) at least, never a cap: invocations that find no idle instance still
cold-start new ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tidal.policies.interface import POOL_FUNCTION, Decision, Observation, Reason

DETAIL_KEEP_ALIVE_S = "keep_alive_s"
"""Key of ``Decision.details`` that carries the keep-alive window in seconds."""
DETAIL_PREWARM_S = "prewarm_s"
"""Key of ``Decision.details`` for a pre-warm window (seconds after the last invocation); informative."""

OPENWHISK_KEEP_ALIVE_S = 600.0
"""10 minutes: AWS Lambda's keep-alive per Shahrad et al. ATC'20 and OpenWhisk's idle-container default."""

REASON_FIXED_KEEP_ALIVE = "fixed-keep-alive"


@dataclass(frozen=True)
class FixedKeepAlive:
    """Keep idle instances ``keep_alive_s`` after their last execution; never pre-warm."""

    keep_alive_s: float = OPENWHISK_KEEP_ALIVE_S
    min_instances: int = 0
    name: str = "fixed-keepalive"

    def __post_init__(self) -> None:
        if math.isnan(self.keep_alive_s) or self.keep_alive_s < 0:
            raise ValueError(f"keep_alive_s must be >= 0 (inf for never), got {self.keep_alive_s}")
        if self.min_instances < 0:
            raise ValueError(f"min_instances must be >= 0, got {self.min_instances}")

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        window = ("forever" if math.isinf(self.keep_alive_s)
                  else f"{self.keep_alive_s:g} s")
        reason = Reason(REASON_FIXED_KEEP_ALIVE,
                        f"idle instances kept {window} after their last execution; "
                        f"{self.min_instances} kept at least", POOL_FUNCTION)
        return (Decision(desired_replicas={POOL_FUNCTION: self.min_instances}, reasons=(reason,),
                         details={DETAIL_KEEP_ALIVE_S: self.keep_alive_s}),
                state)
