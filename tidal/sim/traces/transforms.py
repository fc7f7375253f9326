"""Pure transformations of request lists: speed a trace up, cut a time window."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from tidal.sim.traces.records import LLMRequest


def rate_scale(requests: Sequence[LLMRequest], factor: float) -> list[LLMRequest]:
    """Divide every arrival time by ``factor``: ``factor=2`` doubles the request rate.

    Count, order and token counts are unchanged; only the clock is compressed
    (``factor > 1``) or stretched (``factor < 1``).
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"rate_scale factor must be a finite number > 0, got {factor!r}")
    return [dataclasses.replace(r, arrival_s=r.arrival_s / factor) for r in requests]


def time_window(
    requests: Sequence[LLMRequest], start_s: float, duration_s: float | None
) -> list[LLMRequest]:
    """Requests arriving in ``[start_s, start_s + duration_s)``, re-based so the window starts at 0.

    ``duration_s=None`` keeps everything from ``start_s`` on. This is an explicit
    selection the caller asks for, not a loader dropping rows it cannot read.
    """
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"start_s must be a finite number >= 0, got {start_s!r}")
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a finite number > 0 or None, got {duration_s!r}")
    end_s = math.inf if duration_s is None else start_s + duration_s
    return [
        dataclasses.replace(r, arrival_s=r.arrival_s - start_s)
        for r in requests
        if start_s <= r.arrival_s < end_s
    ]


def superpose(requests: Sequence[LLMRequest], copies: int) -> list[LLMRequest]:
    """``copies`` copies of the trace over the same span, copy ``k`` shifted by ``k / copies`` of the
    span and wrapped around its end: ``copies`` times the load with the trace's own burst structure
    and request mix, at its own clock (unlike :func:`rate_scale`, cold starts keep their weight
    against the trace's time scale). Request ids are renumbered in arrival order."""
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies!r}")
    if not requests:
        return []
    span = max(r.arrival_s for r in requests)

    def wrapped(t: float) -> float:
        return t - span if t > span else t

    shifted = [dataclasses.replace(r, arrival_s=wrapped(r.arrival_s + k * span / copies))
               for k in range(copies) for r in requests]
    shifted.sort(key=lambda r: r.arrival_s)
    return [dataclasses.replace(r, request_id=i) for i, r in enumerate(shifted)]
