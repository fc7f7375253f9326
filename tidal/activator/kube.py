"""The activator's Kubernetes adapters: ready endpoints from Pods, demand as an annotation.

The synchronous kubernetes client runs in worker threads (``asyncio.to_thread``), as in the
operator. What the activator may do is exactly the chart's activator Role: get Services, list Pods,
patch ServerlessFunctions (charts/tidal/templates/activator-rbac.yaml).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tidal.activator.demand import DemandReport, annotation_key
from tidal.activator.queueing import WorkloadRef
from tidal.controllers.labels import FUNCTION_LABEL

GROUP, VERSION, FUNCTIONS = "tidal.dev", "v1alpha1", "serverlessfunctions"
FUNCTION_PORT_NAME = "http"
"""The container port the ServerlessFunction Deployment names (tidal/controllers/serverlessfunction.py)."""
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


class KubeBackends:
    """Ready endpoints of the function behind a Service: the Service's ``tidal.dev/function``
    label names the function (its Service name may differ, ``service_name``), and the function's
    Ready Pods are listed by that label. The Service-to-function map is cached: the label never
    changes for a Service tidal renders."""

    def __init__(self, api: k8s.ApiClient, request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._core = k8s.CoreV1Api(api)
        self._timeout_s = request_timeout_s
        self._functions: dict[WorkloadRef, str] = {}

    def function_of(self, ref: WorkloadRef) -> str:
        cached = self._functions.get(ref)
        if cached is not None:
            return cached
        try:
            service = self._core.read_namespaced_service(ref.service, ref.namespace,
                                                         _request_timeout=self._timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                raise LookupError(f"no Service {ref}") from exc
            raise
        function = (service.metadata.labels or {}).get(FUNCTION_LABEL)
        if not function:
            raise LookupError(f"Service {ref} has no {FUNCTION_LABEL} label: not a tidal function")
        self._functions[ref] = function
        return function

    def _ready(self, ref: WorkloadRef) -> tuple[str, ...]:
        function = self.function_of(ref)
        pods = self._core.list_namespaced_pod(ref.namespace, label_selector=f"{FUNCTION_LABEL}={function}",
                                              _request_timeout=self._timeout_s)
        return tuple(sorted(e for e in map(pod_endpoint, pods.items) if e))

    async def ready_endpoints(self, workload: WorkloadRef) -> tuple[str, ...]:
        return await asyncio.to_thread(self._ready, workload)


class KubeDemandSink:
    """Demand as the annotation ``demand.activator.tidal.dev/<replica>`` on the ServerlessFunction
    (a JSON merge patch: this replica's key only)."""

    def __init__(self, api: k8s.ApiClient, backends: KubeBackends, replica: str,
                 request_timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._backends = backends
        self._key = annotation_key(replica)
        self._timeout_s = request_timeout_s

    def _patch(self, ref: WorkloadRef, report: DemandReport) -> None:
        function = self._backends.function_of(ref)
        self._custom.patch_namespaced_custom_object(
            GROUP, VERSION, ref.namespace, FUNCTIONS, function,
            {"metadata": {"annotations": {self._key: report.to_json()}}},
            _request_timeout=self._timeout_s)

    async def signal(self, workload: WorkloadRef, report: DemandReport) -> None:
        await asyncio.to_thread(self._patch, workload, report)
