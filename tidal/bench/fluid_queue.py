"""SLO attainment of a FIFO queue in the fluid limit: requests arriving at a constant rate within a
step, served at a constant rate, with the backlog carried to the next step (pure).

Used by the fair-share bench (tidal/bench/fairshare.py) to turn a tenant's per-minute grant into
the share of its requests that meet the TTFT target without replaying a million requests per
tenant-hour: a request arriving ``s`` seconds into the step waits ``Q(s) / c``, with
``Q(s) = max(0, B + (lambda - c) s)`` the fluid queue (Kleinrock, *Queueing Systems* vol. 2,
ch. 2: the fluid approximation of a queue under sustained overload), and meets the target when
that wait is at most ``ttft_s``; requests that would wait past a timeout leave the queue at the
step's end. It ignores the randomness within a step (a step's requests all
meet the target when the grant covers their rate and no backlog is left), so it reports the
queueing that a short grant causes, not the tail a replica's own batching adds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class StepOutcome:
    """One step: requests arrived, requests that met the target, the backlog left (requests)."""

    arrived: float
    met: float
    backlog: float


def fluid_step(rate_rps: float, capacity_rps: float, backlog: float, ttft_s: float, step_s: float,
               abandon_s: float = math.inf) -> StepOutcome:
    """Arrivals at ``rate_rps`` for ``step_s`` seconds into a FIFO queue holding ``backlog`` requests,
    served at ``capacity_rps``; a request meets the target when its wait is at most ``ttft_s``. At
    the step's end, requests that would still wait more than ``abandon_s`` at this capacity leave
    (a client or gateway timeout): the backlog carried is at most ``capacity_rps * abandon_s``."""
    if min(rate_rps, capacity_rps, backlog, ttft_s, abandon_s) < 0 or step_s <= 0:
        raise ValueError("rates, backlog, ttft_s and abandon_s must be >= 0 and step_s > 0")
    arrived = rate_rps * step_s
    end_backlog = min(max(0.0, backlog + (rate_rps - capacity_rps) * step_s), capacity_rps * abandon_s)
    if capacity_rps <= 0:
        return StepOutcome(arrived, 0.0, end_backlog)
    limit = capacity_rps * ttft_s          # the queue a request may find and still meet the target
    drift = rate_rps - capacity_rps
    if drift > 0:                          # the queue grows: requests meet the target until it passes the limit
        met_s = min(step_s, max(0.0, (limit - backlog) / drift))
    elif drift < 0:                        # the queue drains: requests meet it once it is under the limit
        met_s = step_s - min(step_s, max(0.0, (backlog - limit) / -drift))
    else:
        met_s = step_s if backlog <= limit else 0.0
    return StepOutcome(arrived, rate_rps * met_s, end_backlog)
