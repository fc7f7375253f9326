"""The Kubernetes objects of a disaggregated ModelDeployment's router: its Deployment, the identity it
watches engine pods with (ServiceAccount, Role, RoleBinding), and the entry Service clients use in
both modes. Pure: the operator applies what this returns (tidal/controllers/modeldeployment.py
collects it with the engine children)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.disaggregation import NAMESPACE_ENV, ROUTER_METRICS_PORT, ROUTERS, router_args
from tidal.controllers.labels import COMPONENT_LABEL, DEPLOYMENT_LABEL, MANAGED_BY, POOL_LABEL, ROUTER_LABEL

ROUTER_COMPONENT = "router"
ROUTER_REPLICAS = 2
"""Two routers so a router restart or node drain never cuts the entry; each keeps its own approximate
prefix tree, which costs some cache-aware hits, never correctness."""
ROUTER_RESOURCES: Mapping[str, Any] = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}}
"""A Rust async proxy: half a core and 512 MiB carry thousands of streams; the memory limit bounds the
cache-aware prefix tree (``--max-tree-size``) instead of letting it grow into the node."""
ROUTER_PROBE_PERIOD_S = 5
ROUTER_STARTUP_FAILURES = 60
"""The router answers /liveness within seconds; readiness waits for a prefill and a decode worker,
which can take as long as loading the weights, so only the readiness probe depends on them."""
POD_READ_VERBS = ("get", "list", "watch")
"""What both routers' service discovery needs on pods (their Kubernetes guides: get, list, watch)."""


def router_name(md_name: str) -> str:
    return f"{md_name}-router"


def entry_service_name(md_name: str) -> str:
    """The Service clients use, in both modes: the ModelDeployment's own name."""
    return md_name


def router_selector(md_name: str) -> dict[str, str]:
    """The router pods' labels: not the engines' tidal.dev/deployment, so the ModelDeployment's /scale
    selector and the engine pod index never count them."""
    return {ROUTER_LABEL: md_name}


def router_object_labels(md_name: str) -> dict[str, str]:
    """Labels of the router's objects: listed (and pruned) with the ModelDeployment's other children."""
    return {DEPLOYMENT_LABEL: md_name, COMPONENT_LABEL: ROUTER_COMPONENT}


def _metadata(md: ModelDeployment, name: str, labels: Mapping[str, str],
              owner: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    return {"name": name, "namespace": md.metadata.namespace, "labels": {**MANAGED_BY, **labels},
            "ownerReferences": [owner()]}


def render_router(md: ModelDeployment, owner: Callable[[], dict[str, Any]], grace_period_s: int,
                  prestop_delay_s: int, container_security: Mapping[str, Any],
                  pod_security: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding and Deployment of the router in front of the prefill and
    decode pools. The router outlives its in-flight streams on scale-down or rollout like an engine
    does (preStop delay, then SIGTERM, bounded by the same grace period)."""
    name = md.metadata.name or ""
    cli = ROUTERS[md.spec.engine.metrics_dialect]
    port = md.spec.engine.port
    selector = router_selector(name)
    labels = router_object_labels(name)
    args = router_args(cli, port=port, engine_port=port,
                       prefill_selector={DEPLOYMENT_LABEL: name, POOL_LABEL: "prefill"},
                       decode_selector={DEPLOYMENT_LABEL: name, POOL_LABEL: "decode"})
    rname = router_name(name)
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(md, rname, labels, owner)}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _metadata(md, rname, labels, owner),
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": list(POD_READ_VERBS)}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": _metadata(md, rname, labels, owner),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": rname},
        "subjects": [{"kind": "ServiceAccount", "name": rname, "namespace": md.metadata.namespace or ""}],
    }
    if md.metadata.namespace is None:
        # Rendered without a namespace (tidal explain, examples): the subject's namespace is the one
        # the binding is applied in, which the operator always sets.
        del binding["subjects"][0]["namespace"]
    probe = lambda path, failures: {  # noqa: E731
        "httpGet": {"path": path, "port": "http"}, "periodSeconds": ROUTER_PROBE_PERIOD_S,
        "failureThreshold": failures, "timeoutSeconds": ROUTER_PROBE_PERIOD_S,
    }
    container = {
        "name": "router",
        "image": md.spec.disaggregation.router_image or cli.image,
        "command": list(cli.command),
        "args": args,
        "env": [{"name": NAMESPACE_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": ROUTER_METRICS_PORT, "protocol": "TCP"}],
        "resources": {k: dict(v) for k, v in ROUTER_RESOURCES.items()},
        "startupProbe": probe(cli.liveness_path, ROUTER_STARTUP_FAILURES),
        "livenessProbe": probe(cli.liveness_path, 3),
        "readinessProbe": probe(cli.readiness_path, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": prestop_delay_s}}},
        "securityContext": dict(container_security),
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(md, rname, labels, owner),
        "spec": {
            "replicas": ROUTER_REPLICAS,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {**MANAGED_BY, **selector}},
                "spec": {
                    "serviceAccountName": rname,
                    # Service discovery watches pods through the API: the one pod tidal renders that
                    # needs its token.
                    "automountServiceAccountToken": True,
                    "containers": [container],
                    "terminationGracePeriodSeconds": grace_period_s,
                    "securityContext": dict(pod_security),
                },
            },
        },
    }
    return [service_account, role, binding, deployment]


def render_entry_service(md: ModelDeployment, owner: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The Service clients use: the unified pool's engines, or the router of a disaggregated one."""
    name = md.metadata.name or ""
    if md.spec.mode == "disaggregated":
        selector = router_selector(name)
    else:
        selector = {DEPLOYMENT_LABEL: name, POOL_LABEL: "unified"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(md, entry_service_name(name), {DEPLOYMENT_LABEL: name, COMPONENT_LABEL: "entry"}, owner),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": md.spec.engine.port, "targetPort": "http"}],
        },
    }
