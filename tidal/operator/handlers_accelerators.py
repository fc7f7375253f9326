"""AcceleratorClass inventory loop: every interval, list Nodes and Pods and patch each class's status.

Why a loop started at operator start-up and not a per-object ``kopf.timer``: kopf timers put a
finalizer on every object they run for, which needs ``patch`` on the main resource; the operator's
permissions on the cluster-scoped ``acceleratorclasses`` are ``get list watch`` plus ``patch`` on
``/status`` only (docs/configuration.md). One loop also lists Nodes and Pods once per tick for all
classes instead of once per class. The loop is started by a ``kopf.on.startup`` handler and
cancelled by ``kopf.on.cleanup``, so it lives exactly as long as the operator.

Limit: the loop does not pause while kopf peering pauses the operator; two overlapping operator
pods (during a rollout) both write the same inventory, which is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.validation import errors_from
from tidal.controllers.acceleratorclass import class_inventory, compute_status
from tidal.controllers.conditions import set_condition
from tidal.operator.events import post_event
from tidal.operator.kube import KubeClients, list_items
from tidal.operator.settings import OperatorSettings

GROUP, VERSION = "tidal.dev", "v1alpha1"
PLURAL = "acceleratorclasses"

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def list_nodes(clients: KubeClients) -> list[dict[str, Any]]:
    return list_items(clients.core.list_node)


def list_pods(clients: KubeClients, settings: OperatorSettings) -> list[dict[str, Any]]:
    """Pods that may hold devices: cluster-wide, or only the watched namespaces (the operator has no
    cluster-wide pod permission then, so ``used`` counts only those namespaces)."""
    if settings.cluster_wide:
        return list_items(clients.core.list_pod_for_all_namespaces)
    return [
        p for ns in settings.namespaces for p in list_items(clients.core.list_namespaced_pod, ns)
    ]


def list_accelerator_classes(clients: KubeClients) -> list[dict[str, Any]]:
    return list_items(clients.custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)


def parse_accelerator_class(raw: Mapping[str, Any]) -> AcceleratorClass:
    return AcceleratorClass.model_validate({k: v for k, v in raw.items() if k != "status"})


def accelerator_classes_by_name(raws: list[dict[str, Any]]) -> dict[str, AcceleratorClass]:
    """Valid classes by name (invalid ones are reported by the inventory loop, not here)."""
    out: dict[str, AcceleratorClass] = {}
    for raw in raws:
        try:
            out[str(raw["metadata"]["name"])] = parse_accelerator_class(raw)
        except (ValidationError, KeyError):
            continue
    return out


def inventory_tick(
    clients: KubeClients,
    settings: OperatorSettings,
    now: datetime,
    logger: logging.Logger | logging.LoggerAdapter,
) -> int:
    """One pass over every AcceleratorClass; returns how many statuses were patched (synchronous)."""
    classes = list_accelerator_classes(clients)
    if not classes:
        return 0
    nodes, pods = list_nodes(clients), list_pods(clients, settings)
    patched = 0
    for raw in classes:
        name = raw["metadata"]["name"]
        previous = raw.get("status") or {}
        try:
            accelerator = parse_accelerator_class(raw)
            status = compute_status(
                accelerator, class_inventory(accelerator, nodes, pods), previous, now
            )
        except ValidationError as exc:
            message = invalid_spec_message("inventory not computed", exc)
            if not same_condition(previous, "Available", "InvalidSpec", message):
                post_event(clients, raw, "Warning", "InvalidSpec", message, now)
            status = {
                "conditions": set_condition(
                    previous.get("conditions") or [],
                    "Available",
                    "Unknown",
                    "InvalidSpec",
                    message,
                    now,
                )
            }
        if _unchanged(previous, status):
            continue
        clients.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": status}
        )
        patched += 1
        logger.debug(
            "AcceleratorClass %s inventory: %s",
            name,
            {k: status.get(k) for k in ("nodes", "allocatable", "used", "free")},
        )
    return patched


def invalid_spec_message(consequence: str, exc: ValidationError) -> str:
    """Every error of an invalid spec with its field path (``spec.tenants[0].weight: ...``), so one
    reading of the condition or Event is enough to fix all of them."""
    errors = "; ".join(str(e) for e in errors_from(exc))
    return f"invalid spec, {consequence}: {errors} (fix the spec and apply it again)"


def same_condition(previous: Mapping[str, Any], kind: str, reason: str, message: str) -> bool:
    """Whether ``previous`` status already reports this condition with this reason and message (its
    Warning Event was posted then; post one per distinct problem, not one per tick)."""
    return any(
        c.get("type") == kind and c.get("reason") == reason and c.get("message") == message
        for c in previous.get("conditions") or []
    )


def _unchanged(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    return all(previous.get(k) == v for k, v in status.items())


async def run_every(
    interval_s: float, tick: Callable[[], Awaitable[Any]], logger: logging.Logger, what: str
) -> None:
    """Call ``tick`` every ``interval_s`` until cancelled; a failing tick is logged and retried next
    interval (the loop never dies on an API error)."""
    while True:
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad tick must not stop the loop
            logger.warning("%s tick failed: %s: %s", what, type(exc).__name__, exc)
        await asyncio.sleep(interval_s)


def register_loop(
    registry: kopf.OperatorRegistry,
    name: str,
    interval_s: float,
    tick: Callable[[logging.Logger], Awaitable[Any]],
) -> None:
    """A background loop owned by the operator: started on start-up, cancelled on clean-up."""
    tasks: dict[str, asyncio.Task[None]] = {}
    log = logging.getLogger(f"tidal.{name}")

    @kopf.on.startup(registry=registry, id=f"{name}-start")
    async def _start(**_: Any) -> None:
        tasks[name] = asyncio.create_task(
            run_every(interval_s, lambda: tick(log), log, name), name=f"tidal-{name}"
        )

    @kopf.on.cleanup(registry=registry, id=f"{name}-stop")
    async def _stop(**_: Any) -> None:
        task = tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    clients: KubeClients,
    *,
    clock: Clock = utcnow,
) -> None:
    """Register the AcceleratorClass inventory loop (interval: ``settings.interval_s``)."""

    async def tick(logger: logging.Logger) -> None:
        await asyncio.to_thread(inventory_tick, clients, settings, clock(), logger)

    register_loop(registry, "accelerator-inventory", settings.interval_s, tick)
