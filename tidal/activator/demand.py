"""The demand signal the activator sends and the operator reads: an annotation on the workload.

Why an annotation on the ServerlessFunction (and not an HTTP call to the operator): kopf already
watches the function, so the patch arrives at the operator as an event within the watch's latency
(tens of milliseconds) with no new listener, Service, authentication or leader discovery; a
standby operator ignores it and the active one acts, and the record survives an operator restart.
Each activator replica writes its own key (``demand.activator.tidal.dev/<replica>``), so replicas
never overwrite one another and a merge patch needs no read first.

The value is JSON: ``{"arrivals": [wall-clock seconds, ascending], "held": n, "sentS": t}``: the
most recent arrivals the replica held (requests that found no ready instance), and how many it
holds now. The operator reads the arrivals newer than the last ones it used (``new_arrivals``) and
feeds them to the keep-alive policy as exact arrival times.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

ANNOTATION_PREFIX = "demand.activator.tidal.dev/"
MAX_KEY_NAME = 63
"""Annotation key names (after the prefix) are at most 63 characters (Kubernetes key syntax)."""


def annotation_key(replica: str) -> str:
    """This replica's annotation key; a pod name longer than 63 characters is cut from the left
    (the random suffix that tells replicas apart is at the end)."""
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in replica)[-MAX_KEY_NAME:]
    return ANNOTATION_PREFIX + (name.strip("-_.") or "activator")


@dataclass(frozen=True)
class DemandReport:
    """What one activator replica last reported for one workload."""

    arrivals_s: tuple[float, ...]
    held: int
    sent_s: float

    def to_json(self) -> str:
        return json.dumps({"arrivals": [round(t, 6) for t in self.arrivals_s], "held": self.held,
                           "sentS": round(self.sent_s, 6)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DemandReport | None:
        """The report, or None for anything that is not one (a foreign or damaged annotation must
        not break the operator's tick)."""
        try:
            data = json.loads(text)
            arrivals = tuple(float(t) for t in data["arrivals"])
            held, sent = int(data.get("held", 0)), float(data.get("sentS", 0.0))
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        if not all(math.isfinite(t) for t in (*arrivals, sent)) or held < 0:
            return None
        return cls(tuple(sorted(arrivals)), held, sent)


def reports(annotations: Mapping[str, str] | None) -> list[DemandReport]:
    """Every activator replica's report found in an object's annotations."""
    found = []
    for key, value in (annotations or {}).items():
        if key.startswith(ANNOTATION_PREFIX) and isinstance(value, str):
            report = DemandReport.from_json(value)
            if report is not None:
                found.append(report)
    return found


def new_arrivals(annotations: Mapping[str, str] | None, after_s: float | None) -> tuple[float, ...]:
    """The arrivals of every replica after ``after_s`` (all of them for None), in time order."""
    return tuple(sorted(
        t for report in reports(annotations) for t in report.arrivals_s
        if after_s is None or t > after_s
    ))


def held_now(annotations: Mapping[str, str] | None, *, newer_than_s: float | None = None) -> int:
    """Requests held over all replicas, counting only reports sent after ``newer_than_s``."""
    return sum(r.held for r in reports(annotations) if newer_than_s is None or r.sent_s > newer_than_s)
