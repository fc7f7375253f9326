"""The activator's Kubernetes adapters: ready endpoints from Pods, demand as an annotation.

The synchronous kubernetes client runs in worker threads (``asyncio.to_thread``), as in the
operator. What the activator may do is exactly the chart's activator Role: get Services, list Pods,
patch ServerlessFunctions and ModelDeployments (charts/tidal/templates/activator.yaml).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tidal.activator.demand import DemandReport, annotation_key
from tidal.activator.queueing import WorkloadRef
from tidal.controllers.labels import COMPONENT_LABEL, DEPLOYMENT_LABEL, FUNCTION_LABEL, POOL_LABEL, ROUTER_LABEL

GROUP, VERSION, FUNCTIONS = "tidal.dev", "v1alpha1", "serverlessfunctions"
MODEL_DEPLOYMENTS = "modeldeployments"
FUNCTION_PORT_NAME = "http"
"""The container port every workload pod tidal renders names ``http``: function instances
(tidal/controllers/serverlessfunction.py), engines (modeldeployment.py) and the P/D router."""
REQUEST_TIMEOUT_S = 5.0
"""Per API call (tidal's choice): half the operator's 10 s, since held requests wait on it."""


def pod_endpoint(pod: Any) -> str | None:
    """``http://<pod IP>:<port named http>`` of a Ready, not terminating Pod, else None."""
    if pod.metadata.deletion_timestamp is not None or pod.status is None or not pod.status.pod_ip:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    if not ready:
        return None
    for container in pod.spec.containers or []:
        for port in container.ports or []:
            if port.name == FUNCTION_PORT_NAME:
                host = pod.status.pod_ip
                if ipaddress.ip_address(host).version == 6:
                    host = f"[{host}]"
                return f"http://{host}:{port.container_port}"
    return None


@dataclass(frozen=True)
class Target:
    """The workload behind a Service the activator fronts, and how to find its ready endpoints."""

    plural: str
    """``serverlessfunctions`` or ``modeldeployments``: where the demand annotation goes."""
    name: str
    endpoints_selector: str
    """Label selector of the pods that serve the Service (function instances, unified engines or
    the P/D router)."""
    also_ready: tuple[str, ...] = ()
    """Selectors that must each match a Ready pod before any endpoint counts (P/D: a prefill and a
    decode replica behind the router, docs/activator.md)."""


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def target_of(service: Any) -> Target | None:
    """The workload a Service tidal rendered fronts: a ServerlessFunction's Service (label
    ``tidal.dev/function``) or a ModelDeployment's entry Service (``tidal.dev/deployment`` and
    ``tidal.dev/component: entry``; its selector tells unified engines from the P/D router)."""
    labels = service.metadata.labels or {}
    function = labels.get(FUNCTION_LABEL)
    if function:
        return Target(FUNCTIONS, function, f"{FUNCTION_LABEL}={function}")
    md = labels.get(DEPLOYMENT_LABEL)
    if md and labels.get(COMPONENT_LABEL) == "entry":
        selector = dict((service.spec and service.spec.selector) or {})
        if not selector:
            return None
        if ROUTER_LABEL in selector:
            return Target(MODEL_DEPLOYMENTS, md, _selector(selector), (
                _selector({DEPLOYMENT_LABEL: md, POOL_LABEL: "prefill"}),
                _selector({DEPLOYMENT_LABEL: md, POOL_LABEL: "decode"})))
        return Target(MODEL_DEPLOYMENTS, md, _selector(selector))
    return None


class KubeBackends:
    """Ready endpoints of the workload behind a Service: the Service's labels name the workload
    (``target_of``), and its Ready Pods are listed by label. The Service-to-workload map is cached:
    the labels never change for a Service tidal renders."""

    def __init__(self, api: k8s.ApiClient, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._core = k8s.CoreV1Api(api)
        self._timeout_s = request_timeout_s
        self._targets: dict[WorkloadRef, Target] = {}

    def target(self, ref: WorkloadRef) -> Target:
        cached = self._targets.get(ref)
        if cached is not None:
            return cached
        try:
            service = self._core.read_namespaced_service(ref.service, ref.namespace,
                                                         _request_timeout=self._timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                raise LookupError(f"no Service {ref}") from exc
            raise
        target = target_of(service)
        if target is None:
            raise LookupError(f"Service {ref} is neither a tidal function's ({FUNCTION_LABEL}) nor a "
                              f"ModelDeployment's entry ({DEPLOYMENT_LABEL}, {COMPONENT_LABEL}=entry)")
        self._targets[ref] = target
        return target

    def function_of(self, ref: WorkloadRef) -> str:
        """The name of the workload behind the Service (kept for callers of the function-only API)."""
        return self.target(ref).name

    def _ready_pods(self, namespace: str, selector: str) -> list[str]:
        pods = self._core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=self._timeout_s)
        return [e for e in map(pod_endpoint, pods.items) if e]

    def _ready(self, ref: WorkloadRef) -> tuple[str, ...]:
        target = self.target(ref)
        for selector in target.also_ready:
            if not self._ready_pods(ref.namespace, selector):
                return ()
        return tuple(sorted(self._ready_pods(ref.namespace, target.endpoints_selector)))

    async def ready_endpoints(self, workload: WorkloadRef) -> tuple[str, ...]:
        return await asyncio.to_thread(self._ready, workload)


SOURCE_NAMESPACE_TTL_S = 10.0
"""How long the namespace of a client pod IP is remembered (tidal's choice): a pod IP is reused only
after its pod is gone, and a bare-Host client sends many requests."""


class KubeSourceNamespaces:
    """The namespace of the client pod a request comes from, by its IP (the field selector
    ``status.podIP``, cluster-wide, which the cluster-wide activator ClusterRole's ``list pods``
    allows; with ``watchNamespaces`` the list is refused and bare Hosts get 404). Host-network
    pods share their node's IP and are no answer; neither is an IP two pods claim."""

    def __init__(self, api: k8s.ApiClient, request_timeout_s: float = REQUEST_TIMEOUT_S,
                 ttl_s: float = SOURCE_NAMESPACE_TTL_S, clock: Any = None) -> None:
        import time

        self._core = k8s.CoreV1Api(api)
        self._timeout_s = request_timeout_s
        self._ttl_s = ttl_s
        self._clock = clock or time.monotonic
        self._cache: dict[str, tuple[float, str | None]] = {}

    def _lookup(self, address: str) -> str | None:
        cached = self._cache.get(address)
        if cached is not None and self._clock() - cached[0] < self._ttl_s:
            return cached[1]
        try:
            pods = self._core.list_pod_for_all_namespaces(field_selector=f"status.podIP={address}",
                                                          _request_timeout=self._timeout_s).items
        except ApiException as exc:
            if exc.status == 403:
                return None  # a namespaced install: no cluster-wide pod list
            raise
        namespaces = {p.metadata.namespace for p in pods
                      if not (p.spec and p.spec.host_network)
                      and (p.status is None or p.status.phase not in ("Succeeded", "Failed"))}
        found = namespaces.pop() if len(namespaces) == 1 else None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[address] = (self._clock(), found)
        return found

    async def namespace_of(self, address: str) -> str | None:
        return await asyncio.to_thread(self._lookup, address)


class KubeDemandSink:
    """Demand as the annotation ``demand.activator.tidal.dev/<replica>`` on the workload (the
    ServerlessFunction or ModelDeployment; a JSON merge patch: this replica's key only)."""

    def __init__(self, api: k8s.ApiClient, backends: KubeBackends, replica: str,
                 request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._backends = backends
        self._key = annotation_key(replica)
        self._timeout_s = request_timeout_s

    def _patch(self, ref: WorkloadRef, report: DemandReport) -> None:
        target = self._backends.target(ref)
        self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, ref.namespace, target.plural, target.name,
            {"metadata": {"annotations": {self._key: report.to_json()}}},
            _request_timeout=self._timeout_s)

    async def signal(self, workload: WorkloadRef, report: DemandReport) -> None:
        await asyncio.to_thread(self._patch, workload, report)
