"""ModelDeployment: one LLM served by vLLM or SGLang, with its SLOs and autoscaling policy."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from tidal.api.pod import PodSettings
from tidal.api.types import CONDITIONS_LIST_MAP, ApiModel, Condition, DnsLabel, Duration, ObjectMeta, Quantity, StatusModel, cel_rules, unique_names

# Defaults with their sources. A changed default changes user-visible behaviour: cite the new source.
DEFAULT_SLO_PERCENTILE = 90.0
"""DistServe (OSDI'24) evaluates SLO attainment at the 90th percentile of requests."""
DEFAULT_SLO_ATTAINMENT = 0.9
"""DistServe's headline goodput is measured at a 90% SLO-attainment goal."""
DEFAULT_SCALE_DOWN_DELAY = "5m"
"""Kubernetes HPA: --horizontal-pod-autoscaler-downscale-stabilization defaults to 5 minutes."""
DEFAULT_SCALE_TO_ZERO_AFTER = "5m"
"""KEDA ScaledObject: cooldownPeriod defaults to 300 seconds before scaling to zero."""
DEFAULT_KV_MAX_TTL = "5m"
"""Longest ``kvCache.ttl: auto``: the lifetime hosted prompt caches give a cached prefix without use
(Anthropic prompt caching: 5 minutes, refreshed on each hit; OpenAI prompt caching: 5-10 minutes of
inactivity), so a session idle longer is not expected to find its KV on any serving stack."""
DEFAULT_ENGINE_PORT = 8000
"""vLLM's OpenAI-compatible server listens on port 8000 by default."""
MAX_NAME_LENGTH = 40
"""Leaves room for child names like ``<name>-prefill-<accelerator>`` within the 63-character DNS label limit."""


class ModelSpec(ApiModel):
    """The model being served; sizes feed the performance model and the cold-start predictor."""

    name: str = Field(min_length=1, max_length=256)
    """Model identifier passed to the engine, e.g. ``meta-llama/Llama-3.1-8B-Instruct``."""
    parameters_billions: float = Field(gt=0, le=10000)
    """Parameter count in billions (8 for an 8B model); drives the roofline step-time model."""
    dtype: Literal["float16", "bfloat16", "fp8", "int8", "int4"] = "bfloat16"
    """Weight precision; sets bytes per parameter for weights and memory-bound decode time."""
    weights_size: Quantity | None = None
    """Size of the weights on disk (e.g. ``16Gi``); defaults to parameters × bytes per dtype."""
    max_context_tokens: int = Field(default=8192, ge=128, le=10_000_000)
    """Longest prompt plus output the engine accepts (vLLM ``--max-model-len``)."""


class EngineSpec(ApiModel):
    """The serving engine container. tidal renders its command line, probes, drain and hardening
    (tidal/controllers/engines.py); ``pod`` adds settings on top. It never patches the image."""

    image: str = Field(min_length=1, max_length=512)
    """Container image, e.g. ``vllm/vllm-openai:v0.33.0`` or ``lmsysorg/sglang:v0.5.23`` (the releases
    tidal's flags were checked against; an older vLLM may lack ``--shutdown-timeout``)."""
    args: list[str] = Field(default_factory=list, max_length=128)
    """Extra engine arguments appended after the ones tidal renders (argparse lets a repeated flag's
    last value win, so these override tidal's)."""
    port: int = Field(default=DEFAULT_ENGINE_PORT, ge=1, le=65535)
    """Port of the OpenAI-compatible HTTP server and its ``/metrics`` endpoint."""
    metrics_dialect: Literal["vllm", "sglang"] = "vllm"
    """Which engine the image runs: selects its command line, health endpoints and metric names
    (``vllm:*`` or ``sglang:*``)."""
    readiness_path: str | None = Field(default=None, pattern=r"^/", max_length=256)
    """HTTP path of the readiness probe; defaults to the engine's (``/health`` for vLLM, ``/ready``
    for SGLang)."""
    drain_timeout: Duration = "60s"
    """How long a replica being scaled down may finish in-flight requests after it left the Service:
    vLLM's ``--shutdown-timeout``; the termination grace period covers it plus the preStop delay."""
    pod: PodSettings = Field(default_factory=PodSettings)
    """Pod settings merged over the rendered pods: env, Secrets, volumes, tolerations, affinity,
    CPU/memory, identity, labels and annotations."""


class SLOSpec(ApiModel):
    """Latency targets. A request meets the SLO when every stated target holds for it."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("has(self.ttft) || has(self.tpot)", "slo must set at least one of ttft or tpot"),
    )}

    ttft: Duration | None = None
    """Time-to-first-token target at the percentile, e.g. ``500ms``."""
    tpot: Duration | None = None
    """Time-per-output-token (inter-token latency) target at the percentile, e.g. ``50ms``."""
    percentile: float = Field(default=DEFAULT_SLO_PERCENTILE, gt=0, lt=100)
    """Percentile of requests the targets refer to, strictly between 0 and 100."""
    attainment: float = Field(default=DEFAULT_SLO_ATTAINMENT, gt=0, le=1)
    """Fraction of requests that must meet the SLO for the SLOMet condition to hold."""

    @model_validator(mode="after")
    def _needs_a_target(self) -> "SLOSpec":
        if self.ttft is None and self.tpot is None:
            raise ValueError("slo must set at least one of ttft or tpot")
        return self


class PoolSpec(ApiModel):
    """Bounds for one pool of identical replicas (unified, prefill or decode)."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("self.minReplicas <= self.maxReplicas", "minReplicas must be less than or equal to maxReplicas"),
    )}

    min_replicas: int = Field(default=1, ge=0, le=10000)
    """Floor while the workload is active (Kubernetes HPA defaults minReplicas to 1)."""
    max_replicas: int = Field(ge=1, le=10000)
    """Ceiling, and so the GPU spend ceiling: required, there is no safe default."""
    gpus_per_replica: int = Field(default=1, ge=1, le=64)
    """GPUs per replica, i.e. the tensor-parallel degree."""

    @model_validator(mode="after")
    def _min_le_max(self) -> "PoolSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError("minReplicas must be less than or equal to maxReplicas")
        return self


class PoolsSpec(ApiModel):
    """Per-pool bounds: ``unified`` for mode unified, ``prefill`` and ``decode`` for disaggregated."""

    unified: PoolSpec | None = None
    prefill: PoolSpec | None = None
    decode: PoolSpec | None = None


class PlacementSpec(ApiModel):
    """Where replicas may run."""

    accelerator_classes: list[DnsLabel] = Field(
        min_length=1, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """AcceleratorClass names allowed for this model, at least one, no duplicates."""
    strategy: Literal["cheapest", "fastest", "pack"] = "cheapest"
    """``cheapest``: lowest cost class meeting the SLO; ``fastest``: best latency; ``pack``: fewest nodes."""

    @field_validator("accelerator_classes")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        return unique_names(names)


class AutoscalingSpec(ApiModel):
    """How tidal scales this workload."""

    policy: Literal["tidal", "hpa", "kpa", "static"] = "tidal"
    """Decision policy. Only ``tidal`` (today the utilisation rule) is implemented; the others run it too and say so in the decision's reasons."""
    predictor: Literal["auto", "torch", "holt-winters", "seasonal-naive", "none"] = "auto"
    """Load forecaster; ``auto`` picks the best recent performer per workload."""
    prewarm: bool = True
    """Start replicas one predicted cold start ahead of forecast demand. Not acted on yet: the forecast and cold start are reported only."""
    scale_to_zero: bool = False
    """Every pool to zero after ``scaleToZeroAfter`` without requests, even if minReplicas > 0, until requests reach the entry again. Needs the entry's request rate, which the operator does not read yet: there it keeps minReplicas and says so in the decision's reasons."""
    scale_to_zero_after: Duration = DEFAULT_SCALE_TO_ZERO_AFTER
    """Time without requests (none arriving, none in flight) before scaling to zero when scaleToZero is true."""
    scale_down_delay: Duration = DEFAULT_SCALE_DOWN_DELAY
    """Demand must stay low this long before replicas are removed."""


class KVCacheSpec(ApiModel):
    """KV-cache retention between turns of a session."""

    ttl: str = Field(default="auto", pattern=r"^(auto|off|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$", max_length=32)
    """``auto`` (learned from session pauses), ``off``, or a fixed duration such as ``30s``."""
    max_ttl: Duration = Field(default=DEFAULT_KV_MAX_TTL, alias="maxTTL")
    """Longest TTL ``auto`` may choose (a fixed ``ttl`` is used as written). Default: the 5-minute lifetime of hosted prompt caches (Anthropic, OpenAI)."""


class TenantSpec(ApiModel):
    """Which tenant this workload belongs to for fair sharing of GPUs."""

    name: DnsLabel = "default"
    """Tenant name as listed in a FairSharePolicy."""
    weight: float = Field(default=1.0, gt=0, le=1000)
    """Relative share within the tenant when GPUs are scarce. Not acted on yet."""
    priority: int = Field(default=0, ge=0, le=1000)
    """Higher priority workloads are served first within the tenant's grant. Not acted on yet."""


class ModelDeploymentSpec(ApiModel):
    """Desired state of a served model."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        (
            "self.mode == 'unified' ? (has(self.pools.unified) && !has(self.pools.prefill) && !has(self.pools.decode))"
            " : (has(self.pools.prefill) && has(self.pools.decode) && !has(self.pools.unified))",
            "mode unified needs pools.unified only; mode disaggregated needs pools.prefill and pools.decode only",
        ),
    )}

    model: ModelSpec
    engine: EngineSpec
    slo: SLOSpec
    mode: Literal["unified", "disaggregated"] = "unified"
    """``unified``: one pool does prefill and decode; ``disaggregated``: separate pools."""
    pools: PoolsSpec
    placement: PlacementSpec
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    kv_cache: KVCacheSpec = Field(default_factory=KVCacheSpec)
    tenant: TenantSpec = Field(default_factory=TenantSpec)
    replicas: int | None = Field(default=None, ge=0, le=10000)
    """Manual override set through the /scale subresource (kubectl scale): split over the pools in proportion to their maxReplicas, each share clamped to the pool's bounds; autoscaling pauses (condition ManualOverride) until the field is removed."""

    @model_validator(mode="after")
    def _pools_match_mode(self) -> "ModelDeploymentSpec":
        if self.mode == "unified":
            if self.pools.unified is None or self.pools.prefill is not None or self.pools.decode is not None:
                raise ValueError("mode unified needs pools.unified only; mode disaggregated needs pools.prefill and pools.decode only")
        elif self.pools.prefill is None or self.pools.decode is None or self.pools.unified is not None:
            raise ValueError("mode unified needs pools.unified only; mode disaggregated needs pools.prefill and pools.decode only")
        return self


class AcceleratorReplicas(StatusModel):
    """Replica counts of one pool on one accelerator class."""

    desired: int = 0
    ready: int = 0
    starting: int = 0


class PoolStatus(StatusModel):
    desired: int = 0
    ready: int = 0
    starting: int = 0
    by_accelerator: dict[str, AcceleratorReplicas] = Field(default_factory=dict)


class ForecastStatus(StatusModel):
    rps: float | None = None
    lower_rps: float | None = None
    upper_rps: float | None = None
    horizon_seconds: float | None = None


class ReasonStatus(StatusModel):
    code: str
    message: str = ""
    pool: str | None = None


class DecisionStatus(StatusModel):
    time: datetime | None = None
    policy: str = ""
    reasons: list[ReasonStatus] = Field(default_factory=list, max_length=32)


class ModelDeploymentStatus(StatusModel):
    observed_generation: int | None = None
    replicas: int = 0
    """Total ready replicas (the /scale subresource's status.replicas)."""
    ready_replicas: int = 0
    desired_replicas: int = 0
    selector: str = ""
    """Label selector of the replicas (the /scale subresource's labelSelectorPath)."""
    pools: dict[str, PoolStatus] = Field(default_factory=dict)
    forecast: ForecastStatus | None = None
    predicted_cold_start_seconds: float | None = None
    kv_ttl_seconds: float | None = None
    slo_attainment: float | None = None
    last_decision: DecisionStatus | None = None
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)


class ModelDeployment(ApiModel):
    """A served LLM with SLOs, autoscaled by tidal."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        (f"!has(self.metadata.name) || self.metadata.name.size() <= {MAX_NAME_LENGTH}",
         f"metadata.name must be at most {MAX_NAME_LENGTH} characters so child object names fit in 63"),
    )}

    api_version: Literal["tidal.dev/v1alpha1"] = "tidal.dev/v1alpha1"
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> "ModelDeployment":
        if self.metadata.name is not None and len(self.metadata.name) > MAX_NAME_LENGTH:
            raise ValueError(f"metadata.name must be at most {MAX_NAME_LENGTH} characters so child object names fit in 63")
        return self
