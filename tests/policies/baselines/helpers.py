"""Small builders shared by the baseline tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tidal.policies.interface import POOL_UNIFIED, Observation, PoolObservation


def unified(t_s: float, ready: int, running: float | None = 0.0, waiting: float | None = 0.0,
            starting: int = 0, pending: int = 0, kv: float | None = None) -> Observation:
    """One observation of the unified pool."""
    return Observation(t_s, {POOL_UNIFIED: PoolObservation(
        ready_replicas=ready, starting_replicas=starting, pending_replicas=pending,
        running_requests=running, waiting_requests=waiting, kv_cache_usage_ratio=kv)})


def json_roundtrip(state: Any) -> Any:
    """The state as a shell that persists JSON would hand it back."""
    return json.loads(json.dumps(state))


def run(policy: Any, observations: list[Observation], state: Any = None,
        via_json: bool = True) -> tuple[list[int], list[str], Any]:
    """Feed observations in order; returns desired unified replicas, reason codes, last state."""
    counts, codes = [], []
    for o in observations:
        decision, state = policy.decide(o, state)
        if via_json:
            state = json_roundtrip(state)
        counts.append(decision.desired_replicas[POOL_UNIFIED])
        codes.append(decision.reasons[0].code)
    return counts, codes, state


# A random pool trajectory: (ready, starting, pending, running, waiting, kv, metrics present).
pool_steps = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 5), st.integers(0, 5),
              st.floats(0, 2000, allow_nan=False), st.floats(0, 2000, allow_nan=False),
              st.floats(0, 1, allow_nan=False), st.booleans()),
    min_size=1, max_size=40)


def observations_from(steps: list[tuple], tick_s: float) -> list[Observation]:
    out = []
    for i, (ready, starting, pending, running, waiting, kv, present) in enumerate(steps):
        out.append(unified(i * tick_s, ready,
                           running if present else None, waiting if present else None,
                           starting, pending, (kv if ready else None) if present else None))
    return out
