"""Render the children of a ModelDeployment: a Deployment per pool per accelerator class, a Service
per pool, the entry Service, the KV-policy ConfigMap and, when disaggregated, the P/D router
(tidal/controllers/pd_router.py) with the engines' KV-transfer settings
(tidal/controllers/disaggregation.py). Pure: the operator applies what this returns with server-side
apply, so re-rendering the same inputs is a no-op (level-based, idempotent)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment, PoolSpec
from tidal.api.pod import SHM_VOLUME_NAME, PodSettings
from tidal.api.types import parse_duration_s
from tidal.controllers.disaggregation import RDMA_CAPABILITY, KvTransferPod, kv_transfer_pod
from tidal.controllers.engines import ENGINES, SHM_MOUNT_PATH, engine_args
from tidal.controllers.labels import ACCELERATOR_LABEL, DEPLOYMENT_LABEL, MANAGED_BY, POOL_LABEL
from tidal.controllers.pd_router import render_entry_service, render_router

MIN_KUBERNETES_VERSION = (1, 30)
"""Oldest Kubernetes the rendered pods run on: ``lifecycle.preStop.sleep`` is beta (on by default) from
1.30 (KEP-3960). An exec ``sleep`` would work earlier but needs a shell and coreutils in the image.
The chart's kubeVersion and docs/install.md state the same version (a test checks)."""

PRESTOP_DELAY_S = 5
"""Seconds a terminating replica keeps serving before it gets SIGTERM, so Service endpoints (and the
proxies that watch them) drop it first: the usual endpoint-propagation allowance for graceful Pod
shutdown, as llm-d's graceful-shutdown guide does for vLLM (preStop sleep, then SIGTERM, then drain).
Rendered as ``lifecycle.preStop.sleep`` (beta and on by default from Kubernetes 1.30, tidal's
minimum), which needs no shell in the image."""

READINESS_PERIOD_S = 5
READINESS_FAILURE_THRESHOLD = 3
PROBE_TIMEOUT_S = 5
"""Startup and readiness probes hit cheap endpoints, but a busy engine's event loop can answer late;
5 s (instead of Kubernetes' 1 s default) keeps a loaded replica from flapping out of the Service."""
LIVENESS_PERIOD_S = 30
LIVENESS_TIMEOUT_S = 25
"""SGLang's /health runs a one-token generation and waits up to 20 s for it
(SGLANG_HEALTH_CHECK_TIMEOUT's default), so the probe must wait longer than that."""
LIVENESS_FAILURE_THRESHOLD = 4
"""Two minutes of failed health checks before the kubelet restarts a hung engine."""
STARTUP_PROBE_PERIOD_S = 10
MAX_STARTUP_S = 1800
"""Loading 70B-class weights can take many minutes; the startup probe allows up to 30 minutes."""
SHM_SIZE = "8Gi"
"""Upper bound of the memory-backed /dev/shm (counted against the pod's memory); NCCL and PyTorch's
tensor-parallel workers need more than the runtime's 64 MiB default."""

CONTAINER_SECURITY_CONTEXT: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}
"""What both engines tolerate: they need no Linux capability and never gain privileges (GPU access
comes from the device plugin, shared memory from the /dev/shm volume)."""
POD_SECURITY_CONTEXT: Mapping[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}


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


def target_mode(md: ModelDeployment) -> bool:
    """Every pool names a ``scaleTargetRef`` (the spec allows all or none): tidal renders no pool."""
    return all(spec.scale_target_ref is not None for spec in pools_of(md).values())


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


def kv_transfer_of(md: ModelDeployment, pool: str) -> KvTransferPod | None:
    """The KV-transfer settings of a prefill or decode pod; None for a unified one."""
    if md.spec.mode != "disaggregated" or pool not in ("prefill", "decode"):
        return None
    return kv_transfer_pod(md.spec.engine.metrics_dialect, pool, md.spec.disaggregation.kv_transport)  # type: ignore[arg-type]


def exports_kv_residency(md: ModelDeployment) -> bool:
    """Whether the engine pods export the KV-block residency histograms ``kvCache.ttl: auto`` learns
    pauses from (docs/kv-ttl.md): vLLM pods of ``ttl: auto``; SGLang has no such metric. The
    simulator's engines report them exactly when this is true (tidal/sim/modeldeployment.py)."""
    return md.spec.kv_cache.ttl == "auto" and ENGINES[md.spec.engine.metrics_dialect].kv_residency_flags is not None


def _engine_args(md: ModelDeployment, spec: PoolSpec, kv: KvTransferPod | None) -> list[str]:
    engine = md.spec.engine
    rendered = engine_args(
        ENGINES[engine.metrics_dialect],
        model=md.spec.model.name,
        port=engine.port,
        dtype=md.spec.model.dtype,
        tensor_parallel=spec.gpus_per_replica,
        context_tokens=md.spec.model.max_context_tokens,
        shutdown_timeout_s=drain_seconds(md),
        kv_residency=exports_kv_residency(md),
    )
    return rendered + list(kv.args if kv else ()) + list(engine.args)


def drain_seconds(md: ModelDeployment) -> int:
    """Whole seconds a terminating replica may spend finishing in-flight requests."""
    return math.ceil(parse_duration_s(md.spec.engine.drain_timeout))


def _node_affinity_terms(accelerator: AcceleratorClass) -> list[dict[str, Any]]:
    selector = accelerator.spec.node_selector or {}
    return [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(selector.items())]


def _affinity(accelerator: AcceleratorClass, user: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The AcceleratorClass's node selector as required node affinity, combined with the user's
    affinity: each user-required node term is ANDed with the accelerator's expressions (terms are
    ORed, so appending a separate term would let the pod land on other accelerators)."""
    affinity = {k: v for k, v in (user or {}).items() if k != "nodeAffinity"}
    node = dict((user or {}).get("nodeAffinity") or {})
    expressions = _node_affinity_terms(accelerator)
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if expressions or required:
        user_terms = (required or {}).get("nodeSelectorTerms") or [{}]
        terms = []
        for term in user_terms:
            merged = dict(term)
            merged["matchExpressions"] = [*(term.get("matchExpressions") or []), *expressions]
            terms.append(merged)
        node["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": terms}
    if node:
        affinity["nodeAffinity"] = node
    return affinity or None


PACK_AFFINITY_WEIGHT = 100
"""Weight of ``placement.strategy: pack``'s preferred pod affinity: the highest the API allows
(1-100), so the scheduler's scoring favours a node that already runs a tidal engine over an empty one
unless other preferences outweigh it (Kubernetes docs, "Assigning Pods to Nodes", inter-pod affinity)."""
HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"
"""The well-known node label that makes each node its own topology domain."""


def _pack_affinity(affinity: dict[str, Any] | None) -> dict[str, Any]:
    """``affinity`` plus a preferred pod affinity to nodes already running tidal engine pods (any
    workload's): replicas fill nodes that are in use before empty ones, which leaves whole nodes free
    for multi-GPU replicas instead of one free GPU on each of several nodes. The user's pod affinity
    is kept; the term is appended to its preferred list."""
    out = dict(affinity or {})
    pod_affinity = dict(out.get("podAffinity") or {})
    preferred = list(pod_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or [])
    preferred.append({"weight": PACK_AFFINITY_WEIGHT, "podAffinityTerm": {
        "labelSelector": {"matchExpressions": [{"key": POOL_LABEL, "operator": "Exists"}]},
        "namespaceSelector": {}, "topologyKey": HOSTNAME_TOPOLOGY_KEY}})
    pod_affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    out["podAffinity"] = pod_affinity
    return out


def _merge_by(rendered: list[dict[str, Any]], user: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Strategic merge of two lists keyed by ``key``: user entries replace rendered ones with the
    same key, new ones are appended, order is rendered-first."""
    users = {u[key]: u for u in user}
    merged = [users.pop(r[key], r) for r in rendered]
    return merged + [u for u in user if u[key] in users]


def _dump(items: list[Any]) -> list[dict[str, Any]]:
    return [i.model_dump(by_alias=True, exclude_none=True) for i in items]


def _resources(devices: Mapping[str, str], pod: PodSettings) -> dict[str, Any]:
    requests, limits = dict(devices), dict(devices)
    if pod.resources is not None:
        if pod.resources.requests is not None:
            requests.update(pod.resources.requests.model_dump(exclude_none=True))
        if pod.resources.limits is not None:
            limits.update(pod.resources.limits.model_dump(exclude_none=True))
    return {"limits": limits, "requests": requests}


def _probe(path: str, period_s: int, failure_threshold: int, timeout_s: int = PROBE_TIMEOUT_S) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period_s, "failureThreshold": failure_threshold, "timeoutSeconds": timeout_s,
    }


def render_pod_template(md: ModelDeployment, key: ChildKey, accelerator: AcceleratorClass) -> dict[str, Any]:
    """The engine pod for (pool, accelerator): the engine's command line, probes on its health
    endpoints, /dev/shm, drain on termination and hardening, with ``spec.engine.pod`` merged over."""
    name = md.metadata.name or ""
    spec = pools_of(md)[key.pool]
    engine = md.spec.engine
    cli = ENGINES[engine.metrics_dialect]
    pod = engine.pod
    labels = {**pod.labels, **MANAGED_BY, **selector_labels(name, key.pool, key.accelerator)}
    devices = {accelerator.spec.device_resource_name: str(spec.gpus_per_replica)}
    kv = kv_transfer_of(md, key.pool)
    rdma = kv is not None and md.spec.disaggregation.kv_transport == "rdma"
    if rdma and md.spec.disaggregation.rdma_device_resource:
        devices[md.spec.disaggregation.rdma_device_resource] = "1"
    readiness_path = engine.readiness_path or cli.readiness_path
    security = dict(CONTAINER_SECURITY_CONTEXT)
    if rdma:
        security["capabilities"] = {**security["capabilities"], "add": [RDMA_CAPABILITY]}
    container: dict[str, Any] = {
        "name": "engine",
        "image": engine.image,
        "command": list(cli.command),
        "args": _engine_args(md, spec, kv),
        "ports": [{"name": "http", "containerPort": engine.port, "protocol": "TCP"}, *(kv.ports if kv else ())],
        "env": _merge_by([{"name": "TIDAL_POOL", "value": key.pool}, *(kv.env if kv else ())], _dump(pod.env), "name"),
        "resources": _resources(devices, pod),
        "volumeMounts": _merge_by([{"name": SHM_VOLUME_NAME, "mountPath": SHM_MOUNT_PATH}],
                                  _dump(pod.volume_mounts), "mountPath"),
        "startupProbe": _probe(cli.startup_path, STARTUP_PROBE_PERIOD_S, MAX_STARTUP_S // STARTUP_PROBE_PERIOD_S),
        "readinessProbe": _probe(readiness_path, READINESS_PERIOD_S, READINESS_FAILURE_THRESHOLD),
        "livenessProbe": _probe(cli.liveness_path, LIVENESS_PERIOD_S, LIVENESS_FAILURE_THRESHOLD, LIVENESS_TIMEOUT_S),
        # Keep serving while endpoints drop this pod; SIGTERM then starts the engine's drain
        # (vLLM --shutdown-timeout, SGLang's built-in wait), bounded by the grace period below.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_DELAY_S}}},
        "securityContext": security,
    }
    if pod.env_from:
        container["envFrom"] = _dump(pod.env_from)
    pod_security = dict(POD_SECURITY_CONTEXT)
    if pod.security_context is not None:
        pod_security.update(pod.security_context.model_dump(by_alias=True, exclude_none=True))
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": _merge_by([{"name": SHM_VOLUME_NAME, "emptyDir": {"medium": "Memory", "sizeLimit": SHM_SIZE}}],
                             _dump(pod.volumes), "name"),
        "terminationGracePeriodSeconds": PRESTOP_DELAY_S + drain_seconds(md),
        "automountServiceAccountToken": pod.automount_service_account_token,
        "securityContext": pod_security,
    }
    affinity = _affinity(accelerator, pod.affinity)
    if md.spec.placement.strategy == "pack":
        affinity = _pack_affinity(affinity)
    if affinity:
        pod_spec["affinity"] = affinity
    if pod.node_selector:
        pod_spec["nodeSelector"] = dict(sorted(pod.node_selector.items()))
    if pod.tolerations:
        pod_spec["tolerations"] = _dump(pod.tolerations)
    if pod.service_account_name:
        pod_spec["serviceAccountName"] = pod.service_account_name
    metadata: dict[str, Any] = {"labels": labels}
    annotations = {**(kv.annotations if kv else {}), **pod.annotations}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": pod_spec}


def render_deployment(
    md: ModelDeployment, uid: str, key: ChildKey, accelerator: AcceleratorClass, replicas: int,
) -> dict[str, Any]:
    """One Deployment for (pool, accelerator) with ``replicas`` replicas."""
    name = md.metadata.name or ""
    labels = {**MANAGED_BY, **selector_labels(name, key.pool, key.accelerator)}
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
            "template": render_pod_template(md, key, accelerator),
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
    placement put none, so moving replicas between classes is a replica change, not a create.
    In target mode (``scaleTargetRef`` on every pool) the workloads are someone else's: only the
    KV-policy ConfigMap is rendered."""
    children: list[dict[str, Any]] = []
    if target_mode(md):
        return [render_kv_policy(md, uid, kv_ttl_s)]
    for pool in pools_of(md):
        for acc_name in md.spec.placement.accelerator_classes:
            accelerator = accelerators.get(acc_name)
            if accelerator is None:
                continue  # reported by the controller as CapacityLimited; nothing to render
            key = ChildKey(pool, acc_name)
            children.append(render_deployment(md, uid, key, accelerator, replicas.get(key, 0)))
        children.append(render_service(md, uid, pool))
    owner = lambda: owner_reference("ModelDeployment", md.metadata.name or "", uid)  # noqa: E731
    children.append(render_entry_service(md, owner))
    if md.spec.mode == "disaggregated":
        children.extend(render_router(md, owner, grace_period_s=PRESTOP_DELAY_S + drain_seconds(md),
                                      prestop_delay_s=PRESTOP_DELAY_S, container_security=CONTAINER_SECURITY_CONTEXT,
                                      pod_security=POD_SECURITY_CONTEXT))
    children.append(render_kv_policy(md, uid, kv_ttl_s))
    return children


PRUNED_KINDS = ("Deployment", "Service")
"""Children that go away with a pool, an AcceleratorClass or the router (a switch to unified mode).
The KV-policy ConfigMap always exists and the state ConfigMap is not rendered, so ConfigMaps are never
pruned; the router's ServiceAccount, Role and RoleBinding (read access to the namespace's pods) stay
until the ModelDeployment is deleted."""


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


def taken_names(existing: Iterable[Mapping[str, Any]], rendered: Iterable[Mapping[str, Any]],
                owner_uid: str) -> list[tuple[str, str]]:
    """(kind, name) of rendered children whose name an object controlled by someone else already
    has. The entry Service is named after the ModelDeployment, so ``chat-decode`` collides with the
    decode pool's Service of a ModelDeployment ``chat`` in the same namespace; a server-side apply
    would take the object over, so the operator leaves these alone and reports them."""
    wanted = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered}
    taken = []
    for obj in existing:
        meta = obj.get("metadata") or {}
        key = (obj.get("kind"), meta.get("name"))
        if key not in wanted:
            continue
        owners = meta.get("ownerReferences") or meta.get("owner_references") or []
        if not any(o.get("uid") == owner_uid and o.get("controller") for o in owners):
            taken.append(key)
    return sorted(taken)  # type: ignore[arg-type]
