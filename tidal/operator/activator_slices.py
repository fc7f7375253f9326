"""The EndpointSlice I/O of routing a workload's Service through the activator, shared by the
ServerlessFunction handlers and the ModelDeployment controller (docs/activator.md)."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tidal.controllers.activator_routing import (
    SERVICE_NAME_LABEL,
    ActivatorEndpoints,
    activator_endpoints_from_slices,
)
from tidal.operator.kube import KubeClients


def read_activator_endpoints(clients: KubeClients, service: str) -> ActivatorEndpoints | None:
    """The activator's ready addresses from its Service's EndpointSlices (``namespace/name``)."""
    namespace, name = service.split("/", 1)
    slices = k8s.DiscoveryV1Api(clients.api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"{SERVICE_NAME_LABEL}={name}", _request_timeout=clients.request_timeout_s
    )
    return activator_endpoints_from_slices([clients.api.sanitize_for_serialization(s) for s in slices.items])


def delete_endpoint_slice(clients: KubeClients, namespace: str, name: str) -> bool:
    """Delete an activator EndpointSlice; False when there was none."""
    try:
        k8s.DiscoveryV1Api(clients.api).delete_namespaced_endpoint_slice(
            name, namespace, _request_timeout=clients.request_timeout_s
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
