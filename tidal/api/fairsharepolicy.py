"""FairSharePolicy: how scarce GPUs are divided between tenants."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidal.api.types import CONDITIONS_LIST_MAP, ApiModel, Condition, DnsLabel, ObjectMeta, StatusModel, cel_rules, unique_names

MAX_TENANTS = 64
"""Bounds CEL evaluation cost on the tenants list (the API server rejects unbounded rule cost)."""


class CapacitySpec(ApiModel):
    """The GPUs this policy governs: matching nodes or classes, optionally capped by an explicit count."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("has(self.nodeSelector) || has(self.acceleratorClasses) || has(self.gpus)",
         "capacity must set nodeSelector, acceleratorClasses or gpus"),
    )}

    node_selector: dict[str, str] | None = Field(default=None, max_length=32)
    """Nodes whose GPUs are governed."""
    accelerator_classes: list[DnsLabel] | None = Field(
        default=None, min_length=1, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """AcceleratorClasses whose GPUs are governed."""
    gpus: int | None = Field(default=None, ge=0, le=1_000_000)
    """Explicit number of GPUs governed; guarantees must fit in it."""

    @model_validator(mode="after")
    def _some_capacity(self) -> "CapacitySpec":
        if self.node_selector is None and self.accelerator_classes is None and self.gpus is None:
            raise ValueError("capacity must set nodeSelector, acceleratorClasses or gpus")
        return self

    @field_validator("accelerator_classes")
    @classmethod
    def _unique(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else unique_names(names)


class FairShareTenant(ApiModel):
    """One tenant's share."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("!has(self.maxGpus) || self.guaranteedGpus <= self.maxGpus",
         "guaranteedGpus must be less than or equal to maxGpus"),
    )}

    name: DnsLabel
    """Tenant name, matched against ModelDeployment spec.tenant.name."""
    weight: float = Field(default=1.0, gt=0, le=1000)
    """Share of contended GPUs relative to other tenants (weighted max-min)."""
    guaranteed_gpus: int = Field(default=0, ge=0, le=1_000_000)
    """GPUs granted whenever the tenant demands them, before weighted sharing."""
    max_gpus: int | None = Field(default=None, ge=0, le=1_000_000)
    """Cap on the tenant's grant."""

    @model_validator(mode="after")
    def _guarantee_le_cap(self) -> "FairShareTenant":
        if self.max_gpus is not None and self.guaranteed_gpus > self.max_gpus:
            raise ValueError("guaranteedGpus must be less than or equal to maxGpus")
        return self


class FairSharePolicySpec(ApiModel):
    """Desired sharing."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("self.tenants.all(t, self.tenants.exists_one(u, u.name == t.name))", "tenant names must be unique"),
        ("!has(self.capacity.gpus) || self.tenants.map(t, t.guaranteedGpus).sum() <= self.capacity.gpus",
         "the sum of tenants' guaranteedGpus must not exceed capacity.gpus"),
    )}

    capacity: CapacitySpec
    tenants: list[FairShareTenant] = Field(min_length=1, max_length=MAX_TENANTS)
    """Tenants sharing the capacity; workloads of unlisted tenants get no GPUs from this policy."""
    rebalance: Literal["gentle", "immediate"] = "gentle"
    """``gentle`` keeps running replicas in place (hysteresis); ``immediate`` reallocates every tick."""

    @model_validator(mode="after")
    def _tenants_fit(self) -> "FairSharePolicySpec":
        names = [t.name for t in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenant names must be unique")
        if self.capacity.gpus is not None and sum(t.guaranteed_gpus for t in self.tenants) > self.capacity.gpus:
            raise ValueError("the sum of tenants' guaranteedGpus must not exceed capacity.gpus")
        return self


class TenantShareStatus(StatusModel):
    name: str
    demand_gpus: int = 0
    grant_gpus: int = 0
    deficit: float = 0.0


class WorkloadShareStatus(StatusModel):
    namespace: str
    name: str
    tenant: str
    demand_gpus: int = 0
    grant_gpus: int = 0
    """The workload's share of its tenant's grant (strict spec.tenant.priority, then weighted max-min on spec.tenant.weight); tidal caps the ModelDeployment's replicas to it."""


class FairSharePolicyStatus(StatusModel):
    observed_generation: int | None = None
    capacity_gpus: int = 0
    tenants: list[TenantShareStatus] = Field(default_factory=list)
    workloads: list[WorkloadShareStatus] = Field(default_factory=list)
    """Each governed ModelDeployment's demand and grant."""
    fairness_index: float | None = None
    """Jain's fairness index of each tenant's grant over its fair share (guarantees, then weighted
    max-min); 1.0 is perfectly fair."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)


class FairSharePolicy(ApiModel):
    """A fair-share policy over a set of GPUs."""

    api_version: Literal["tidal.dev/v1alpha1"] = "tidal.dev/v1alpha1"
    kind: Literal["FairSharePolicy"] = "FairSharePolicy"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: FairSharePolicySpec
    status: FairSharePolicyStatus | None = None
