"""Route a ServerlessFunction's Service to the activator while it has no ready instance.

How (Knative-style, by endpoints, not by selector): the function's Service keeps its selector,
and while the function has no ready instance tidal adds one EndpointSlice of its own to the
Service, ``<service>-activator``, listing the activator's pod addresses. kube-proxy (and every
other consumer of EndpointSlices) sends the Service's traffic to all ready endpoints of all its
slices, so with no ready instance every request goes to the activator; once an instance is ready
the EndpointSlice controller adds it to its own slice and tidal deletes the activator's.

Why not switch the selector: a Service's selector can only pick Pods in its own namespace, and
the activator runs in the operator's; and removing a selector makes the EndpointSlice controller
delete its slices (restoring it rebuilds them), so each switch would leave a moment with no
endpoints at all. With an extra slice, no switch ever leaves the Service without an endpoint.

Pure: the operator applies what this returns (server-side apply) and deletes the slice by name.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidal.api.serverlessfunction import ServerlessFunction, ServerlessFunctionSpec
from tidal.controllers.labels import MANAGED_BY
from tidal.controllers.modeldeployment import owner_reference
from tidal.controllers.serverlessfunction import KIND, function_labels, service_name

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
"""The label that ties an EndpointSlice to its Service (discovery.k8s.io/v1)."""
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "tidal.dev"
"""Any value but the EndpointSlice controller's (``endpointslice-controller.k8s.io``), so that
controller leaves the slice alone."""
SERVICE_PORT_NAME = "http"
"""The name of the function Service's port (``render_service``): a slice's port serves the
Service port of the same name."""


@dataclass(frozen=True)
class ActivatorEndpoints:
    """The activator's ready pod addresses and the port they serve proxied requests on."""

    addresses: tuple[str, ...]
    port: int


def routes_to_activator(ready_instances: int) -> bool:
    """The function's Service goes through the activator while no instance is ready (including
    while the first one starts: Knative keeps the activator in the path until a pod is ready)."""
    return ready_instances <= 0


def activator_slice_name(function: str) -> str:
    return f"{service_name(function)}-activator"


def wake_instances(spec: ServerlessFunctionSpec, held_requests: int) -> int:
    """Instances to start at once for requests held at zero: enough for the held requests at the
    function's concurrency target, at least one, within ``maxInstances`` (the keep-alive policy
    sizes the function from the next tick on)."""
    need = max(1, math.ceil(held_requests / spec.concurrency_target))
    return min(max(need, spec.min_instances), spec.max_instances)


def render_activator_slice(fn: ServerlessFunction, uid: str, endpoints: ActivatorEndpoints) -> dict[str, Any]:
    """The EndpointSlice that adds the activator to the function's Service."""
    name = fn.metadata.name or ""
    return render_service_activator_slice(
        namespace=fn.metadata.namespace, service=service_name(name), labels=function_labels(name),
        owner=owner_reference(KIND, name, uid), endpoints=endpoints)


def render_service_activator_slice(*, namespace: str | None, service: str, labels: dict[str, str],
                                   owner: dict[str, Any], endpoints: ActivatorEndpoints) -> dict[str, Any]:
    """The EndpointSlice ``<service>-activator`` that adds the activator's addresses to ``service``
    (port name ``http``, as every Service tidal renders for a workload names its port), owned by
    the workload so it goes away with it. Shared by ServerlessFunctions and ModelDeployments."""
    families = {ipaddress.ip_address(a).version for a in endpoints.addresses}
    if len(families) > 1:
        raise ValueError(f"activator addresses mix IPv4 and IPv6: {list(endpoints.addresses)}")
    address_type = "IPv6" if families == {6} else "IPv4"
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-activator",
            "namespace": namespace,
            "labels": {
                **MANAGED_BY,
                **labels,
                SERVICE_NAME_LABEL: service,
                SLICE_MANAGED_BY_LABEL: SLICE_MANAGER,
            },
            "ownerReferences": [owner],
        },
        "addressType": address_type,
        "endpoints": [
            {"addresses": [address], "conditions": {"ready": True}}
            for address in sorted(endpoints.addresses)
        ],
        "ports": [{"name": SERVICE_PORT_NAME, "port": endpoints.port, "protocol": "TCP"}],
    }


def activator_endpoints_from_slices(slices: Sequence[dict[str, Any]]) -> ActivatorEndpoints | None:
    """The ready addresses and port of the activator's own Service, from its EndpointSlices
    (``conditions.ready`` absent means ready, as the API documents); None when none is ready."""
    addresses: set[str] = set()
    port: int | None = None
    for item in slices:
        for endpoint in item.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True) is not False:
                addresses.update(endpoint.get("addresses") or [])
        for slice_port in item.get("ports") or []:
            if port is None and slice_port.get("port"):
                port = int(slice_port["port"])
    if not addresses or port is None:
        return None
    return ActivatorEndpoints(tuple(sorted(addresses)), port)
