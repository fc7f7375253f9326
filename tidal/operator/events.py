"""core/v1 Events posted by the operator's own loops (AcceleratorClass inventory, FairSharePolicy
allocation), which run outside kopf handlers, so ``kopf.event`` (bound to a handler's task) cannot
post them. Events about these cluster-scoped objects go to the operator's namespace, where kopf puts
its own (``KubeClients.namespace``; the chart's RBAC grants ``create`` on events there)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from tidal.controllers.conditions import rfc3339
from tidal.operator.kube import KubeClients

EVENT_SOURCE = "tidal"
"""``source.component`` and ``reportingComponent`` of the operator's events (kopf reports "kopf")."""
MAX_EVENT_MESSAGE = 1024
"""The API server rejects event messages above 1 KiB (events.k8s.io validation)."""


def post_event(clients: KubeClients, obj: Mapping[str, Any], event_type: str, reason: str, message: str,
               now: datetime) -> None:
    """Post one Event about ``obj`` (a raw object with apiVersion, kind and metadata)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or clients.namespace
    stamp = rfc3339(now)
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'tidal')}.", "namespace": namespace},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                           "name": meta.get("name"), "uid": meta.get("uid"),
                           **({"namespace": meta["namespace"]} if meta.get("namespace") else {})},
        "type": event_type,
        "reason": reason,
        "message": message[:MAX_EVENT_MESSAGE],
        "source": {"component": EVENT_SOURCE},
        "reportingComponent": EVENT_SOURCE,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    clients.core.create_namespaced_event(namespace, body, _request_timeout=clients.request_timeout_s)
