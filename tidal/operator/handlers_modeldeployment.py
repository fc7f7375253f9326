"""kopf handlers for ModelDeployments, registered on an explicit registry (no global decorators).

Thin by design: each handler unpacks kopf's arguments and calls
:class:`tidal.operator.modeldeployment_controller.ModelDeploymentController`.

Indexes keep the tick free of API reads: kopf watches the child Deployments, the engine Pods and
the AcceleratorClasses once and keeps them in memory, so a tick of 1,000 workloads costs no lists.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import kopf

from tidal.controllers.fairsharepolicy import grants_from_status
from tidal.controllers.labels import DEPLOYMENT_LABEL
from tidal.controllers.modeldeployment_observe import summarize_deployment, summarize_pod
from tidal.operator.finalizers import is_deletion_event, mark_deleted, not_deleted, timers_need_no_finalizer
from tidal.operator.kube import KubeClients
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.modeldeployment_controller import ModelDeploymentController, _plain, accelerator_from_body
from tidal.operator.settings import OperatorSettings
from tidal.operator.workloads import StateStore, WorkloadCache

GROUP, VERSION, PLURAL = "tidal.dev", "v1alpha1", "modeldeployments"
log = logging.getLogger("tidal.operator.handlers")


def _values(index: Any, key: Any) -> list[Any]:
    """All values a kopf index holds under ``key`` (empty when none)."""
    try:
        return list(index[key])
    except KeyError:
        return []


class _ClassLookup(Mapping[str, Any]):
    """AcceleratorClass name -> parsed object, over the kopf index."""

    def __init__(self, index: Any) -> None:
        self._index = index

    def __getitem__(self, key: str) -> Any:
        values = _values(self._index, key)
        if not values:
            raise KeyError(key)
        return values[0]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, clients: KubeClients, *,
             metrics: OperatorMetrics | None = None, prometheus: Any | None = None) -> ModelDeploymentController:
    """Register every ModelDeployment handler on ``registry``; returns the controller (tests, bench)."""
    controller = ModelDeploymentController(
        settings, clients, metrics or OperatorMetrics(),
        WorkloadCache(StateStore(clients, settings.field_manager)), prometheus=prometheus,
    )
    has_label = {DEPLOYMENT_LABEL: kopf.PRESENT}

    @kopf.index("apps", "v1", "deployments", labels=has_label, registry=registry, id="tidal_md_deployments")
    def tidal_md_deployments(body: Any, **_: Any) -> Any:
        summary = summarize_deployment(_plain(body))
        return None if summary is None else {(summary.namespace, summary.workload): summary}

    @kopf.index("", "v1", "pods", labels=has_label, registry=registry, id="tidal_md_pods")
    def tidal_md_pods(body: Any, **_: Any) -> Any:
        summary = summarize_pod(_plain(body))
        return None if summary is None else {(summary.namespace, summary.workload): summary}

    @kopf.index(GROUP, VERSION, "acceleratorclasses", registry=registry, id="tidal_accelerator_classes")
    def tidal_accelerator_classes(body: Any, name: str, **_: Any) -> Any:
        parsed = accelerator_from_body(body)
        return None if parsed is None else {name: parsed}

    @kopf.index(GROUP, VERSION, "fairsharepolicies", registry=registry, id="tidal_fairshare_grants")
    def tidal_fairshare_grants(status: Any, **_: Any) -> Any:
        return grants_from_status(_plain(status)) or None

    retry = settings.retry_backoff_s

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, backoff=retry, id="tidal_md_reconcile")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, backoff=retry, id="tidal_md_reconcile")
    # field="spec": the children follow the spec only; the activator's demand annotations are
    # handled by tidal_md_demand.
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, backoff=retry, id="tidal_md_reconcile",
                    field="spec")
    def tidal_md_reconcile(body: Any, patch: Any, status: Any, retry: int, **_: Any) -> None:
        controller.reconcile(body, patch, _plain(status), retry)

    @kopf.on.timer(GROUP, VERSION, PLURAL, interval=settings.interval_s, registry=registry,
                   backoff=settings.interval_s, id="tidal_md_tick", when=not_deleted)
    def tidal_md_tick(body: Any, patch: Any, status: Any, namespace: str, name: str,
                      tidal_md_deployments: Any, tidal_md_pods: Any, tidal_accelerator_classes: Any,
                      tidal_fairshare_grants: Any, **_: Any) -> None:
        key = (namespace, name)
        grants = _values(tidal_fairshare_grants, key)
        controller.tick(body, patch, _plain(status), _ClassLookup(tidal_accelerator_classes),
                        _values(tidal_md_deployments, key), _values(tidal_md_pods, key),
                        grant_gpus=min(grants) if grants else None)

    if settings.activator_service is not None:

        @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="tidal_md_demand",
                        field="metadata.annotations", when=not_deleted)
        def tidal_md_demand(body: Any, patch: Any, status: Any, namespace: str, name: str,
                            tidal_md_deployments: Any, tidal_md_pods: Any, tidal_accelerator_classes: Any,
                            tidal_fairshare_grants: Any, **_: Any) -> None:
            """The activator holds requests for an entry at zero: decide now, not at the next tick
            (the same tick, so the same decision: the core wakes the pools on the entry's demand)."""
            key = (namespace, name)
            deployments = _values(tidal_md_deployments, key)
            if not controller.wake_now(body, deployments):
                return
            grants = _values(tidal_fairshare_grants, key)
            controller.tick(body, patch, _plain(status), _ClassLookup(tidal_accelerator_classes), deployments,
                            _values(tidal_md_pods, key), grant_gpus=min(grants) if grants else None)

    # Only DELETED events reach this handler (kopf logs every handler call at INFO, so an unfiltered
    # one logged a line per watch event of every live object); it stops the object's tick timer.
    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="tidal_md_deleted", when=is_deletion_event)
    def tidal_md_deleted(namespace: str, name: str, memo: Any, **_: Any) -> None:
        mark_deleted(memo)
        controller.forget(namespace, name)
        log.debug("forgot deleted ModelDeployment %s/%s", namespace, name)

    timers_need_no_finalizer(registry, ["tidal_md_tick"])
    return controller
