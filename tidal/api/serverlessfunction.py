"""ServerlessFunction: a request-driven container scaled by concurrency, with keep-alive and pre-warm."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tidal.api.types import CONDITIONS_LIST_MAP, ApiModel, Condition, Duration, ObjectMeta, Quantity, StatusModel, cel_rules

DEFAULT_CONCURRENCY_TARGET = 100
"""Knative Serving: container-concurrency-target-default is 100 in the config-autoscaler ConfigMap."""
DEFAULT_MAX_INSTANCES = 100
"""KEDA ScaledObject: maxReplicaCount defaults to 100."""
DEFAULT_SLO_PERCENTILE = 99.0
"""spec.slo.percentile when omitted (tidal's choice): cold starts are rare events, so a function's
latency SLO names the far tail, where they show."""
DEFAULT_FUNCTION_PORT = 8080
"""Knative's default container port (the PORT environment variable is 8080)."""


class ContainerSpec(ApiModel):
    """The function's container."""

    image: str = Field(min_length=1, max_length=512)
    """Container image."""
    args: list[str] = Field(default_factory=list, max_length=128)
    """Arguments passed to the container's entrypoint."""
    port: int = Field(default=DEFAULT_FUNCTION_PORT, ge=1, le=65535)
    """Port the function listens on for HTTP requests."""
    env: dict[str, str] = Field(default_factory=dict, max_length=128)
    """Environment variables."""


class FunctionSLOSpec(ApiModel):
    """Latency target including any cold start the request waited for. When the function's cold start (the median of its observed starts) exceeds ``latency``, every invocation that waits one misses the target, so the learned keep-alive covers at least ``percentile`` of the function's idle times."""

    latency: Duration
    """End-to-end latency target at the percentile, cold start included, e.g. ``2s``."""
    percentile: float = Field(default=DEFAULT_SLO_PERCENTILE, gt=0, lt=100)
    """Percentile of invocations the target refers to, strictly between 0 and 100."""


class ServerlessFunctionSpec(ApiModel):
    """Desired state of a serverless function."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        ("self.minInstances <= self.maxInstances", "minInstances must be less than or equal to maxInstances"),
        ("!self.scaleToZero || self.minInstances == 0", "scaleToZero requires minInstances: 0"),
    )}

    container: ContainerSpec
    concurrency_target: int = Field(default=DEFAULT_CONCURRENCY_TARGET, ge=1, le=10000)
    """In-flight requests per instance the autoscaler aims for."""
    memory: Quantity = "512Mi"
    """Memory per instance (request and limit)."""
    slo: FunctionSLOSpec
    keep_alive: str = Field(default="auto", pattern=r"^(auto|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$", max_length=32)
    """How long an idle instance is kept: ``auto`` (from the idle-time distribution) or a duration."""
    prewarm: Literal["auto", "off"] = "auto"
    """``auto``: start instances ahead of predicted invocations; ``off``: purely reactive."""
    min_instances: int = Field(default=0, ge=0, le=10000)
    """Instances kept at all times."""
    max_instances: int = Field(default=DEFAULT_MAX_INSTANCES, ge=1, le=10000)
    """Upper bound on instances."""
    scale_to_zero: bool = True
    """Allow zero instances when idle (requires minInstances: 0)."""

    @model_validator(mode="after")
    def _bounds(self) -> "ServerlessFunctionSpec":
        if self.min_instances > self.max_instances:
            raise ValueError("minInstances must be less than or equal to maxInstances")
        if self.scale_to_zero and self.min_instances != 0:
            raise ValueError("scaleToZero requires minInstances: 0")
        return self


class ServerlessFunctionStatus(StatusModel):
    observed_generation: int | None = None
    desired_instances: int = 0
    ready_instances: int = 0
    keep_alive_seconds: float | None = None
    prewarm_instances: int = 0
    cold_starts: int = 0
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra=CONDITIONS_LIST_MAP)


MAX_NAME_LENGTH = 63
"""The name is a label value on the function's pods (at most 63 characters). Its Service is named
after it too, rewritten when the name is not an RFC 1035 label (tidal.controllers.serverlessfunction.service_name)."""
NAME_TOO_LONG = f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the function's Service and pod label carry it"


class ServerlessFunction(ApiModel):
    """A serverless function autoscaled by tidal."""

    model_config = {**ApiModel.model_config, "json_schema_extra": cel_rules(
        (f"!has(self.metadata.name) || self.metadata.name.size() <= {MAX_NAME_LENGTH}", NAME_TOO_LONG),
    )}

    api_version: Literal["tidal.dev/v1alpha1"] = "tidal.dev/v1alpha1"
    kind: Literal["ServerlessFunction"] = "ServerlessFunction"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServerlessFunctionSpec
    status: ServerlessFunctionStatus | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> "ServerlessFunction":
        if self.metadata.name is not None and len(self.metadata.name) > MAX_NAME_LENGTH:
            raise ValueError(NAME_TOO_LONG)
        return self
