"""The four kinds tidal serves, with the naming and presentation the CRDs need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.fairsharepolicy import FairSharePolicy
from tidal.api.modeldeployment import ModelDeployment
from tidal.api.serverlessfunction import ServerlessFunction

GROUP = "tidal.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "tidal"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ScaleSubresource:
    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str


@dataclass(frozen=True)
class KindInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    model: type[BaseModel]
    printer_columns: tuple[PrinterColumn, ...] = ()
    scale: ScaleSubresource | None = None
    categories: tuple[str, ...] = field(default=(CATEGORY,))

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")
_READY_STATUS = PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status',
                              "The Ready condition (True, False, Unknown), as Knative and KServe show it")
_READY_REASON = PrinterColumn("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason',
                              "Why Ready is what it is")

KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        kind="ModelDeployment", plural="modeldeployments", singular="modeldeployment",
        short_names=("mdep",), scope="Namespaced", model=ModelDeployment,
        printer_columns=(
            PrinterColumn("Model", "string", ".spec.model.name", "Served model", priority=1),
            PrinterColumn("Mode", "string", ".spec.mode", "unified or disaggregated serving"),
            _READY_STATUS,
            _READY_REASON,
            PrinterColumn("Replicas", "integer", ".status.readyReplicas", "Ready replicas over all pools"),
            PrinterColumn("Desired", "integer", ".status.desiredReplicas", "Replicas tidal wants now"),
            PrinterColumn("Forecast-RPS", "number", ".status.forecast.rps", "Forecast request rate (req/s)"),
            PrinterColumn("SLO", "number", ".status.sloAttainment", "Fraction of recent requests meeting the SLO"),
            PrinterColumn("SLO-Target", "number", ".spec.slo.attainment", "Fraction the SLO asks for (spec.slo.attainment)"),
            _AGE,
        ),
        scale=ScaleSubresource(".spec.replicas", ".status.replicas", ".status.selector"),
    ),
    KindInfo(
        kind="ServerlessFunction", plural="serverlessfunctions", singular="serverlessfunction",
        short_names=("sfn",), scope="Namespaced", model=ServerlessFunction,
        printer_columns=(
            _READY_STATUS,
            _READY_REASON,
            PrinterColumn("Instances", "integer", ".status.readyInstances", "Ready instances"),
            PrinterColumn("Desired", "integer", ".status.desiredInstances", "Instances tidal wants now"),
            PrinterColumn("Keep-Alive", "number", ".status.keepAliveSeconds", "Chosen keep-alive (s)"),
            _AGE,
        ),
    ),
    KindInfo(
        kind="AcceleratorClass", plural="acceleratorclasses", singular="acceleratorclass",
        short_names=("acc",), scope="Cluster", model=AcceleratorClass,
        printer_columns=(
            PrinterColumn("Memory", "string", ".spec.memory", "Memory per device"),
            PrinterColumn("Cost/h", "number", ".spec.hourlyCost", "Hourly cost per device"),
            PrinterColumn("Free", "integer", ".status.free", "Unallocated devices"),
            PrinterColumn("Allocatable", "integer", ".status.allocatable", "Allocatable devices"),
            _AGE,
        ),
    ),
    KindInfo(
        kind="FairSharePolicy", plural="fairsharepolicies", singular="fairsharepolicy",
        short_names=("fsp",), scope="Cluster", model=FairSharePolicy,
        printer_columns=(
            PrinterColumn("Capacity", "integer", ".status.capacityGpus", "GPUs governed"),
            PrinterColumn("Fairness", "number", ".status.fairnessIndex", "Jain's fairness index"),
            _AGE,
        ),
    ),
)

KINDS_BY_NAME: dict[str, KindInfo] = {k.kind: k for k in KINDS}
