"""What a serverless keep-alive / pre-warm policy sees of one function at a tick.

The decision-core contract (``tidal.policies.interface``) gives every pool a
``PoolObservation``. For the ``"function"`` pool the simulator hands over a
:class:`FunctionPoolObservation`: a ``PoolObservation`` (so any Autoscaler can
read it) with extra fields a keep-alive policy needs and that the generic
record lacks. A policy reads them with ``getattr(pool, "idle_gaps_s", ())`` so
it still runs, degraded, on a plain ``PoolObservation``.

Standard fields, for pool ``"function"``:

- ``ready_replicas``: instances that can run invocations (busy or idle);
- ``starting_replicas``: instances in their cold start;
- ``request_rate_rps``: invocations per second over the metrics window (1 min);
- ``running_requests``: invocations executing now;
- ``waiting_requests``: invocations waiting for a starting instance or a free slot.

Extra fields (all about the past; nothing here reveals a future arrival):

- ``idle_replicas``: ready instances running nothing;
- ``arrivals_since_last_tick``: invocations that arrived since the previous tick;
- ``cold_starts_since_last_tick``: of those, how many waited for a cold start;
- ``last_arrival_s``: time of the latest invocation (``None`` before the first);
- ``idle_since_s``: when the function last went idle (no invocation running or
  waiting); ``None`` while busy and before its first invocation;
- ``idle_gaps_s``: the function's idle times that ended since the previous tick,
  in order: each is the time from the moment nothing ran or waited to the next
  invocation's arrival. These are the "idle times" (ITs) of Shahrad et al.
  (ATC'20) whose histogram drives the hybrid keep-alive / pre-warm policy; they
  are exact here, where a per-minute trace would round them to minutes;
- ``peak_in_flight_since_last_tick``: the most invocations running or waiting at
  any instant since the previous tick (``running_requests`` + ``waiting_requests``
  is only the value at the tick); instances needed = this / concurrency;
- ``memory_mb``: memory of one instance; ``concurrency``: invocations one
  instance runs at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidal.policies.interface import PoolObservation


@dataclass(frozen=True)
class FunctionPoolObservation(PoolObservation):
    """A ``PoolObservation`` of one serverless function plus what keep-alive policies need."""

    idle_replicas: int = 0
    arrivals_since_last_tick: int = 0
    cold_starts_since_last_tick: int = 0
    last_arrival_s: float | None = None
    idle_since_s: float | None = None
    idle_gaps_s: tuple[float, ...] = ()
    peak_in_flight_since_last_tick: int = 0
    memory_mb: float = 0.0
    concurrency: int = 1
