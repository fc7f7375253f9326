"""What the operator must remember about a workload across restarts, as bounded compact JSON.

Stored in the ConfigMap ``<name>-tidal-state`` (owned by the workload, so it is garbage-collected
with it). It holds the load forecaster's and cold-start predictor's learned state, the last
decisions (for ``tidal explain``), the key of the last scale event (so a restarted operator does
not announce the same scale change twice), the tick counter and the pods whose start was already
counted. Pure: encoding and decoding only; the operator does the I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tidal.policies.defaults import MAX_COUNTED_STARTS

STATE_FORMAT = 1
STATE_KEY = "state.json"
"""ConfigMap data key."""
MAX_STATE_BYTES = 256 * 1024
"""A quarter of the 1 MiB ConfigMap limit (Kubernetes ConfigMap docs: "cannot exceed 1 MiB"),
leaving headroom for metadata and managedFields."""
MAX_DECISIONS = 20
"""Decisions kept for ``tidal explain``; at the default 15 s interval, the last five minutes."""
MAX_COUNTED_PODS = MAX_COUNTED_STARTS
"""Pod uids whose start was already counted; more than any pool's replicas in flight at once."""


class StateError(ValueError):
    """Stored state that cannot be read; the message says what is wrong. The operator starts fresh."""


def state_configmap_name(workload: str) -> str:
    return f"{workload}-tidal-state"


@dataclass
class WorkloadState:
    """Everything persisted for one workload. ``decisions`` are oldest first."""

    forecaster: dict[str, Any] | None = None
    cold_start: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    last_scale_event: str | None = None
    tick: int = 0
    counted_pods: list[str] = field(default_factory=list)
    policy: dict[str, Any] | None = None
    """The utilisation rule's scale-down window. ``forecaster``, ``cold_start``, ``counted_pods`` and
    ``policy`` are the decision core's state in stored form (tidal/core/state.py ``to_parts``)."""

    def add_decision(self, record: dict[str, Any]) -> None:
        self.decisions.append(record)
        del self.decisions[:-MAX_DECISIONS]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT, "tick": self.tick, "lastScaleEvent": self.last_scale_event,
            "decisions": self.decisions, "countedPods": self.counted_pods,
            "forecaster": self.forecaster, "coldStart": self.cold_start, "policy": self.policy,
        }


def _dump(d: dict[str, Any]) -> str:
    return json.dumps(d, separators=(",", ":"), sort_keys=True, allow_nan=False)


def encode_state(state: WorkloadState, max_bytes: int = MAX_STATE_BYTES) -> str:
    """Compact JSON within ``max_bytes``: drops the oldest decisions first, then the cold-start
    history, then the forecaster history (each is re-learnt; the scale-event key never is dropped)."""
    d = state.to_dict()
    text = _dump(d)
    decisions = list(d["decisions"])
    while len(text.encode()) > max_bytes and decisions:
        decisions.pop(0)
        d["decisions"] = decisions
        text = _dump(d)
    for heavy in ("coldStart", "forecaster"):
        if len(text.encode()) <= max_bytes:
            break
        d[heavy] = None
        text = _dump(d)
    if len(text.encode()) > max_bytes:
        d["countedPods"] = []
        text = _dump(d)
    return text


def decode_state(text: str) -> WorkloadState:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"{STATE_KEY} is not JSON ({exc})") from None
    if not isinstance(d, dict) or d.get("format") != STATE_FORMAT:
        raise StateError(f"{STATE_KEY}: expected an object with format {STATE_FORMAT}, got {str(d)[:80]!r}")
    try:
        return WorkloadState(
            forecaster=d.get("forecaster"), cold_start=d.get("coldStart"),
            decisions=list(d.get("decisions") or [])[-MAX_DECISIONS:],
            last_scale_event=d.get("lastScaleEvent"), tick=int(d.get("tick") or 0),
            counted_pods=[str(u) for u in d.get("countedPods") or []][-MAX_COUNTED_PODS:],
            policy=d.get("policy") if isinstance(d.get("policy"), dict) else None,
        )
    except (TypeError, ValueError) as exc:
        raise StateError(f"{STATE_KEY}: malformed field ({exc})") from None
