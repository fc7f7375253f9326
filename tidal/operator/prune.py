"""Delete the children a ModelDeployment no longer renders (a pool removed by a mode change, an
AcceleratorClass dropped from placement).

Why explicit pruning: server-side apply only adds and updates, and garbage collection only runs when
the owner goes away, so without this a unified Deployment would keep its GPUs after a switch to
disaggregated serving. Deleting a Deployment terminates its pods through their preStop drain and
grace period, like a scale-down. Only Deployments and Services are pruned (see
``tidal.controllers.modeldeployment.stale_children``).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

from kubernetes.client.rest import ApiException

from tidal.controllers.labels import DEPLOYMENT_LABEL
from tidal.controllers.modeldeployment import stale_children
from tidal.operator.kube import KubeClients, list_items

log = logging.getLogger(__name__)


def prune_children(clients: KubeClients, namespace: str, md_name: str, uid: str,
                   rendered: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Delete stale children; returns what was deleted. A child already gone is not an error."""
    selector = f"{DEPLOYMENT_LABEL}={md_name}"
    # Items of a typed list carry no kind; stale_children needs it.
    existing = (
        [{**d, "kind": "Deployment"} for d in list_items(clients.apps.list_namespaced_deployment, namespace,
                                                         label_selector=selector)]
        + [{**s, "kind": "Service"} for s in list_items(clients.core.list_namespaced_service, namespace,
                                                        label_selector=selector)]
    )
    deleted = []
    for kind, name in stale_children(existing, rendered, uid):
        delete = (clients.apps.delete_namespaced_deployment if kind == "Deployment"
                  else clients.core.delete_namespaced_service)
        try:
            delete(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
        log.info("%s/%s: deleted %s %s (no longer rendered)", namespace, md_name, kind, name)
        deleted.append((kind, name))
    return deleted
