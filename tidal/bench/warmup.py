"""A warm-up before each bench replay, so no policy is judged on a cold launch.

A trace excerpt starts at full load, as if the service had just been switched on: every policy then
begins at its initial size with no history and loses the first minutes' requests to cold starts,
which says more about the excerpt than about the policy (a deployment in production has been
serving before any window one looks at). So each cell replays the trace's first
:data:`~tidal.bench.settings.WARMUP_S` seconds once before the trace itself, and scores only the
trace: requests that arrive after the warm-up, GPU time after it, pods that become ready, scale
events and pods removed before ready after it. Every policy -- and the oracle, which plans the
warm-up too -- gets the same warm-up.

The warm-up copies get fresh request, session and prefix-block ids, so they share no prefix-cache
blocks and no sessions with the scored requests.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from tidal.sim.runner import SimResult
from tidal.sim.traces import LLMRequest


def with_warmup(requests: Sequence[LLMRequest], warmup_s: float) -> tuple[LLMRequest, ...]:
    """The trace's first ``warmup_s`` seconds (renumbered), then the whole trace shifted by ``warmup_s``."""
    if warmup_s <= 0:
        return tuple(requests)
    id_offset = max((r.request_id for r in requests), default=0) + 1
    session_offset = max((r.session_id for r in requests if r.session_id is not None), default=0) + 1
    hash_offset = max((h for r in requests for h in r.hash_ids), default=0) + 1
    head = [replace(r, request_id=r.request_id + id_offset,
                    session_id=r.session_id + session_offset if r.session_id is not None else None,
                    hash_ids=tuple(h + hash_offset for h in r.hash_ids))
            for r in requests if r.arrival_s < warmup_s]
    return tuple(head) + tuple(replace(r, arrival_s=r.arrival_s + warmup_s) for r in requests)


def _scale_events(decisions: Sequence[dict[str, Any]], from_s: float) -> int:
    events, previous = 0, None
    for decision in decisions:
        desired = {pool: int(n) for pool, n in decision["desired"].items()}
        if previous is not None and decision["t_s"] >= from_s:
            events += sum(1 for pool, n in desired.items() if previous.get(pool) != n)
        previous = desired
    return events


def scored(result: SimResult, from_s: float, total: int, gpus_per_pod: int) -> dict[str, Any]:
    """A bench row's measured values over what happened from ``from_s`` on; ``total`` is the number
    of scored requests (unfinished and rejected ones count as missing both targets)."""
    done = result.requests
    keep = done["arrival_s"] >= from_s
    met_ttft, met_tpot = done["met_ttft"][keep], done["met_tpot"][keep]
    ttft = done["ttft_s"][keep]
    end = float(result.summary["simulated_s"])
    gpu_s = 0.0
    for pod in result.pods:
        if pod["scheduled_s"] is None:
            continue
        stop = pod["terminated_s"] if pod["terminated_s"] is not None else end
        gpu_s += max(0.0, stop - max(pod["scheduled_s"], from_s)) * gpus_per_pod
    return {
        "ttft_attainment": int(np.count_nonzero(met_ttft)) / total,
        "tpot_attainment": int(np.count_nonzero(met_tpot)) / total,
        "slo_attainment": int(np.count_nonzero(met_ttft & met_tpot)) / total,
        "gpu_hours": gpu_s / 3600.0,
        "cold_starts": sum(1 for p in result.pods if p["cold_start_s"] is not None and p["ready_s"] is not None
                           and p["ready_s"] >= from_s),
        "scale_events": _scale_events(result.decisions, from_s),
        "pods_removed_before_ready": sum(1 for p in result.pods if p["ready_s"] is None
                                         and p["terminated_s"] is not None and p["terminated_s"] >= from_s),
        "ttft_p99_s": float(np.percentile(ttft, 99)) if ttft.size else None,
        "unfinished": total - int(np.count_nonzero(keep)),
    }
