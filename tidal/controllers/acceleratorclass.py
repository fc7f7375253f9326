"""AcceleratorClass inventory: how many devices of the class the cluster has, uses and has free.

Pure: the operator lists Nodes and Pods (plain JSON dicts as the API returns them, camelCase) and
hands them here. A node belongs to a class when it carries every label of the class's
``nodeSelector`` and advertises the class's ``deviceResourceName`` (an empty selector matches every
node that advertises the resource). ``used`` is the sum of the device requests of the Pods on those
nodes that have not terminated, with the Kubernetes effective-request rule for init containers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from tidal.api.acceleratorclass import AcceleratorClass, AcceleratorClassStatus
from tidal.api.types import Condition
from tidal.controllers.conditions import set_condition

TERMINATED_PHASES = frozenset({"Succeeded", "Failed"})
"""Pod phases whose resources the scheduler no longer counts (kube-scheduler's NodeInfo)."""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def device_count(value: Any) -> int:
    """Whole devices in a resource quantity (``"8"``); malformed values count as 0."""
    try:
        quantity = parse_quantity(value)
    except (ValueError, TypeError):
        return 0
    return max(0, int(math.floor(quantity)))


def node_matches(node: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    labels = _labels(node)
    return all(labels.get(k) == v for k, v in selector.items())


def node_allocatable(node: Mapping[str, Any], resource: str) -> int:
    return device_count(((node.get("status") or {}).get("allocatable") or {}).get(resource, 0))


def _container_request(container: Mapping[str, Any], resource: str) -> int:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    if resource in requests:
        return device_count(requests[resource])
    # Extended resources cannot be overcommitted: a limit alone implies an equal request.
    return device_count((resources.get("limits") or {}).get(resource, 0))


def pod_request(pod: Mapping[str, Any], resource: str) -> int:
    """Effective request of a pod: max(sum over containers, largest init container), as the scheduler counts."""
    spec = pod.get("spec") or {}
    regular = sum(_container_request(c, resource) for c in spec.get("containers") or [])
    init = max(
        (_container_request(c, resource) for c in spec.get("initContainers") or []), default=0
    )
    return max(regular, init)


def pod_counts(pod: Mapping[str, Any]) -> bool:
    """Whether a pod holds its resources: bound to a node and not terminated."""
    return (
        bool((pod.get("spec") or {}).get("nodeName"))
        and (pod.get("status") or {}).get("phase") not in TERMINATED_PHASES
    )


@dataclass(frozen=True)
class Inventory:
    """Devices of one resource on a set of nodes."""

    nodes: tuple[str, ...]
    allocatable: int
    used: int
    free_by_node: tuple[int, ...] = ()
    """Free devices on each node, largest first (a multi-device replica needs them on one node)."""

    @property
    def free(self) -> int:
        return max(0, self.allocatable - self.used)


def inventory(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    *,
    resource: str,
    selector: Mapping[str, str],
) -> Inventory:
    """Inventory of ``resource`` on the nodes matching ``selector`` that advertise it."""
    matched = {
        _name(n): node_allocatable(n, resource)
        for n in nodes
        if node_matches(n, selector)
        and resource in ((n.get("status") or {}).get("allocatable") or {})
    }
    used_on: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if pod_counts(p) and node in matched:
            used_on[node] = used_on.get(node, 0) + pod_request(p, resource)
    free_by_node = sorted((max(0, n - used_on.get(name, 0)) for name, n in matched.items()), reverse=True)
    return Inventory(tuple(sorted(matched)), sum(matched.values()), sum(used_on.values()), tuple(free_by_node))


def class_inventory(
    accelerator: AcceleratorClass,
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
) -> Inventory:
    return inventory(
        nodes,
        pods,
        resource=accelerator.spec.device_resource_name,
        selector=accelerator.spec.node_selector,
    )


def compute_status(
    accelerator: AcceleratorClass, inv: Inventory, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """Status (camelCase) with an ``Available`` condition that names the cause when nothing is free."""
    resource = accelerator.spec.device_resource_name
    if not inv.nodes:
        selector = (
            ", ".join(f"{k}={v}" for k, v in sorted(accelerator.spec.node_selector.items()))
            or "(any)"
        )
        available, reason = False, "NoMatchingNodes"
        message = (
            f"no node matches nodeSelector {selector} and advertises {resource}; check node labels "
            f"(kubectl get nodes -L <label>) and the device plugin"
        )
    elif inv.free == 0:
        available, reason = False, "AllDevicesUsed"
        message = f"{inv.used}/{inv.allocatable} {resource} in use on {len(inv.nodes)} nodes"
    else:
        available, reason = True, "DevicesFree"
        message = f"{inv.free}/{inv.allocatable} {resource} free on {len(inv.nodes)} nodes"
    conditions = set_condition(
        (previous or {}).get("conditions") or [], "Available", available, reason, message, now
    )
    status = AcceleratorClassStatus(
        nodes=len(inv.nodes),
        allocatable=inv.allocatable,
        used=inv.used,
        free=inv.free,
        free_by_node=list(inv.free_by_node),
        conditions=[Condition.model_validate(c) for c in conditions],
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def degraded_status(
    previous: Mapping[str, Any] | None, message: str, now: datetime
) -> dict[str, Any]:
    """Keep the last counts, mark Available Unknown: the inventory could not be read this tick."""
    conditions = set_condition(
        (previous or {}).get("conditions") or [],
        "Available",
        "Unknown",
        "InventoryUnreadable",
        message,
        now,
    )
    return {"conditions": conditions}
