"""FairSharePolicy allocation loop: every interval, gather capacity and demand, allocate, patch status.

A loop owned by the operator (started on start-up, cancelled on clean-up) for the same reason as
the AcceleratorClass inventory (see :mod:`tidal.operator.handlers_accelerators`): the operator may
only read ``fairsharepolicies`` and patch their ``/status``; a kopf timer would add finalizers.
Deficits carry over between ticks through ``status.tenants[].deficit``, so an operator restart
loses nothing.

Each tick lists Nodes and Pods (only when a policy measures capacity from nodes), AcceleratorClasses
and ModelDeployments (cluster-wide, or in the watched namespaces), and patches a policy's status
only when it changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from tidal.api.fairsharepolicy import FairSharePolicy
from tidal.controllers.conditions import set_condition
from tidal.controllers.fairsharepolicy import reconcile
from tidal.operator.handlers_accelerators import (
    GROUP,
    VERSION,
    Clock,
    accelerator_classes_by_name,
    invalid_spec_message,
    same_condition,
    list_accelerator_classes,
    list_nodes,
    list_pods,
    register_loop,
    utcnow,
)
from tidal.operator.events import post_event
from tidal.operator.kube import KubeClients, list_items
from tidal.operator.settings import OperatorSettings

PLURAL = "fairsharepolicies"
MODEL_DEPLOYMENTS = "modeldeployments"


def list_model_deployments(
    clients: KubeClients, settings: OperatorSettings
) -> list[dict[str, Any]]:
    if settings.cluster_wide:
        return list_items(
            clients.custom.list_cluster_custom_object, GROUP, VERSION, MODEL_DEPLOYMENTS
        )
    return [
        d
        for ns in settings.namespaces
        for d in list_items(
            clients.custom.list_namespaced_custom_object, GROUP, VERSION, ns, MODEL_DEPLOYMENTS
        )
    ]


def _needs_nodes(raw: Mapping[str, Any]) -> bool:
    capacity = (raw.get("spec") or {}).get("capacity") or {}
    return "nodeSelector" in capacity or "acceleratorClasses" in capacity


def fairshare_tick(
    clients: KubeClients,
    settings: OperatorSettings,
    now: datetime,
    logger: logging.Logger | logging.LoggerAdapter,
) -> int:
    """One pass over every FairSharePolicy; returns how many statuses were patched (synchronous)."""
    policies = list_items(clients.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
    if not policies:
        return 0
    measured = any(_needs_nodes(p) for p in policies)
    nodes = list_nodes(clients) if measured else []
    pods = list_pods(clients, settings) if measured else []
    accelerators = (
        accelerator_classes_by_name(list_accelerator_classes(clients)) if measured else {}
    )
    deployments = list_model_deployments(clients, settings)
    patched = 0
    for raw in policies:
        meta = raw.get("metadata") or {}
        name = meta["name"]
        previous = raw.get("status") or {}
        generation = meta.get("generation")
        try:
            policy = FairSharePolicy.model_validate({k: v for k, v in raw.items() if k != "status"})
        except ValidationError as exc:
            message = invalid_spec_message("no allocation", exc)
            if not same_condition(previous, "Degraded", "InvalidSpec", message):
                post_event(clients, raw, "Warning", "InvalidSpec", message, now)
            status: dict[str, Any] = {
                "observedGeneration": generation,
                "conditions": set_condition(
                    previous.get("conditions") or [],
                    "Degraded",
                    True,
                    "InvalidSpec",
                    message,
                    now,
                    generation,
                ),
            }
        else:
            allocation, status = reconcile(
                policy,
                generation=generation,
                nodes=nodes,
                pods=pods,
                accelerators=accelerators,
                deployments=deployments,
                previous=previous,
                now=now,
            )
            logger.debug(
                "FairSharePolicy %s: capacity %d, grants %s",
                name,
                allocation.capacity_gpus,
                {g.name: g.grant_gpus for g in allocation.grants},
            )
        if all(previous.get(k) == v for k, v in status.items()):
            continue
        clients.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": status}
        )
        patched += 1
    return patched


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    clients: KubeClients,
    *,
    clock: Clock = utcnow,
) -> None:
    """Register the FairSharePolicy allocation loop (interval: ``settings.interval_s``)."""

    async def tick(logger: logging.Logger) -> None:
        await asyncio.to_thread(fairshare_tick, clients, settings, clock(), logger)

    register_loop(registry, "fairshare", settings.interval_s, tick)
