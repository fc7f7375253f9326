"""FairSharePolicy: capacity, tenants' demand from the workloads it governs, and the allocation
(:func:`tidal.policies.fairness.allocate`) written to status.

Pure: the operator lists Nodes, Pods, AcceleratorClasses and ModelDeployments (plain JSON dicts)
and hands them here.

* **Capacity**: ``capacity.gpus`` alone is taken as is. ``acceleratorClasses`` sums the allocatable
  devices of those classes' nodes (each class's ``deviceResourceName``), restricted to nodes that
  also match ``nodeSelector`` when one is given. ``nodeSelector`` alone sums the devices of every
  known AcceleratorClass resource (``nvidia.com/gpu`` when no class exists) on the matching nodes.
  With ``gpus`` as well, the measured capacity is capped at ``gpus``.
* **Governed workloads**: ModelDeployments whose ``spec.tenant.name`` is one of the policy's tenants
  and, when the policy names ``acceleratorClasses``, whose placement allows at least one of them.
  ServerlessFunctions carry no tenant and request no GPUs, so they are not governed.
* **Demand** of a workload: for each pool, desired replicas (``status.pools[pool].desired``, once the
  operator has observed the spec) or else ``minReplicas``, times ``gpusPerReplica``. **Held** GPUs
  (for gentle rebalancing): ready + starting replicas times ``gpusPerReplica``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from tidal.api.acceleratorclass import DEFAULT_DEVICE_RESOURCE, AcceleratorClass
from tidal.api.fairsharepolicy import FairSharePolicy, FairSharePolicyStatus, TenantShareStatus, WorkloadShareStatus
from tidal.api.modeldeployment import ModelDeployment
from tidal.api.types import Condition
from tidal.controllers.acceleratorclass import inventory
from tidal.controllers.conditions import set_condition
from tidal.controllers.modeldeployment import pools_of
from tidal.policies.fairness import Allocation, TenantDemand, WorkloadClaim, allocate, split_tenant_grant


@dataclass(frozen=True)
class Capacity:
    gpus: int
    message: str


@dataclass(frozen=True)
class WorkloadDemand:
    """One governed workload's claim."""

    namespace: str
    name: str
    tenant: str
    demand_gpus: int
    held_gpus: int
    priority: int = 0
    weight: float = 1.0


def capacity_of(
    policy: FairSharePolicy,
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    accelerators: Mapping[str, AcceleratorClass],
) -> Capacity:
    """GPUs governed by the policy (see the module docstring for the rules)."""
    cap = policy.spec.capacity
    if cap.node_selector is None and cap.accelerator_classes is None:
        return Capacity(cap.gpus or 0, f"explicit capacity.gpus {cap.gpus}")
    parts: list[str] = []
    total = 0
    if cap.accelerator_classes is not None:
        for name in cap.accelerator_classes:
            acc = accelerators.get(name)
            if acc is None:
                parts.append(f"AcceleratorClass {name} not found (0 GPUs)")
                continue
            selector = {**acc.spec.node_selector, **(cap.node_selector or {})}
            inv = inventory(nodes, pods, resource=acc.spec.device_resource_name, selector=selector)
            total += inv.allocatable
            parts.append(f"{name}: {inv.allocatable}")
    else:
        resources = sorted(
            {a.spec.device_resource_name for a in accelerators.values()}
            or {DEFAULT_DEVICE_RESOURCE}
        )
        for resource in resources:
            inv = inventory(nodes, pods, resource=resource, selector=cap.node_selector or {})
            total += inv.allocatable
            parts.append(f"{resource}: {inv.allocatable} on {len(inv.nodes)} nodes")
    if cap.gpus is not None and total > cap.gpus:
        parts.append(f"capped at capacity.gpus {cap.gpus}")
        total = cap.gpus
    return Capacity(total, "; ".join(parts))


def workload_demand(md: ModelDeployment, status: Mapping[str, Any] | None) -> tuple[int, int]:
    """(demand, held) GPUs of one ModelDeployment. Demand is what its decision asked for before the
    fair-share cap (``status.demandGpus``): counting the capped replicas instead would shrink a
    capped workload's demand to its grant and never give back what it lent."""
    status = status or {}
    observed = status.get("observedGeneration") is not None
    pool_status = status.get("pools") or {}
    demand = held = 0
    for pool, spec in pools_of(md).items():
        ps = pool_status.get(pool) or {}
        desired = ps.get("desired") if observed else None
        replicas = desired if isinstance(desired, int) and desired >= 0 else spec.min_replicas
        demand += replicas * spec.gpus_per_replica
        held += (int(ps.get("ready") or 0) + int(ps.get("starting") or 0)) * spec.gpus_per_replica
    asked = status.get("demandGpus") if observed else None
    if isinstance(asked, int) and not isinstance(asked, bool) and asked >= 0:
        demand = asked
    return demand, held


def governed_workloads(
    policy: FairSharePolicy, deployments: Iterable[Mapping[str, Any]]
) -> tuple[list[WorkloadDemand], list[str]]:
    """Demands of the ModelDeployments this policy governs, plus messages about skipped invalid ones."""
    tenants = {t.name for t in policy.spec.tenants}
    classes = set(policy.spec.capacity.accelerator_classes or [])
    out: list[WorkloadDemand] = []
    skipped: list[str] = []
    for raw in deployments:
        meta = raw.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        try:
            md = ModelDeployment.model_validate({k: v for k, v in raw.items() if k != "status"})
        except ValidationError as exc:
            skipped.append(f"{where}: invalid spec ({exc.error_count()} errors)")
            continue
        if md.spec.tenant.name not in tenants:
            continue
        if classes and not classes.intersection(md.spec.placement.accelerator_classes):
            continue
        demand, held = workload_demand(md, raw.get("status"))
        out.append(
            WorkloadDemand(
                str(meta.get("namespace") or ""),
                str(meta.get("name") or ""),
                md.spec.tenant.name,
                demand,
                held,
                md.spec.tenant.priority,
                md.spec.tenant.weight,
            )
        )
    return out, skipped


def previous_deficits(status: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for tenant in (status or {}).get("tenants") or []:
        try:
            out[str(tenant["name"])] = float(tenant.get("deficit") or 0.0)
        except (KeyError, TypeError, ValueError):
            continue
    return out


def tenant_demands(
    policy: FairSharePolicy, workloads: Sequence[WorkloadDemand]
) -> list[TenantDemand]:
    demand: dict[str, int] = {}
    held: dict[str, int] = {}
    for w in workloads:
        demand[w.tenant] = demand.get(w.tenant, 0) + w.demand_gpus
        held[w.tenant] = held.get(w.tenant, 0) + w.held_gpus
    return [
        TenantDemand(
            name=t.name,
            weight=t.weight,
            demand_gpus=demand.get(t.name, 0),
            guaranteed_gpus=t.guaranteed_gpus,
            max_gpus=t.max_gpus,
            held_gpus=held.get(t.name, 0),
        )
        for t in policy.spec.tenants
    ]


def reconcile(
    policy: FairSharePolicy,
    *,
    generation: int | None,
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    accelerators: Mapping[str, AcceleratorClass],
    deployments: Iterable[Mapping[str, Any]],
    previous: Mapping[str, Any] | None,
    now: datetime,
) -> tuple[Allocation, dict[str, Any]]:
    """One tick: the allocation and the status to write."""
    capacity = capacity_of(policy, nodes, pods, accelerators)
    workloads, skipped = governed_workloads(policy, deployments)
    demands = tenant_demands(policy, workloads)
    allocation = allocate(
        capacity.gpus, demands, previous_deficits(previous), rebalance=policy.spec.rebalance
    )
    raw = {d.name: d.demand_gpus for d in demands}
    guarantees = {t.name: t.guaranteed_gpus for t in policy.spec.tenants}
    return allocation, compute_status(
        allocation, generation, capacity, skipped, previous, now, raw, guarantees,
        workload_grants(allocation, workloads),
    )


def workload_grants(allocation: Allocation, workloads: Sequence[WorkloadDemand]) -> list[WorkloadShareStatus]:
    """Each tenant's grant divided between its workloads (:func:`tidal.policies.fairness.split_tenant_grant`:
    strict ``spec.tenant.priority``, weighted max-min on ``spec.tenant.weight``), in workload order."""
    grant_of = {g.name: g.grant_gpus for g in allocation.grants}
    shares: dict[tuple[str, str], int] = {}
    for tenant in grant_of:
        mine = [w for w in workloads if w.tenant == tenant]
        claims = [WorkloadClaim(f"{w.namespace}/{w.name}", w.demand_gpus, w.priority, w.weight) for w in mine]
        split = split_tenant_grant(grant_of[tenant], claims) if claims else {}
        for w in mine:
            shares[(w.namespace, w.name)] = split[f"{w.namespace}/{w.name}"]
    return [WorkloadShareStatus(namespace=w.namespace, name=w.name, tenant=w.tenant, demand_gpus=w.demand_gpus,
                                grant_gpus=shares.get((w.namespace, w.name), 0)) for w in workloads]


def guarantees_condition(
    guarantees: Mapping[str, int], capacity_gpus: int, capacity_message: str
) -> tuple[bool, str, str]:
    """(met, reason, message) of ``GuaranteesMet``: whether the capacity measured this tick can hold
    every tenant's ``guaranteedGpus`` at once. The CRD rejects guarantees above a fixed
    ``capacity.gpus``; a capacity measured from nodes can shrink below them (nodes drained, lost)."""
    total = sum(guarantees.values())
    if total <= capacity_gpus:
        return True, "WithinCapacity", f"guarantees total {total} of {capacity_gpus} GPUs"
    listed = ", ".join(f"{name} {gpus}" for name, gpus in guarantees.items() if gpus)
    return (
        False,
        "GuaranteesExceedCapacity",
        f"guarantees total {total} GPUs ({listed}) but capacity is {capacity_gpus} "
        f"({capacity_message}): they cannot all be met; tenants below their guarantee share "
        "what there is by weight. Lower guaranteedGpus or add capacity",
    )


def compute_status(
    allocation: Allocation,
    generation: int | None,
    capacity: Capacity,
    skipped: Sequence[str],
    previous: Mapping[str, Any] | None,
    now: datetime,
    raw_demand: Mapping[str, int] | None = None,
    guarantees: Mapping[str, int] | None = None,
    workloads: Sequence[WorkloadShareStatus] = (),
) -> dict[str, Any]:
    """Status (camelCase). ``raw_demand`` is each tenant's demand before its cap (the allocator
    reports demand already capped at maxGpus); a tenant held back by its cap is CapacityLimited.
    ``guarantees`` (tenant -> guaranteedGpus) sets ``GuaranteesMet``."""
    raw_demand = raw_demand or {}
    conditions: Sequence[Mapping[str, Any]] = (previous or {}).get("conditions") or []
    demand_of = {g.name: max(g.demand_gpus, raw_demand.get(g.name, 0)) for g in allocation.grants}
    short = [g for g in allocation.grants if g.grant_gpus < demand_of[g.name]]
    if short:
        message = "; ".join(f"{g.name}: {g.grant_gpus}/{demand_of[g.name]} GPUs" for g in short)
        message += f" (capacity {allocation.capacity_gpus}: {capacity.message})"
    else:
        message = (
            f"every tenant's demand is granted "
            f"(capacity {allocation.capacity_gpus}: {capacity.message})"
        )
    if allocation.reasons:
        message += "; " + "; ".join(f"{r.code}: {r.message}" for r in allocation.reasons)
    conditions = set_condition(
        conditions,
        "CapacityLimited",
        bool(short),
        "DemandExceedsCapacity" if short else "DemandMet",
        message,
        now,
        generation,
    )
    conditions = set_condition(
        conditions,
        "Degraded",
        bool(skipped),
        "InvalidWorkloads" if skipped else "AsExpected",
        "skipped " + "; ".join(skipped) if skipped else "",
        now,
        generation,
    )
    if guarantees is not None:
        met, reason, guarantee_message = guarantees_condition(
            guarantees, allocation.capacity_gpus, capacity.message
        )
        conditions = set_condition(
            conditions, "GuaranteesMet", met, reason, guarantee_message, now, generation
        )
    status = FairSharePolicyStatus(
        observed_generation=generation,
        capacity_gpus=allocation.capacity_gpus,
        tenants=[
            TenantShareStatus(
                name=g.name,
                demand_gpus=demand_of[g.name],
                grant_gpus=g.grant_gpus,
                deficit=round(g.deficit, 6),
            )
            for g in allocation.grants
        ],
        workloads=list(workloads),
        fairness_index=None
        if allocation.fairness_index is None
        else round(allocation.fairness_index, 6),
        conditions=[Condition.model_validate(c) for c in conditions],
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def grants_from_status(status: Mapping[str, Any] | None) -> dict[tuple[str, str], int]:
    """(namespace, name) -> GPUs granted, from a FairSharePolicy's ``status.workloads``; entries that
    cannot be read are left out (the workload then runs uncapped by this policy, as before it had a
    grant)."""
    out: dict[tuple[str, str], int] = {}
    for entry in (status or {}).get("workloads") or []:
        try:
            grant = entry["grantGpus"]
            if isinstance(grant, int) and not isinstance(grant, bool) and grant >= 0:
                out[(str(entry["namespace"]), str(entry["name"]))] = grant
        except (KeyError, TypeError):
            continue
    return out
