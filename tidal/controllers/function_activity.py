"""What a ServerlessFunction's keep-alive policy observes when the activator fronts it at zero.

The serverless simulator hands :class:`~tidal.policies.keepalive.KeepAlivePolicy` a
:class:`~tidal.sim.serverless.observation.FunctionPoolObservation` with exact arrivals and idle
times (the policy's exact-idle-gap branch). The operator builds the same record here from what the
activator reports (``tidal.activator.demand``: the arrival times of requests that found no ready
instance, and how many it holds), so both shells run that branch on the same inputs. The
builder is pure; the parity test (tests/controllers/test_function_activity.py) replays one
recorded arrival sequence through it and through the simulator.

When the record is exact: at a tick with activator arrivals, and at every tick at zero
instances (then every request goes to the activator, so "none reported" means none arrived).
While instances run, requests reach them directly and the operator sees them only through the
function's metrics, at tick resolution, so the plain observation is passed on unchanged (the
policy's tick-resolution branch) unless the caller knows the direct arrivals since the last tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from tidal.policies.interface import PoolObservation
from tidal.sim.serverless.observation import FunctionPoolObservation


@dataclass(frozen=True)
class TickActivity:
    """Demand seen since the previous tick, beyond the function's own metrics."""

    arrivals_s: tuple[float, ...] = ()
    """Arrival times (wall-clock seconds, ascending) of the requests the activator held."""
    held: int = 0
    """Requests the activator holds now (waiting for an instance)."""
    direct_arrivals: int | None = None
    """Requests that reached running instances directly since the previous tick, when known."""


def function_pool(
    pool: PoolObservation,
    activity: TickActivity,
    *,
    instances: int,
    idle_since_s: float | None,
    memory_mb: float = 0.0,
) -> PoolObservation:
    """The observation of pool ``function`` for this tick.

    ``idle_since_s``: when the function last went idle (nothing running or waiting), as well as
    the caller knows it (the simulator: exactly; the operator: the policy state's estimate). The
    first held arrival after it ends one idle time, ``arrival - idle_since_s``, exactly as the
    simulator records it; later arrivals of the same tick find the function busy (held).
    """
    exact = bool(activity.arrivals_s) or instances == 0 or activity.direct_arrivals is not None
    if not exact:
        return pool
    arrivals = len(activity.arrivals_s) + (activity.direct_arrivals or 0)
    running = pool.running_requests or 0.0
    waiting = (pool.waiting_requests or 0.0) + activity.held
    gaps: tuple[float, ...] = ()
    if activity.arrivals_s and idle_since_s is not None and not activity.direct_arrivals:
        gaps = (max(0.0, activity.arrivals_s[0] - idle_since_s),)
    busy = arrivals > 0 or running + waiting > 0
    base = {f.name: getattr(pool, f.name) for f in fields(PoolObservation)}
    if activity.held:
        base["waiting_requests"] = waiting
    return FunctionPoolObservation(
        **base,
        arrivals_since_last_tick=arrivals,
        last_arrival_s=activity.arrivals_s[-1] if activity.arrivals_s else None,
        idle_since_s=None if busy else idle_since_s,
        idle_gaps_s=gaps,
        peak_in_flight_since_last_tick=math.ceil(running + waiting),
        memory_mb=memory_mb,
    )


def arrivals_cursor_s(
    remembered_s: float | None, *, last_seen_s: float | None, now_s: float, interval_s: float
) -> float:
    """The time after which a reported arrival is new to the operator.

    ``remembered_s``: the latest arrival this operator process used (None after a restart, when
    the annotations still carry up to 64 old arrivals that must not count again, or wake a
    function at zero). Then the keep-alive state's last observation (persisted with it) marks
    what was already seen, or, without one, the last interval."""
    if remembered_s is not None:
        return remembered_s
    if last_seen_s is not None:
        return last_seen_s
    return now_s - interval_s
