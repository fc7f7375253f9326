"""AcceleratorClass: a kind of GPU in the cluster, like a StorageClass for accelerators."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tidal.api.types import CONDITIONS_LIST_MAP, ApiModel, Condition, ObjectMeta, Quantity, StatusModel

DEFAULT_DEVICE_RESOURCE = "nvidia.com/gpu"
"""Extended resource advertised by the NVIDIA Kubernetes device plugin."""


class AcceleratorClassSpec(ApiModel):
    """What the accelerator is, where it lives and what it costs; feeds placement and the performance model."""

    device_resource_name: str = Field(
        default=DEFAULT_DEVICE_RESOURCE, min_length=1, max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
    )
    """Extended resource requested per GPU, e.g. ``nvidia.com/gpu``."""
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Labels that identify nodes carrying this accelerator, e.g. ``nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3``."""
    memory: Quantity
    """Memory per device, e.g. ``80Gi``."""
    peak_tflops: float = Field(gt=0, le=100000)
    """Dense 16-bit peak in TFLOP/s from the vendor datasheet (989 for H100 SXM)."""
    memory_bandwidth_gbps: float = Field(gt=0, le=100000)
    """Memory bandwidth in GB/s from the vendor datasheet (3350 for H100 SXM)."""
    interconnect_gbps: float | None = Field(default=None, gt=0, le=100000)
    """Per-GPU interconnect bandwidth in GB/s (NVLink), used for tensor-parallel and KV transfer time."""
    hourly_cost: float = Field(ge=0, le=10000)
    """Cost of one device for one hour, in your currency; placement minimises it per request served."""
    cost_currency: Literal["USD", "EUR", "GBP", "JPY", "CNY", "credits"] = "USD"
    """Currency of hourlyCost, shown in reports."""


class AcceleratorClassStatus(StatusModel):
    nodes: int = 0
    allocatable: int = 0
    used: int = 0
    free: int = 0
    free_by_node: list[int] = Field(default_factory=list)
    """Free devices on each matching node, largest first. A replica of ``gpusPerReplica`` devices fits
    on one node only: placement counts ``sum(free // gpusPerReplica)`` over these, not ``free //
    gpusPerReplica`` (eight nodes with one free device each host no 2-device replica)."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)


class AcceleratorClass(ApiModel):
    """A class of accelerator available in the cluster."""

    api_version: Literal["tidal.dev/v1alpha1"] = "tidal.dev/v1alpha1"
    kind: Literal["AcceleratorClass"] = "AcceleratorClass"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AcceleratorClassSpec
    status: AcceleratorClassStatus | None = None
