"""AcceleratorClass inventory from Nodes and Pods, and its status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.controllers.acceleratorclass import (
    class_inventory,
    compute_status,
    inventory,
    pod_request,
)
from tidal.controllers.conditions import set_condition

NOW = datetime(2026, 1, 1, tzinfo=UTC)
H100 = {"nvidia.com/gpu.product": "H100"}


def node(
    name: str, labels: dict[str, str], gpus: int | None, resource: str = "nvidia.com/gpu"
) -> dict[str, Any]:
    allocatable = {"cpu": "32"} if gpus is None else {"cpu": "32", resource: str(gpus)}
    return {"metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}}


def pod(
    node_name: str | None,
    gpus: int,
    phase: str = "Running",
    *,
    limits_only: bool = False,
    init: int = 0,
) -> dict[str, Any]:
    res = (
        {"limits": {"nvidia.com/gpu": str(gpus)}}
        if limits_only
        else {"requests": {"nvidia.com/gpu": str(gpus)}}
    )
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": res}]}
    if node_name:
        spec["nodeName"] = node_name
    if init:
        spec["initContainers"] = [
            {"name": "i", "resources": {"requests": {"nvidia.com/gpu": str(init)}}}
        ]
    return {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": phase}}


def h100_class(selector: dict[str, str] | None = None) -> AcceleratorClass:
    return AcceleratorClass.model_validate(
        {
            "metadata": {"name": "h100"},
            "spec": {
                "nodeSelector": H100 if selector is None else selector,
                "memory": "80Gi",
                "peakTflops": 989,
                "memoryBandwidthGbps": 3350,
                "hourlyCost": 4,
            },
        }
    )


def test_inventory_counts_matching_nodes_and_live_pods() -> None:
    nodes = [
        node("a", H100, 8),
        node("b", H100, 8),
        node("c", {"nvidia.com/gpu.product": "A100"}, 8),
        node("cpu", H100, None),
    ]
    pods = [
        pod("a", 2),
        pod("a", 1, limits_only=True),
        pod("b", 4, "Pending"),
        pod("b", 8, "Succeeded"),
        pod("c", 8),
        pod(None, 8, "Pending"),
        pod("b", 1, init=3),
    ]
    inv = class_inventory(h100_class(), nodes, pods)
    assert inv.nodes == ("a", "b")
    assert inv.allocatable == 16
    assert inv.used == 2 + 1 + 4 + 3
    assert inv.free == 6
    assert inv.free_by_node == (5, 1), "a: 8 - 3, b: 8 - 7; largest first"


def test_empty_selector_matches_every_node_advertising_the_resource() -> None:
    inv = class_inventory(h100_class({}), [node("a", {}, 4), node("cpu", {}, None)], [])
    assert inv.nodes == ("a",) and inv.allocatable == 4


def test_init_container_request_counts_when_larger() -> None:
    assert pod_request(pod("a", 1, init=4), "nvidia.com/gpu") == 4
    assert pod_request(pod("a", 4, init=1), "nvidia.com/gpu") == 4


def test_status_and_conditions() -> None:
    acc = h100_class()
    status = compute_status(
        acc, class_inventory(acc, [node("a", H100, 8)], [pod("a", 3)]), None, NOW
    )
    assert {k: status[k] for k in ("nodes", "allocatable", "used", "free", "freeByNode")} == {
        "nodes": 1,
        "allocatable": 8,
        "used": 3,
        "free": 5,
        "freeByNode": [5],
    }
    assert (
        status["conditions"][0]["type"] == "Available"
        and status["conditions"][0]["status"] == "True"
    )
    later = compute_status(acc, class_inventory(acc, [], []), status, NOW + timedelta(minutes=1))
    cond = later["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "NoMatchingNodes")
    assert "nvidia.com/gpu.product=H100" in cond["message"]
    assert cond["lastTransitionTime"] == "2026-01-01T00:01:00Z"


def test_condition_time_kept_while_status_unchanged() -> None:
    first = set_condition([], "Ready", True, "A", "m", NOW)
    again = set_condition(first, "Ready", True, "B", "n", NOW + timedelta(hours=1))
    assert again[0]["lastTransitionTime"] == first[0]["lastTransitionTime"]
    assert again[0]["reason"] == "B"
    flipped = set_condition(again, "Ready", False, "C", "o", NOW + timedelta(hours=2))
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T02:00:00Z"


nodes_st = st.lists(st.tuples(st.booleans(), st.integers(0, 16)), max_size=8)
pods_st = st.lists(
    st.tuples(
        st.integers(0, 9),
        st.integers(0, 8),
        st.sampled_from(["Running", "Pending", "Failed", "Succeeded"]),
    ),
    max_size=30,
)


@given(nodes_st, pods_st)
def test_free_is_allocatable_minus_used_never_negative(node_specs, pod_specs) -> None:
    nodes = [
        node(f"n{i}", H100 if matches else {}, gpus) for i, (matches, gpus) in enumerate(node_specs)
    ]
    pods = [pod(f"n{i}", gpus, phase) for i, gpus, phase in pod_specs]
    inv = inventory(nodes, pods, resource="nvidia.com/gpu", selector=H100)
    assert inv.free >= 0
    assert inv.free == max(0, inv.allocatable - inv.used)
    assert inv.allocatable == sum(g for m, g in node_specs if m)
    matched = {f"n{i}" for i, (m, _) in enumerate(node_specs) if m}
    assert inv.used == sum(
        g for i, g, ph in pod_specs if f"n{i}" in matched and ph in ("Running", "Pending")
    )
    per_node = {n: g for n, (m, g) in zip((f"n{i}" for i in range(len(node_specs))), node_specs) if m}
    for i, gpus, phase in pod_specs:
        if f"n{i}" in per_node and phase in ("Running", "Pending"):
            per_node[f"n{i}"] -= gpus
    assert inv.free_by_node == tuple(sorted((max(0, f) for f in per_node.values()), reverse=True))
    assert sum(inv.free_by_node) >= inv.free, "a node used past its allocatable frees nothing elsewhere"
