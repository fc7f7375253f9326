"""Pod settings a ModelDeployment merges over the engine pods tidal renders (``spec.engine.pod``).

Typed subsets of Kubernetes' core/v1 Pod fields, spelled as in a Pod manifest, so a value that reaches
the pod was checked here first and a typo is an error naming the field. Field meanings are
Kubernetes' own: https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/.
How each field is merged over the rendered pod is documented on the field.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tidal.api.types import ApiModel, DnsLabel, Quantity, cel_rules

ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
"""Kubernetes' rule for environment variable names (core/v1 validation, since 1.26 any printable
name is allowed; this is the portable subset every shell and engine reads)."""
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""Names of Secrets, ConfigMaps, PersistentVolumeClaims and ServiceAccounts (RFC 1123 subdomain)."""
CPU_QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?m?$"
"""CPU amounts: cores (``2``, ``0.5``) or millicores (``500m``)."""
LABEL_KEY_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
RESERVED_LABEL_PREFIX = "tidal.dev/"
"""Labels tidal selects its pods by; a pod label under this prefix would break the Deployment selector."""
AFFINITY_KEYS = ("nodeAffinity", "podAffinity", "podAntiAffinity")
SHM_VOLUME_NAME = "dshm"
"""The memory-backed /dev/shm volume tidal renders into every engine pod."""
MAX_ITEMS = 64
"""Upper bound on every list and map here (keeps the CRD's CEL cost estimate bounded)."""


class KeyRef(ApiModel):
    """One key of a Secret or ConfigMap (core/v1 SecretKeySelector / ConfigMapKeySelector)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the Secret or ConfigMap in the ModelDeployment's namespace."""
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key within it."""
    optional: bool = False
    """Start the pod even when the object or key is missing."""


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from: exactly one of the two."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("has(self.secretKeyRef) != has(self.configMapKeyRef)",
         "valueFrom needs exactly one of secretKeyRef or configMapKeyRef"),
    )}

    secret_key_ref: KeyRef | None = None
    """A key of a Secret, e.g. the Hugging Face token (``HF_TOKEN``)."""
    config_map_key_ref: KeyRef | None = None
    """A key of a ConfigMap."""

    @model_validator(mode="after")
    def _exactly_one(self) -> "EnvVarSource":
        if (self.secret_key_ref is None) == (self.config_map_key_ref is None):
            raise ValueError("valueFrom needs exactly one of secretKeyRef or configMapKeyRef")
        return self


class EnvVar(ApiModel):
    """An environment variable of the engine container (core/v1 EnvVar)."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("!(has(self.value) && has(self.valueFrom))", "env: set value or valueFrom, not both"),
    )}

    name: str = Field(min_length=1, max_length=256, pattern=ENV_NAME_PATTERN)
    """Variable name; a name tidal also renders (e.g. TIDAL_POOL) is replaced by this one."""
    value: str | None = Field(default=None, max_length=32768)
    """Literal value."""
    value_from: EnvVarSource | None = None
    """Value read from a Secret or ConfigMap key."""

    @model_validator(mode="after")
    def _one_source(self) -> "EnvVar":
        if self.value is not None and self.value_from is not None:
            raise ValueError("env: set value or valueFrom, not both")
        return self


class NameRef(ApiModel):
    """A whole Secret or ConfigMap (core/v1 SecretEnvSource / ConfigMapEnvSource)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Secret or ConfigMap in the ModelDeployment's namespace."""
    optional: bool = False
    """Start the pod even when the object is missing."""


class EnvFromSource(ApiModel):
    """Every key of a Secret or ConfigMap as environment variables (core/v1 EnvFromSource)."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("has(self.secretRef) != has(self.configMapRef)", "envFrom needs exactly one of secretRef or configMapRef"),
    )}

    secret_ref: NameRef | None = None
    """A Secret, e.g. one holding ``HF_TOKEN`` for gated Hugging Face models."""
    config_map_ref: NameRef | None = None
    """A ConfigMap."""
    prefix: str | None = Field(default=None, max_length=128, pattern=ENV_NAME_PATTERN)
    """Prepended to every key."""

    @model_validator(mode="after")
    def _exactly_one(self) -> "EnvFromSource":
        if (self.secret_ref is None) == (self.config_map_ref is None):
            raise ValueError("envFrom needs exactly one of secretRef or configMapRef")
        return self


class SecretVolume(ApiModel):
    """A Secret's keys as files (core/v1 SecretVolumeSource)."""

    secret_name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Secret in the ModelDeployment's namespace."""
    optional: bool = False
    """Start the pod even when the Secret is missing."""


class ConfigMapVolume(ApiModel):
    """A ConfigMap's keys as files (core/v1 ConfigMapVolumeSource)."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """ConfigMap in the ModelDeployment's namespace."""
    optional: bool = False
    """Start the pod even when the ConfigMap is missing."""


class PersistentVolumeClaimVolume(ApiModel):
    """A PersistentVolumeClaim (core/v1 PersistentVolumeClaimVolumeSource)."""

    claim_name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """A PVC in the ModelDeployment's namespace, e.g. a pre-filled model cache."""
    read_only: bool = False
    """Mount it read-only (several replicas can then share a ReadOnlyMany claim)."""


class EmptyDirVolume(ApiModel):
    """Scratch space that lives as long as the pod (core/v1 EmptyDirVolumeSource)."""

    medium: Literal["", "Memory"] = ""
    """``Memory`` for a tmpfs; empty for node disk."""
    size_limit: Quantity | None = None
    """Most the volume may hold, e.g. ``100Gi``."""


VOLUME_SOURCES = ("secret", "configMap", "persistentVolumeClaim", "emptyDir")


class Volume(ApiModel):
    """A pod volume (core/v1 Volume) with exactly one of the sources tidal supports."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("(has(self.secret) ? 1 : 0) + (has(self.configMap) ? 1 : 0)"
         " + (has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.emptyDir) ? 1 : 0) == 1",
         "a volume needs exactly one of secret, configMap, persistentVolumeClaim or emptyDir"),
    )}

    name: DnsLabel
    """Volume name; a volume tidal renders with the same name (``dshm``) is replaced by this one."""
    secret: SecretVolume | None = None
    """Files from a Secret."""
    config_map: ConfigMapVolume | None = None
    """Files from a ConfigMap."""
    persistent_volume_claim: PersistentVolumeClaimVolume | None = None
    """A persistent volume, e.g. a model cache."""
    empty_dir: EmptyDirVolume | None = None
    """Scratch space."""

    @model_validator(mode="after")
    def _exactly_one(self) -> "Volume":
        given = [s for s in (self.secret, self.config_map, self.persistent_volume_claim, self.empty_dir) if s is not None]
        if len(given) != 1:
            raise ValueError("a volume needs exactly one of secret, configMap, persistentVolumeClaim or emptyDir")
        return self


class VolumeMount(ApiModel):
    """Where a volume appears in the engine container (core/v1 VolumeMount)."""

    name: DnsLabel
    """A volume of ``volumes`` (or ``dshm``, tidal's shared-memory volume)."""
    mount_path: str = Field(min_length=2, max_length=1024, pattern=r"^/")
    """Absolute path; a mount tidal renders at the same path is replaced by this one."""
    read_only: bool = False
    """Mount read-only."""
    sub_path: str | None = Field(default=None, max_length=1024, pattern=r"^[^/]")
    """Relative path within the volume to mount instead of its root."""


class Toleration(ApiModel):
    """A taint the engine pods tolerate (core/v1 Toleration), added to tidal's (it renders none)."""

    key: str | None = Field(default=None, max_length=316, pattern=LABEL_KEY_PATTERN)
    """Taint key, e.g. ``nvidia.com/gpu``; empty with operator Exists tolerates every taint."""
    operator: Literal["Equal", "Exists"] = "Equal"
    """``Equal`` matches key and value; ``Exists`` matches the key alone."""
    value: str | None = Field(default=None, max_length=63)
    """Taint value for operator Equal."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Empty matches every effect."""
    toleration_seconds: int | None = Field(default=None, ge=0, le=31_536_000)
    """For NoExecute: how long the pod stays bound after the taint appears."""


class ResourceAmounts(ApiModel):
    """CPU and memory amounts; GPUs come from the pool's gpusPerReplica and the AcceleratorClass."""

    cpu: str | None = Field(default=None, max_length=32, pattern=CPU_QUANTITY_PATTERN)
    """Cores (``8``) or millicores (``500m``)."""
    memory: Quantity | None = None
    """Bytes with a suffix, e.g. ``64Gi``."""


class ContainerResources(ApiModel):
    """CPU and memory of the engine container, added next to the GPU request tidal renders."""

    requests: ResourceAmounts | None = None
    """What the scheduler reserves; tokenisation and weight loading need CPU and host memory."""
    limits: ResourceAmounts | None = None
    """Hard caps; a memory limit below what loading the weights needs gets the pod OOM-killed."""


class PodSecurity(ApiModel):
    """Pod-level identity settings (core/v1 PodSecurityContext), merged over tidal's (which sets only
    the RuntimeDefault seccomp profile)."""

    run_as_user: int | None = Field(default=None, ge=0, le=2_147_483_647)
    """UID the engine runs as."""
    run_as_group: int | None = Field(default=None, ge=0, le=2_147_483_647)
    """GID the engine runs as."""
    fs_group: int | None = Field(default=None, ge=0, le=2_147_483_647)
    """Group owning mounted volumes, so a non-root engine can write a model-cache PVC."""
    run_as_non_root: bool | None = None
    """The official vLLM and SGLang images run as root; set runAsUser too when setting this."""


def _check_required_node_terms(node_affinity: Any) -> None:
    """The part of a user's affinity tidal merges into (required node terms) must have Kubernetes'
    shape; the rest is passed through and checked by the API server when the Deployment is applied."""
    where = "affinity.nodeAffinity"
    if node_affinity is None:
        return
    if not isinstance(node_affinity, dict):
        raise ValueError(f"{where} must be an object (core/v1 NodeAffinity)")
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    if not isinstance(terms, list) or not all(isinstance(t, dict) for t in terms):
        raise ValueError(f"{where}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms "
                         "must be a list of node selector terms")
    for i, term in enumerate(terms):
        if not isinstance(term.get("matchExpressions", []), list):
            raise ValueError(f"{where}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{i}]"
                             ".matchExpressions must be a list")


class PodSettings(ApiModel):
    """Settings merged over the engine pods tidal renders: lists merge by name (by mountPath for
    volumeMounts) with these entries winning, maps merge key by key, anything else is added."""

    env: list[EnvVar] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Environment variables of the engine container."""
    env_from: list[EnvFromSource] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Secrets/ConfigMaps whose keys all become environment variables (e.g. ``HF_TOKEN``)."""
    volumes: list[Volume] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Pod volumes, e.g. a PVC holding a model cache."""
    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Mounts of ``volumes`` in the engine container."""
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_ITEMS)
    """Taints to tolerate, e.g. the ``nvidia.com/gpu`` taint many GPU node pools carry."""
    node_selector: dict[str, str] = Field(default_factory=dict, max_length=MAX_ITEMS)
    """Node labels required in addition to the AcceleratorClass's nodeSelector."""
    affinity: dict[str, Any] | None = Field(default=None, json_schema_extra={
        "x-kubernetes-preserve-unknown-fields": True,
        "description": "A core/v1 Affinity (nodeAffinity, podAffinity, podAntiAffinity), Kubernetes' "
                       "own schema. Required node-affinity terms are each ANDed with the "
                       "AcceleratorClass's node selector; everything else is added as given.",
    })
    """A core/v1 Affinity; required node terms are ANDed with the AcceleratorClass's node selector."""
    resources: ContainerResources | None = None
    """CPU and memory requests/limits of the engine container."""
    security_context: PodSecurity | None = None
    """Pod identity (runAsUser, fsGroup, ...); tidal's container hardening stays in place."""
    service_account_name: str | None = Field(default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Service account of the pods (e.g. one with cloud-storage access for weights). Its token is
    still not mounted unless automountServiceAccountToken is true."""
    automount_service_account_token: bool = False
    """Mount the service account's API token; the engines never call the Kubernetes API."""
    annotations: dict[str, str] = Field(default_factory=dict, max_length=MAX_ITEMS)
    """Added to the pod template's annotations."""
    labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_ITEMS)
    """Added to the pod template's labels; keys under ``tidal.dev/`` are tidal's and rejected."""

    @field_validator("labels")
    @classmethod
    def _no_reserved_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        reserved = sorted(k for k in labels if k.startswith(RESERVED_LABEL_PREFIX))
        if reserved:
            raise ValueError(f"labels {', '.join(reserved)}: keys under {RESERVED_LABEL_PREFIX} select tidal's pods; "
                             "use another prefix")
        return labels

    @field_validator("affinity")
    @classmethod
    def _affinity_keys(cls, affinity: dict[str, Any] | None) -> dict[str, Any] | None:
        unknown = sorted(set(affinity or {}) - set(AFFINITY_KEYS))
        if unknown:
            raise ValueError(f"affinity has unknown keys {', '.join(unknown)}: use {', '.join(AFFINITY_KEYS)}")
        _check_required_node_terms((affinity or {}).get("nodeAffinity"))
        return affinity

    @model_validator(mode="after")
    def _mounts_name_volumes(self) -> "PodSettings":
        known = {v.name for v in self.volumes} | {SHM_VOLUME_NAME}
        unknown = sorted({m.name for m in self.volume_mounts} - known)
        if unknown:
            raise ValueError(f"volumeMounts name volumes that are not in volumes: {', '.join(unknown)}")
        return self

    @field_validator("env", "volumes")
    @classmethod
    def _unique_names(cls, items: list[Any]) -> list[Any]:
        names = [i.name for i in items]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate names: {', '.join(duplicates)}")
        return items
