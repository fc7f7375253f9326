"""FairSharePolicy controller: capacity, governed workloads' demand, allocation and status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.controllers.test_acceleratorclass import H100, node, pod
from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.fairsharepolicy import FairSharePolicy
from tidal.controllers.fairsharepolicy import capacity_of, governed_workloads, reconcile

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def policy(
    capacity: dict[str, Any], tenants: list[dict[str, Any]], rebalance: str = "immediate"
) -> FairSharePolicy:
    return FairSharePolicy.model_validate(
        {
            "metadata": {"name": "p"},
            "spec": {"capacity": capacity, "tenants": tenants, "rebalance": rebalance},
        }
    )


def md(
    name: str,
    tenant: str,
    *,
    min_replicas: int = 1,
    gpus: int = 1,
    desired: int | None = None,
    ready: int = 0,
    classes: tuple[str, ...] = ("h100",),
    observed: bool = True,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "tidal.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ns", "uid": "u", "resourceVersion": "1"},
        "spec": {
            "model": {"name": "m", "parametersBillions": 8},
            "engine": {"image": "vllm"},
            "slo": {"ttft": "1s"},
            "pools": {
                "unified": {"minReplicas": min_replicas, "maxReplicas": 50, "gpusPerReplica": gpus}
            },
            "placement": {"acceleratorClasses": list(classes)},
            "tenant": {"name": tenant},
        },
    }
    if desired is not None:
        obj["status"] = {"pools": {"unified": {"desired": desired, "ready": ready}}}
        if observed:
            obj["status"]["observedGeneration"] = 1
    return obj


def h100() -> AcceleratorClass:
    return AcceleratorClass.model_validate(
        {
            "metadata": {"name": "h100"},
            "spec": {
                "nodeSelector": H100,
                "memory": "80Gi",
                "peakTflops": 989,
                "memoryBandwidthGbps": 3350,
                "hourlyCost": 4,
            },
        }
    )


def test_capacity_rules() -> None:
    nodes = [node("a", H100, 8), node("b", {**H100, "pool": "x"}, 8), node("c", {}, 4)]
    accs = {"h100": h100()}
    assert capacity_of(policy({"gpus": 5}, [{"name": "a"}]), nodes, [], accs).gpus == 5
    assert (
        capacity_of(policy({"acceleratorClasses": ["h100"]}, [{"name": "a"}]), nodes, [], accs).gpus
        == 16
    )
    assert (
        capacity_of(
            policy(
                {"acceleratorClasses": ["h100"], "nodeSelector": {"pool": "x"}}, [{"name": "a"}]
            ),
            nodes,
            [],
            accs,
        ).gpus
        == 8
    )
    assert (
        capacity_of(policy({"nodeSelector": {}}, [{"name": "a"}]), nodes, [pod("a", 8)], accs).gpus
        == 20
    )
    assert (
        capacity_of(
            policy({"acceleratorClasses": ["h100"], "gpus": 10}, [{"name": "a"}]), nodes, [], accs
        ).gpus
        == 10
    )
    missing = capacity_of(
        policy({"acceleratorClasses": ["b200"]}, [{"name": "a"}]), nodes, [], accs
    )
    assert missing.gpus == 0 and "b200 not found" in missing.message


def test_demand_from_status_or_min_replicas_and_governance() -> None:
    p = policy({"acceleratorClasses": ["h100"]}, [{"name": "a"}, {"name": "b"}])
    workloads, skipped = governed_workloads(
        p,
        [
            md("x", "a", desired=3, ready=2, gpus=2),  # 6 demanded, 4 held
            md("y", "a", min_replicas=2),  # no status: minReplicas -> 2
            md("z", "b", desired=5, observed=False),  # status not observed yet: minReplicas 1
            md("other-tenant", "c", desired=9),
            md("other-class", "a", desired=9, classes=("a100",)),
            {"metadata": {"name": "bad", "namespace": "ns"}, "spec": {"nope": 1}},
        ],
    )
    by_name = {w.name: (w.tenant, w.demand_gpus, w.held_gpus) for w in workloads}
    assert by_name == {"x": ("a", 6, 4), "y": ("a", 2, 0), "z": ("b", 1, 0)}
    assert skipped and "ns/bad" in skipped[0]


def test_three_tenants_share_by_weight_with_guarantee() -> None:
    p = policy(
        {"gpus": 12},
        [
            {"name": "a", "weight": 2},
            {"name": "b", "weight": 1},
            {"name": "c", "weight": 1, "guaranteedGpus": 4},
        ],
    )
    deployments = [md("x", "a", desired=20), md("y", "b", desired=20), md("z", "c", desired=20)]
    allocation, status = reconcile(
        p,
        generation=3,
        nodes=[],
        pods=[],
        accelerators={},
        deployments=deployments,
        previous=None,
        now=NOW,
    )
    grants = {t["name"]: t["grantGpus"] for t in status["tenants"]}
    assert sum(grants.values()) == 12
    assert grants["c"] >= 4 and grants["a"] > grants["b"]
    assert all(t["demandGpus"] == 20 for t in status["tenants"])
    assert status["capacityGpus"] == 12 and status["observedGeneration"] == 3
    assert 0 < status["fairnessIndex"] <= 1
    limited = next(c for c in status["conditions"] if c["type"] == "CapacityLimited")
    assert limited["status"] == "True" and "a:" in limited["message"]


def test_deficits_carry_over_from_previous_status() -> None:
    """Gentle rebalancing lets the holder keep a GPU above fair; the grower's deficit accumulates
    through status until hysteresis is suspended and it gets its fair share."""
    p = policy({"gpus": 4}, [{"name": "a"}, {"name": "b"}], rebalance="gentle")
    deployments = [md("x", "a", desired=4, ready=4), md("y", "b", desired=4)]
    previous = None
    history = []
    for _ in range(4):
        _, previous = reconcile(
            p,
            generation=1,
            nodes=[],
            pods=[],
            accelerators={},
            deployments=deployments,
            previous=previous,
            now=NOW,
        )
        b = next(t for t in previous["tenants"] if t["name"] == "b")
        history.append((b["grantGpus"], b["deficit"]))
    assert history[0] == (1, 1.0)
    assert history[1] == (1, 1.9)
    assert history[2] == (1, 2.71)
    assert history[3][0] == 2  # owed >= 2 GPU-ticks: hysteresis suspended, fair share granted


def test_cap_shows_full_demand() -> None:
    p = policy({"gpus": 10}, [{"name": "a", "maxGpus": 2}])
    _, status = reconcile(
        p,
        generation=1,
        nodes=[],
        pods=[],
        accelerators={},
        deployments=[md("x", "a", desired=5)],
        previous=None,
        now=NOW,
    )
    assert status["tenants"] == [{"name": "a", "demandGpus": 5, "grantGpus": 2, "deficit": 0.0}]


tenant_st = st.tuples(
    st.floats(0.1, 10), st.integers(0, 4), st.none() | st.integers(4, 30), st.integers(0, 40)
)


@settings(max_examples=80, deadline=None)
@given(
    st.integers(0, 64),
    st.lists(tenant_st, min_size=1, max_size=6),
    st.sampled_from(["gentle", "immediate"]),
)
def test_grants_never_exceed_capacity_or_demand(capacity: int, tenants, rebalance: str) -> None:
    specs = [
        {
            "name": f"t{i}",
            "weight": w,
            "guaranteedGpus": g,
            **({"maxGpus": m} if m is not None else {}),
        }
        for i, (w, g, m, _) in enumerate(tenants)
    ]
    p = policy({"acceleratorClasses": ["h100"]}, specs, rebalance)
    nodes = [node("a", H100, capacity)]
    deployments = [
        md(f"w{i}", f"t{i}", desired=d, ready=d // 2) for i, (_, _, _, d) in enumerate(tenants)
    ]
    previous = None
    for _ in range(3):
        _, previous = reconcile(
            p,
            generation=1,
            nodes=nodes,
            pods=[],
            accelerators={"h100": h100()},
            deployments=deployments,
            previous=previous,
            now=NOW,
        )
        assert sum(t["grantGpus"] for t in previous["tenants"]) <= capacity
        for t, (_, _, cap, demand) in zip(previous["tenants"], tenants):
            assert 0 <= t["grantGpus"] <= demand
            assert cap is None or t["grantGpus"] <= cap
