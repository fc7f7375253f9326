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


class ScaleTargetRef(ApiModel):
    """A workload tidal did not create, scaled through its ``/scale`` subresource (as an HPA's
    ``scaleTargetRef``, Kubernetes' autoscaling/v2 CrossVersionObjectReference)."""

    api_version: str = Field(min_length=1, max_length=253, pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+[a-z0-9]*$")
    """API version of the target, e.g. ``apps/v1`` or ``leaderworkerset.x-k8s.io/v1``."""
    kind: str = Field(min_length=1, max_length=63, pattern=r"^[A-Z][A-Za-z0-9]*$")
    """Kind of the target, e.g. ``Deployment``, ``StatefulSet``, ``LeaderWorkerSet``; it must have a
    ``/scale`` subresource whose status reports a label selector."""
    name: DnsLabel
    """Name of the target in the ModelDeployment's namespace."""


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
    scale_target_ref: ScaleTargetRef | None = None
    """Target mode: scale this existing workload (anything with a ``/scale`` subresource: a Deployment,
    StatefulSet, LeaderWorkerSet or another serving stack's role) instead of rendering the pool. tidal
    then writes only its ``/scale`` replicas, finds its pods by the label selector ``/scale`` reports
    and reads their engine metrics by pod name; it renders no engine pods, Services or router for the
    ModelDeployment. Set it on every pool or on none."""

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


EXTENDED_RESOURCE_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"
"""Kubernetes extended resource names (``vendor.example/name``), as in AcceleratorClass.deviceResourceName."""


class DisaggregationSpec(ApiModel):
    """How the prefill and decode pools of ``mode: disaggregated`` exchange KV cache, and the router in
    front of them (tidal/controllers/disaggregation.py; what was chosen and why: docs/serving.md).
    Ignored in ``mode: unified``."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("!has(self.rdmaDeviceResource) || self.kvTransport == 'rdma'",
         "disaggregation.rdmaDeviceResource needs kvTransport: rdma; remove it or set kvTransport: rdma"),
    )}

    kv_transport: Literal["tcp", "rdma"] = "tcp"
    """Network the KV cache moves over from a prefill to a decode replica. ``tcp`` works on every pod
    network (vLLM: NIXL over UCX restricted to TCP; SGLang: Mooncake forced to TCP, ``mooncake_tcp``).
    ``rdma`` uses InfiniBand/RoCE NICs exposed to the pods (vLLM: UCX picks RDMA; SGLang: Mooncake
    over RDMA) and adds the IPC_LOCK capability that RDMA memory registration needs; set
    ``rdmaDeviceResource`` too when a device plugin exposes the NICs."""
    rdma_device_resource: str | None = Field(default=None, min_length=1, max_length=253,
                                             pattern=EXTENDED_RESOURCE_PATTERN)
    """Extended resource of the RDMA NIC device plugin (e.g. ``rdma/ib``), one requested per prefill and
    decode pod when ``kvTransport: rdma``."""
    router_image: str | None = Field(default=None, min_length=1, max_length=512)
    """Router image; defaults to the release tidal's router flags were checked against
    (``vllm/vllm-router:v0.1.17`` for vLLM, ``lightseekorg/smg:1.13.0`` for SGLang). Set it to a mirror
    of the same release in an air-gapped cluster."""

    @model_validator(mode="after")
    def _rdma_resource_needs_rdma(self) -> "DisaggregationSpec":
        if self.rdma_device_resource is not None and self.kv_transport != "rdma":
            raise ValueError("disaggregation.rdmaDeviceResource needs kvTransport: rdma; "
                             "remove it or set kvTransport: rdma")
        return self


class PlacementSpec(ApiModel):
    """Where replicas may run."""

    accelerator_classes: list[DnsLabel] = Field(
        min_length=1, max_length=16, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """AcceleratorClass names allowed for this model, at least one, no duplicates."""
    strategy: Literal["cheapest", "fastest", "pack"] = "cheapest"
    """``cheapest``: lowest cost per request served (hourlyCost x GPUs / goodput) among classes meeting the SLO; ``fastest``: highest peak FLOP/s; ``pack``: ranks as ``cheapest`` and adds a preferred pod affinity to nodes already running tidal engine pods, so replicas fill used nodes before empty ones (docs/placement.md)."""

    @field_validator("accelerator_classes")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        return unique_names(names)


class AutoscalingSpec(ApiModel):
    """How tidal scales this workload."""

    policy: Literal["tidal", "hpa", "kpa", "static"] = "tidal"
    """Decision policy. ``tidal``: the SLO planner (replicas from goodput per replica under spec.slo on the accelerator class's performance profile, corrected online from observed TTFT/TPOT; in-flight requests when no request rate is read). ``hpa``: the Kubernetes HPA on in-flight requests per pod (16), scaleDownDelay as its stabilisation window. ``kpa``: Knative's KPA on concurrency (16 per pod). ``static``: every pool at minReplicas."""
    predictor: Literal["auto", "torch", "holt-winters", "seasonal-naive", "none"] = "auto"
    """Load forecaster; ``auto`` picks the best recent performer per workload."""
    prewarm: bool = True
    """With policy tidal: size for the forecast request rate (median) one predicted p90 cold start ahead when it exceeds the observed rate, so replicas are ready when demand arrives."""
    scale_to_zero: bool = False
    """Every pool to zero after ``scaleToZeroAfter`` without requests, even if minReplicas > 0, until requests reach the entry again. Needs the request rate at the workload's entry, which the operator reads from the activator (operator flag --activator-service, chart activator.enabled; docs/activator.md); without it the operator keeps minReplicas and says so in the decision's reasons."""
    scale_to_zero_after: Duration = DEFAULT_SCALE_TO_ZERO_AFTER
    """Time without requests (none arriving, none in flight) before scaling to zero when scaleToZero is true."""
    scale_down_delay: Duration = DEFAULT_SCALE_DOWN_DELAY
    """Demand must stay low this long before replicas are removed."""


class KVCacheSpec(ApiModel):
    """KV-cache retention between turns of a session."""

    ttl: str = Field(default="auto", pattern=r"^(auto|off|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$", max_length=32)
    """``auto`` (learned from session pauses: vLLM's KV-block residency histograms, which tidal turns on
    with ``--kv-cache-metrics``; SGLang has none and stays at 0), ``off``, or a fixed duration such as ``30s``."""
    max_ttl: Duration = Field(default=DEFAULT_KV_MAX_TTL, alias="maxTTL")
    """Longest TTL ``auto`` may choose (a fixed ``ttl`` is used as written). Default: the 5-minute lifetime of hosted prompt caches (Anthropic, OpenAI)."""


class TenantSpec(ApiModel):
    """Which tenant this workload belongs to for fair sharing of GPUs."""

    name: DnsLabel = "default"
    """Tenant name as listed in a FairSharePolicy."""
    weight: float = Field(default=1.0, gt=0, le=1000)
    """Relative share of the tenant's grant among its workloads of one priority (weighted max-min), when a FairSharePolicy governs the tenant; replicas are capped to the share."""
    priority: int = Field(default=0, ge=0, le=1000)
    """Within the tenant's grant, higher-priority workloads are served first (up to their demand), then the next priority."""


class ModelDeploymentSpec(ApiModel):
    """Desired state of a served model."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        (
            "self.mode == 'unified' ? (has(self.pools.unified) && !has(self.pools.prefill) && !has(self.pools.decode))"
            " : (has(self.pools.prefill) && has(self.pools.decode) && !has(self.pools.unified))",
            "mode unified needs pools.unified only; mode disaggregated needs pools.prefill and pools.decode only",
        ),
        (
            "[has(self.pools.unified) && has(self.pools.unified.scaleTargetRef),"
            " has(self.pools.prefill) && has(self.pools.prefill.scaleTargetRef),"
            " has(self.pools.decode) && has(self.pools.decode.scaleTargetRef)].exists(x, x)"
            " ? !([has(self.pools.unified) && !has(self.pools.unified.scaleTargetRef),"
            " has(self.pools.prefill) && !has(self.pools.prefill.scaleTargetRef),"
            " has(self.pools.decode) && !has(self.pools.decode.scaleTargetRef)].exists(x, x)) : true",
            "pools: set scaleTargetRef on every pool or on none (tidal renders all pools or none)",
        ),
    )}

    model: ModelSpec
    engine: EngineSpec
    slo: SLOSpec
    mode: Literal["unified", "disaggregated"] = "unified"
    """``unified``: one pool does prefill and decode; ``disaggregated``: separate pools."""
    pools: PoolsSpec
    disaggregation: DisaggregationSpec = Field(default_factory=DisaggregationSpec)
    """KV transfer and router of ``mode: disaggregated``."""
    placement: PlacementSpec
    autoscaling: AutoscalingSpec = Field(default_factory=AutoscalingSpec)
    kv_cache: KVCacheSpec = Field(default_factory=KVCacheSpec)
    tenant: TenantSpec = Field(default_factory=TenantSpec)
    replicas: int | None = Field(default=None, ge=0, le=10000)
    """Manual override set through the /scale subresource (kubectl scale): split over the pools in proportion to their maxReplicas, each share clamped to the pool's bounds; autoscaling pauses (condition ManualOverride) until the field is removed."""

    @model_validator(mode="after")
    def _targets_all_or_none(self) -> "ModelDeploymentSpec":
        refs = [p.scale_target_ref for p in (self.pools.unified, self.pools.prefill, self.pools.decode) if p is not None]
        if any(r is not None for r in refs) and not all(r is not None for r in refs):
            raise ValueError("pools: set scaleTargetRef on every pool or on none (tidal renders all pools or none)")
        return self

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
    demand_gpus: int | None = None
    """GPUs the autoscaling decision asked for before a FairSharePolicy's cap: this workload's demand in that policy."""
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
