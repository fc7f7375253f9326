"""Target mode's I/O: read and write a pool's ``scaleTargetRef`` through its ``/scale`` subresource and
list its pods by the label selector ``/scale`` reports, as Kubernetes' HPA does for any scalable
resource (Deployment, StatefulSet, LeaderWorkerSet, a CRD with ``subresources.scale``).

Problems a user must fix (the kind is not served, the object is missing, it has no ``/scale``, its
``/scale`` reports no selector) raise :class:`ScaleTargetProblem` with a reason and a message naming
the pool, the target and the fix; API failures (403, timeouts) propagate as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

from tidal.api.modeldeployment import ScaleTargetRef
from tidal.operator.kube import KubeClients, list_items

REASON_NOT_FOUND = "ScaleTargetNotFound"
REASON_NOT_SCALABLE = "ScaleTargetNotScalable"
REASON_NO_SELECTOR = "ScaleTargetHasNoSelector"


class ScaleTargetProblem(Exception):
    """A scale target tidal cannot use; ``reason`` is the condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TargetScale:
    """What a target's ``/scale`` says: wanted and current replicas, and how to find its pods."""

    spec_replicas: int
    status_replicas: int
    selector: str


def describe(ref: ScaleTargetRef) -> str:
    return f"{ref.kind} {ref.name} ({ref.api_version})"


def _scale_resource(clients: KubeClients, pool: str, ref: ScaleTargetRef) -> Any:
    try:
        resource = clients.dynamic.resources.get(api_version=ref.api_version, kind=ref.kind)
    except ResourceNotFoundError:
        raise ScaleTargetProblem(REASON_NOT_FOUND, (
            f"pool {pool}: scaleTargetRef {describe(ref)}: the API server serves no kind {ref.kind} in "
            f"{ref.api_version}; check apiVersion and kind (is its CRD installed?)")) from None
    scale = (getattr(resource, "subresources", None) or {}).get("scale")
    if scale is None:
        raise ScaleTargetProblem(REASON_NOT_SCALABLE, (
            f"pool {pool}: scaleTargetRef {describe(ref)}: {ref.kind} has no /scale subresource, so tidal "
            "cannot set its replicas; point at a Deployment, StatefulSet, LeaderWorkerSet or a custom "
            "resource whose CRD declares subresources.scale"))
    return scale


def read_scale(clients: KubeClients, namespace: str, pool: str, ref: ScaleTargetRef) -> TargetScale:
    """The target's ``/scale``, or :class:`ScaleTargetProblem`."""
    scale = _scale_resource(clients, pool, ref)
    try:
        obj = clients.dynamic.get(scale, name=ref.name, namespace=namespace,
                                  _request_timeout=clients.request_timeout_s).to_dict()
    except NotFoundError:
        raise ScaleTargetProblem(REASON_NOT_FOUND, (
            f"pool {pool}: scaleTargetRef {describe(ref)} does not exist in namespace {namespace}; "
            "create it or fix the name")) from None
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = status.get("selector") or ""
    if not selector:
        raise ScaleTargetProblem(REASON_NO_SELECTOR, (
            f"pool {pool}: scaleTargetRef {describe(ref)}: its /scale reports no status.selector, so tidal "
            "cannot find its pods or their metrics; for a custom resource set subresources.scale."
            "labelSelectorPath in its CRD (and have its controller fill that field)"))
    return TargetScale(int(spec.get("replicas") or 0), int(status.get("replicas") or 0), selector)


def write_replicas(clients: KubeClients, namespace: str, pool: str, ref: ScaleTargetRef, replicas: int) -> None:
    """Set the target's ``spec.replicas`` through ``/scale`` (a merge patch, as ``kubectl scale``)."""
    scale = _scale_resource(clients, pool, ref)
    clients.dynamic.patch(scale, body={"spec": {"replicas": replicas}}, name=ref.name, namespace=namespace,
                          content_type="application/merge-patch+json", _request_timeout=clients.request_timeout_s)


def list_pods(clients: KubeClients, namespace: str, selector: str) -> list[dict[str, Any]]:
    """The target's pods: those matching the selector its ``/scale`` reports."""
    return list_items(clients.core.list_namespaced_pod, namespace, label_selector=selector,
                      _request_timeout=clients.request_timeout_s)
