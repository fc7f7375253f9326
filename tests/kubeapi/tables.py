"""Server-side printing: ``meta.k8s.io/v1 Table`` responses, as ``kubectl get`` requests them.

Columns are Name and Age for every kind, plus a CRD's ``additionalPrinterColumns``. JSONPath in
printer columns supports dotted paths, ``[n]`` indexes and ``[?(@.field=="value")]`` filters,
which is what CRDs use in practice.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from tests.kubeapi.resources import ResourceType

_STEP_RE = re.compile(r"""\.([A-Za-z0-9_\-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)==["']([^"']*)["']\)\]""")


def jsonpath_value(obj: Any, path: str) -> Any:
    """Evaluate the small JSONPath subset used by printer columns; None when absent."""
    nodes = [obj]
    position = 0
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    while position < len(path):
        match = _STEP_RE.match(path, position)
        if not match:
            raise ValueError(f"unsupported JSONPath {path!r} at offset {position}")
        field, index, filter_field, filter_value = match.groups()
        next_nodes = []
        for node in nodes:
            if field is not None and isinstance(node, dict) and field in node:
                next_nodes.append(node[field])
            elif index is not None and isinstance(node, list) and int(index) < len(node):
                next_nodes.append(node[int(index)])
            elif filter_field is not None and isinstance(node, list):
                for item in node:
                    probe = item
                    for part in filter_field.split("."):
                        probe = probe.get(part) if isinstance(probe, dict) else None
                    if probe is not None and str(probe) == filter_value:
                        next_nodes.append(item)
        nodes = next_nodes
        position = match.end()
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else nodes


def human_age(created: str | None, now: datetime.datetime) -> str:
    """kubectl-style short duration (e.g. 5s, 3m, 2h, 4d)."""
    if not created:
        return "<unknown>"
    then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def to_table(
    rtype: ResourceType,
    objects: list[dict[str, Any]],
    list_meta: dict[str, Any],
    include_object: str,
    now: datetime.datetime,
) -> dict[str, Any]:
    columns = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                "description": "Name must be unique within a namespace."}]
    extra = [c for c in rtype.printer_columns if c.get("name") != "Age"]
    columns += [
        {"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
         "priority": c.get("priority", 0), "description": c.get("description", "")}
        for c in extra
    ]
    columns.append({"name": "Age", "type": "string", "format": "", "priority": 0,
                    "description": "CreationTimestamp is a timestamp representing the server time "
                                   "when this object was created."})
    rows = []
    for obj in objects:
        cells: list[Any] = [obj["metadata"]["name"]]
        for column in extra:
            value = jsonpath_value(obj, column["jsonPath"])
            cells.append("<none>" if value is None else value)
        cells.append(human_age(obj["metadata"].get("creationTimestamp"), now))
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial_metadata(obj)
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}
