"""Conversion between the two Event APIs, which share one storage as in kube-apiserver.

Events are stored as written; reading through the other API converts field by field, following
the mapping documented for events.k8s.io/v1 (k8s.io/api/events/v1 types.go field comments).
"""

from __future__ import annotations

from typing import Any

# (core/v1 field, events.k8s.io/v1 field)
EVENT_FIELDS = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("related", "related"),
)


def convert_event(obj: dict[str, Any], api_version: str) -> dict[str, Any]:
    """``obj`` (either Event API) as ``api_version`` ("v1" or "events.k8s.io/v1")."""
    if obj.get("apiVersion") == api_version:
        return obj
    to_events_v1 = api_version == "events.k8s.io/v1"
    converted: dict[str, Any] = {"apiVersion": api_version, "kind": "Event",
                                 "metadata": obj.get("metadata", {})}
    for core_field, v1_field in EVENT_FIELDS:
        source, target = (core_field, v1_field) if to_events_v1 else (v1_field, core_field)
        if source in obj:
            converted[target] = obj[source]
    if to_events_v1 and not converted.get("eventTime"):
        # events.k8s.io/v1 requires eventTime; legacy core events often lack it. Derive it from
        # the legacy timestamps (MicroTime format) so strict clients can decode the object.
        legacy = (obj.get("lastTimestamp") or obj.get("firstTimestamp")
                  or obj.get("metadata", {}).get("creationTimestamp"))
        if legacy:
            converted["eventTime"] = legacy.replace("Z", ".000000Z")
    return converted
