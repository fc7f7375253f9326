"""Render and report a ServerlessFunction: one Deployment and one Service, instances from the
keep-alive/pre-warm policy, and the status the operator writes.

Pure: the operator applies what this returns with server-side apply (field manager ``tidal``), so
re-rendering the same inputs is a no-op. The instance count comes from
:func:`tidal.core.serverlessfunction.decide_function` running the
:class:`tidal.policies.keepalive.KeepAlivePolicy` :func:`policy_for` builds, as in the serverless
simulator; :func:`instance_starts` reads the starts it learns the cold start from off the pods.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from tidal.api.serverlessfunction import (
    ServerlessFunction,
    ServerlessFunctionSpec,
    ServerlessFunctionStatus,
)
from tidal.api.types import Condition, parse_duration_s, parse_quantity_bytes
from tidal.controllers.conditions import set_condition
from tidal.controllers.labels import FUNCTION_LABEL, MANAGED_BY
from tidal.controllers.modeldeployment import owner_reference
from tidal.controllers.modeldeployment_observe import pod_summary, start_times
from tidal.core.serverlessfunction import slo_tail_percentile
from tidal.policies.defaults import FUNCTION_COLD_START_S
from tidal.policies.interface import POOL_FUNCTION, Decision, ReplicaStart
from tidal.policies.keepalive import KeepAlivePolicy

KIND = "ServerlessFunction"
PRESTOP_DELAY_S = 5
"""Seconds a terminating instance keeps serving while Service endpoints drop it (the usual
endpoint-propagation allowance for graceful Pod shutdown; same as ModelDeployment replicas)."""
REQUEST_TIMEOUT_S = 300
"""Knative Serving ``revision-timeout-seconds`` default (300 s): the longest a request may run, so
the longest drain a scale-down must allow before the container is killed."""
INITIAL_SCALE = 1
"""Knative ``initial-scale: 1``: a new function starts with one instance so its first request is warm."""
SERVICE_PORT = 80
"""Knative exposes functions on port 80 of their Service."""
READINESS_PERIOD_S = 1
"""Functions start in seconds; probe every second (Knative's queue-proxy probes even faster)."""
READINESS_FAILURE_THRESHOLD = 3


MAX_NAME_LENGTH = 63
"""The function's name is the value of the ``tidal.dev/function`` label, and label values are at
most 63 characters (Kubernetes label syntax)."""


def name_problem(name: str) -> str | None:
    """Why tidal cannot render children for a function of this name, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return (
            f"metadata.name: {len(name)} characters; at most {MAX_NAME_LENGTH}, because it becomes the "
            f"{FUNCTION_LABEL} label value: recreate the function with a shorter name"
        )
    return None


DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
"""Service names are RFC 1035 labels (apimachinery IsDNS1035Label): no dots, a letter first, at most
63 characters. Function names are object names (RFC 1123 subdomains), so ``api.v1`` or ``2fa`` are
valid functions whose name is not a valid Service name."""
SERVICE_NAME_HASH_CHARS = 8
"""Hex digits of sha256(function name) appended when the name must be rewritten: ``api.v1`` and
``api-v1`` then get different Services (``api-v1-<hash>`` and ``api-v1``)."""


def service_name(name: str) -> str:
    """The function's Service name: the function's own name when it is a valid RFC 1035 label,
    else a valid label derived from it (dots and other characters to ``-``, a leading ``fn-`` when
    it does not start with a letter) plus a hash of the original, so no two functions share one."""
    if len(name) <= MAX_NAME_LENGTH and re.fullmatch(DNS1035_LABEL, name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:SERVICE_NAME_HASH_CHARS]
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    if not base[:1].isalpha():
        base = "fn-" + base
    base = base[: MAX_NAME_LENGTH - SERVICE_NAME_HASH_CHARS - 1].strip("-")
    return f"{base}-{digest}"


def function_labels(name: str) -> dict[str, str]:
    return {FUNCTION_LABEL: name}


def label_selector(name: str) -> str:
    return f"{FUNCTION_LABEL}={name}"


def policy_for(
    spec: ServerlessFunctionSpec,
    *,
    cold_start_s: float = FUNCTION_COLD_START_S,
    activity_window_s: float = 0.0,
) -> KeepAlivePolicy:
    """The keep-alive policy configured by the spec (``keepAlive: auto`` learns the windows) for a
    function whose instances start in ``cold_start_s`` (learnt by
    :func:`tidal.core.serverlessfunction.decide_function`): the pre-warm lead, and when it exceeds
    ``spec.slo.latency`` the learned window covers ``spec.slo.percentile`` of the idle times."""
    keep_alive_s = None if spec.keep_alive == "auto" else parse_duration_s(spec.keep_alive)
    return KeepAlivePolicy(
        # The learned window prices a cold start in GB-seconds of idle memory.
        memory_mb=parse_quantity_bytes(spec.memory) / 2**20,
        concurrency_target=float(spec.concurrency_target),
        min_instances=spec.min_instances,
        max_instances=spec.max_instances,
        scale_to_zero=spec.scale_to_zero,
        keep_alive_s=keep_alive_s,
        prewarm=spec.prewarm == "auto",
        cold_start_s=cold_start_s,
        activity_window_s=activity_window_s,
        slo_tail_percentile=slo_tail_percentile(
            parse_duration_s(spec.slo.latency), spec.slo.percentile, cold_start_s
        ),
    )


def initial_instances(spec: ServerlessFunctionSpec) -> int:
    """Instances for a function tidal has not decided on yet."""
    return min(max(spec.min_instances, INITIAL_SCALE), spec.max_instances)


def instances_to_render(spec: ServerlessFunctionSpec, status: Mapping[str, Any] | None) -> int:
    """Replicas for the Deployment on create/update: the last decision if any, within the spec's
    (possibly changed) bounds, else the initial scale."""
    desired = (status or {}).get("desiredInstances")
    if (
        not isinstance(desired, int)
        or isinstance(desired, bool)
        or not (status or {}).get("observedGeneration")
    ):
        return initial_instances(spec)
    floor = spec.min_instances if spec.scale_to_zero else max(spec.min_instances, 1)
    return min(max(desired, floor), spec.max_instances)


def render_deployment(fn: ServerlessFunction, uid: str, replicas: int) -> dict[str, Any]:
    name = fn.metadata.name or ""
    spec = fn.spec
    labels = {**MANAGED_BY, **function_labels(name)}
    env = [{"name": "PORT", "value": str(spec.container.port)}]
    env += [{"name": k, "value": v} for k, v in sorted(spec.container.env.items()) if k != "PORT"]
    container: dict[str, Any] = {
        "name": "function",
        "image": spec.container.image,
        "ports": [{"name": "http", "containerPort": spec.container.port}],
        "env": env,
        "resources": {"requests": {"memory": spec.memory}, "limits": {"memory": spec.memory}},
        # Functions declare no health path; a listening socket is what Knative probes by default.
        "readinessProbe": {
            "tcpSocket": {"port": "http"},
            "periodSeconds": READINESS_PERIOD_S,
            "failureThreshold": READINESS_FAILURE_THRESHOLD,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_DELAY_S}}},
    }
    if spec.container.args:
        container["args"] = list(spec.container.args)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": fn.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(KIND, name, uid)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": function_labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": PRESTOP_DELAY_S + REQUEST_TIMEOUT_S,
                },
            },
        },
    }


def render_service(fn: ServerlessFunction, uid: str) -> dict[str, Any]:
    name = fn.metadata.name or ""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name),
            "namespace": fn.metadata.namespace,
            "labels": {**MANAGED_BY, **function_labels(name)},
            "ownerReferences": [owner_reference(KIND, name, uid)],
        },
        "spec": {
            "selector": function_labels(name),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }


def state_configmap_name(name: str) -> str:
    return f"{name}-keepalive"


STATE_KEY = "state.json"


def render_state_configmap(
    fn: ServerlessFunction, uid: str, state: Mapping[str, Any]
) -> dict[str, Any]:
    """The keep-alive policy's durable state (idle-time histogram), so an operator restart keeps
    what it learned. Owned by the function: deleting the function deletes it."""
    name = fn.metadata.name or ""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": state_configmap_name(name),
            "namespace": fn.metadata.namespace,
            "labels": {**MANAGED_BY, **function_labels(name)},
            "ownerReferences": [owner_reference(KIND, name, uid)],
        },
        "data": {STATE_KEY: json.dumps(state, sort_keys=True, separators=(",", ":"))},
    }


def state_from_configmap(data: Mapping[str, str] | None) -> Any:
    """The JSON the ConfigMap holds, or None when absent or unreadable."""
    try:
        return json.loads((data or {})[STATE_KEY])
    except (KeyError, TypeError, ValueError):
        return None


def render_children(fn: ServerlessFunction, uid: str, replicas: int) -> list[dict[str, Any]]:
    return [render_deployment(fn, uid, replicas), render_service(fn, uid)]


def instance_starts(name: str, pods: Iterable[Mapping[str, Any]]) -> tuple[ReplicaStart, ...]:
    """The starts of the function's pods that became Ready (camelCase pod dicts): creation ->
    PodScheduled -> containers running -> Ready, as for ModelDeployment replicas
    (:func:`tidal.controllers.modeldeployment_observe.start_times`). A pod still starting, or one
    missing a timestamp, has no start yet. The readiness probe's delay is part of it: a request
    waits for it too."""
    out = []
    for obj in pods:
        pod = pod_summary(obj, name, POOL_FUNCTION, "")
        times = start_times(pod)
        if times is None or not pod.uid:
            continue
        out.append(ReplicaStart(pod.uid, POOL_FUNCTION, "", pod.node, times.scheduling_s,
                                times.image_pull_s, 0.0, times.after_start_s,
                                image_cached=times.image_cached))
    return tuple(out)


def cold_starts_added(current: int, desired: int) -> int:
    """Instances started by a decision; each pays a cold start."""
    return max(0, desired - current)


def compute_status(
    *,
    generation: int | None,
    desired: int,
    ready: int,
    decision: Decision | None,
    metrics_available: bool,
    metrics_message: str,
    previous: Mapping[str, Any] | None,
    now: datetime,
    cold_starts: int = 0,
    degraded: str | None = None,
) -> dict[str, Any]:
    """The status to write (camelCase), conditions keeping their lastTransitionTime when unchanged."""
    previous = previous or {}
    conditions: Sequence[Mapping[str, Any]] = previous.get("conditions") or []
    details = decision.details if decision is not None else {}
    ready_ok = ready >= desired
    conditions = set_condition(
        conditions,
        "Ready",
        ready_ok,
        "InstancesReady" if ready_ok else "InstancesStarting",
        f"{ready}/{desired} instances ready",
        now,
        generation,
    )
    conditions = set_condition(
        conditions,
        "MetricsAvailable",
        metrics_available,
        "MetricsRead" if metrics_available else "MetricsUnavailable",
        metrics_message,
        now,
        generation,
    )
    conditions = set_condition(
        conditions,
        "Degraded",
        degraded is not None,
        "StepFailed" if degraded else "AsExpected",
        degraded or "",
        now,
        generation,
    )
    keep_alive = details.get("keep_alive_s", previous.get("keepAliveSeconds"))
    status = ServerlessFunctionStatus(
        observed_generation=generation,
        desired_instances=desired,
        ready_instances=ready,
        keep_alive_seconds=None
        if keep_alive is None or not math.isfinite(keep_alive)
        else float(keep_alive),
        prewarm_instances=int(details.get("prewarm_instances", 0)),
        cold_starts=int(previous.get("coldStarts", 0)) + cold_starts,
        conditions=[Condition.model_validate(c) for c in conditions],
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def invalid_status(
    generation: int | None, message: str, previous: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """Status for a spec tidal cannot act on: Ready False with reason InvalidSpec, nothing else changed."""
    conditions = set_condition(
        (previous or {}).get("conditions") or [],
        "Ready",
        False,
        "InvalidSpec",
        message,
        now,
        generation,
    )
    return {"observedGeneration": generation, "conditions": list(conditions)}


def desired_of(decision: Decision) -> int | None:
    return decision.desired_replicas.get(POOL_FUNCTION)
