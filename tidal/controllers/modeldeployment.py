"""Render the children of a ModelDeployment: a Deployment per pool per accelerator class, a Service
per pool and the KV-policy ConfigMap. Pure: the operator applies what this returns with server-side
apply, so re-rendering the same inputs is a no-op (level-based, idempotent)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment, PoolSpec
from tidal.api.types import parse_duration_s
from tidal.controllers.labels import ACCELERATOR_LABEL, DEPLOYMENT_LABEL, MANAGED_BY, POOL_LABEL

PRESTOP_DELAY_S = 5
"""Seconds a terminating replica keeps serving so Service endpoints drop it before it stops
accepting connections (the usual endpoint-propagation allowance for graceful Pod shutdown)."""

READINESS_PERIOD_S = 5
READINESS_FAILURE_THRESHOLD = 3
STARTUP_PROBE_PERIOD_S = 10
MAX_STARTUP_S = 1800
"""Loading 70B-class weights can take many minutes; the startup probe allows up to 30 minutes."""

ENGINE_COMMANDS: Mapping[str, tuple[str, ...]] = {
    # vLLM's OpenAI-compatible server (`vllm serve <model> --port N`).
    "vllm": ("vllm", "serve"),
    # SGLang's launcher (`python3 -m sglang.launch_server --model-path <model> --port N`).
    "sglang": ("python3", "-m", "sglang.launch_server", "--model-path"),
}


@dataclass(frozen=True)
class ChildKey:
    """Identifies one rendered Deployment: the pool it serves and the accelerator it runs on."""

    pool: str
    accelerator: str


def pools_of(md: ModelDeployment) -> dict[str, PoolSpec]:
    """Pool name -> bounds, in a stable order (the spec validator guarantees the right set)."""
    pools = md.spec.pools
    candidates = {"unified": pools.unified, "prefill": pools.prefill, "decode": pools.decode}
    return {name: spec for name, spec in candidates.items() if spec is not None}


def deployment_name(md_name: str, key: ChildKey) -> str:
    return f"{md_name}-{key.pool}-{key.accelerator}"


def service_name(md_name: str, pool: str) -> str:
    return f"{md_name}-{pool}"


def kv_policy_name(md_name: str) -> str:
    return f"{md_name}-kv-policy"


def selector_labels(md_name: str, pool: str | None = None, accelerator: str | None = None) -> dict[str, str]:
    labels = {DEPLOYMENT_LABEL: md_name}
    if pool is not None:
        labels[POOL_LABEL] = pool
    if accelerator is not None:
        labels[ACCELERATOR_LABEL] = accelerator
    return labels


def label_selector(md_name: str) -> str:
    """The ``status.selector`` string for the /scale subresource."""
    return f"{DEPLOYMENT_LABEL}={md_name}"


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "tidal.dev/v1alpha1", "kind": kind, "name": name, "uid": uid,
        "controller": True, "blockOwnerDeletion": True,
    }


def _engine_args(md: ModelDeployment, pool: str, spec: PoolSpec) -> list[str]:
    engine = md.spec.engine
    args = [*ENGINE_COMMANDS[engine.metrics_dialect], md.spec.model.name, "--port", str(engine.port)]
    if spec.gpus_per_replica > 1:
        flag = "--tensor-parallel-size" if engine.metrics_dialect == "vllm" else "--tp-size"
        args += [flag, str(spec.gpus_per_replica)]
    if engine.metrics_dialect == "vllm":
        args += ["--max-model-len", str(md.spec.model.max_context_tokens)]
    else:
        args += ["--context-length", str(md.spec.model.max_context_tokens), "--enable-metrics"]
    return args + list(engine.args)


def _node_affinity(accelerator: AcceleratorClass) -> dict[str, Any] | None:
    selector = accelerator.spec.node_selector
    if not selector:
        return None
    expressions = [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(selector.items())]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": expressions}],
    }}}


def render_deployment(
    md: ModelDeployment, uid: str, key: ChildKey, accelerator: AcceleratorClass, replicas: int,
) -> dict[str, Any]:
    """One Deployment for (pool, accelerator) with ``replicas`` replicas."""
    name = md.metadata.name or ""
    spec = pools_of(md)[key.pool]
    engine = md.spec.engine
    labels = {**MANAGED_BY, **selector_labels(name, key.pool, key.accelerator)}
    gpus = {accelerator.spec.device_resource_name: str(spec.gpus_per_replica)}
    drain_s = parse_duration_s(engine.drain_timeout)
    container = {
        "name": "engine",
        "image": engine.image,
        "args": _engine_args(md, key.pool, spec),
        "ports": [{"name": "http", "containerPort": engine.port}],
        "env": [{"name": "TIDAL_POOL", "value": key.pool}],
        "resources": {"limits": gpus, "requests": gpus},
        "readinessProbe": {
            "httpGet": {"path": engine.readiness_path, "port": "http"},
            "periodSeconds": READINESS_PERIOD_S, "failureThreshold": READINESS_FAILURE_THRESHOLD,
        },
        "startupProbe": {
            "httpGet": {"path": engine.readiness_path, "port": "http"},
            "periodSeconds": STARTUP_PROBE_PERIOD_S,
            "failureThreshold": MAX_STARTUP_S // STARTUP_PROBE_PERIOD_S,
        },
        # Keep serving while endpoints drop this pod; the engine then finishes in-flight
        # requests on SIGTERM within the grace period below.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_DELAY_S}}},
    }
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": PRESTOP_DELAY_S + math.ceil(drain_s),
    }
    affinity = _node_affinity(accelerator)
    if affinity:
        pod_spec["affinity"] = affinity
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name, key),
            "namespace": md.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference("ModelDeployment", name, uid)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector_labels(name, key.pool, key.accelerator)},
            # Surge first so a rollout never drops below the serving capacity the SLO needs.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def render_service(md: ModelDeployment, uid: str, pool: str) -> dict[str, Any]:
    name = md.metadata.name or ""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name, pool),
            "namespace": md.metadata.namespace,
            "labels": {**MANAGED_BY, **selector_labels(name, pool)},
            "ownerReferences": [owner_reference("ModelDeployment", name, uid)],
        },
        "spec": {
            "selector": selector_labels(name, pool),
            "ports": [{"name": "http", "port": md.spec.engine.port, "targetPort": "http"}],
        },
    }


def render_kv_policy(md: ModelDeployment, uid: str, ttl_s: float | None) -> dict[str, Any]:
    """The KV-cache TTL for routers/engines to read; ``off`` when retention is disabled."""
    name = md.metadata.name or ""
    ttl = "off" if ttl_s is None else f"{ttl_s:g}"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": kv_policy_name(name),
            "namespace": md.metadata.namespace,
            "labels": {**MANAGED_BY, **selector_labels(name)},
            "ownerReferences": [owner_reference("ModelDeployment", name, uid)],
        },
        "data": {"ttlSeconds": ttl, "mode": md.spec.kv_cache.ttl},
    }


def render_children(
    md: ModelDeployment,
    uid: str,
    accelerators: Mapping[str, AcceleratorClass],
    replicas: Mapping[ChildKey, int],
    kv_ttl_s: float | None,
) -> list[dict[str, Any]]:
    """All children. Every allowed (pool, accelerator) gets a Deployment, with 0 replicas where
    placement put none, so moving replicas between classes is a replica change, not a create."""
    children: list[dict[str, Any]] = []
    for pool in pools_of(md):
        for acc_name in md.spec.placement.accelerator_classes:
            accelerator = accelerators.get(acc_name)
            if accelerator is None:
                continue  # reported by the controller as CapacityLimited; nothing to render
            key = ChildKey(pool, acc_name)
            children.append(render_deployment(md, uid, key, accelerator, replicas.get(key, 0)))
        children.append(render_service(md, uid, pool))
    children.append(render_kv_policy(md, uid, kv_ttl_s))
    return children


PRUNED_KINDS = ("Deployment", "Service")
"""Children that go away with a pool or an AcceleratorClass. The KV-policy ConfigMap always exists and
the state ConfigMap is not rendered, so ConfigMaps are never pruned."""


def stale_children(existing: Iterable[Mapping[str, Any]], rendered: Iterable[Mapping[str, Any]],
                   owner_uid: str) -> list[tuple[str, str]]:
    """(kind, name) of children this ModelDeployment controls that the current render no longer has:
    a pool that a mode change removed, or an AcceleratorClass dropped from spec.placement.
    Objects another controller owns (even with our labels) are never returned."""
    keep = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered}
    stale = []
    for obj in existing:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        if kind not in PRUNED_KINDS or (kind, meta.get("name")) in keep:
            continue
        owners = meta.get("ownerReferences") or meta.get("owner_references") or []
        if any((o.get("uid") == owner_uid and o.get("controller")) for o in owners):
            stale.append((kind, meta["name"]))
    return sorted(stale)
