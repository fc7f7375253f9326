"""Fixed keep-alive: the serverless platforms' default policy, the baseline for tidal's keep-alive.

Production FaaS platforms keep an instance loaded for a fixed time after its
last execution and then evict it. Shahrad et al., "Serverless in the Wild:
Characterizing and Optimizing the Serverless Workload at a Large Cloud
Provider" (USENIX ATC'20), Section 4, report that AWS Lambda and Azure Functions
kept a function's resources in memory for a fixed 10 and 20 minutes after an
execution; their hybrid histogram policy is measured against the 10-minute
fixed keep-alive, which is also OpenWhisk's default idle-container timeout
(``containerProxy.timeouts.idle-container = 10 minutes`` in OpenWhisk's invoker
``application.conf``). No pre-warming.

Contract with the simulator shell (``tidal.sim.serverless``): the decision's
``desired_replicas["function"]`` is the number of instances the policy wants
now, and ``details[DETAIL_IDLE_TIMEOUT_S]`` asks the platform to manage idle
instances itself: an instance above the desired count is removed once it has
been idle that long, measured in continuous time from the end of its last
execution (``inf``: never). Without that key the policy manages instances
through ``desired_replicas`` alone (as :class:`tidal.policies.keepalive.KeepAlivePolicy`
does) and idle instances above the desired count go at the next tick. This
policy asks for ``min_instances`` (0: scale to zero) and the fixed idle timeout;
``details[DETAIL_KEEP_ALIVE_S]`` repeats the window for status and reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tidal.policies.interface import POOL_FUNCTION, Decision, Observation, Reason

DETAIL_KEEP_ALIVE_S = "keep_alive_s"
"""Key of ``Decision.details``: the keep-alive window in seconds (for status and reports)."""
DETAIL_IDLE_TIMEOUT_S = "idle_timeout_s"
"""Key of ``Decision.details``: per-instance idle timeout (seconds) the platform enforces itself."""

OPENWHISK_KEEP_ALIVE_S = 600.0
"""10 minutes: AWS Lambda's keep-alive (Shahrad et al., ATC'20); OpenWhisk's idle default."""

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
                         details={DETAIL_KEEP_ALIVE_S: self.keep_alive_s,
                                  DETAIL_IDLE_TIMEOUT_S: self.keep_alive_s}),
                state)
