"""Per-object kopf timers without a finalizer on the object.

Why: kopf (1.45) marks every ``kopf.timer`` and ``kopf.daemon`` handler ``requires_finalizer=True``
(kopf ``on.py``; nolar/kopf#548, #833, #1001), so each ModelDeployment and ServerlessFunction would
carry ``tidal.dev/kopf-finalizer`` and ``kubectl delete`` would hang whenever the operator is not
running (uninstalled, crash-looping, scaled to zero). tidal needs no clean-up before an object goes:
its children (Deployments, Services, ConfigMaps) carry owner references and the garbage collector
removes them. kopf keeps the finalizer only to stop the object's timers: on an object without
finalizers the API server's ``DELETED`` event has no ``deletionTimestamp``, which is how kopf
notices a deletion, so the timer would keep ticking for a vanished object (nolar/kopf#390).

What replaces it, per object:

* an ``on.event`` handler filtered to ``DELETED`` events marks the object's kopf ``memo``
  (:func:`mark_deleted`); kopf runs watching handlers before it re-matches the object's timers;
* the timer's ``when=`` filter (:func:`not_deleted`) then no longer matches, and kopf stops the
  timer as it stops any timer whose filter stops matching;
* :func:`timers_need_no_finalizer` clears ``requires_finalizer`` on the registered timer handlers.
  kopf has no public option for it (nolar/kopf#1183 was closed unmerged), so this edits the
  registry's handler list; tests/operator/test_finalizers.py fails if a kopf upgrade changes that.

Objects that still carry the finalizer from an older tidal lose it on the first event the new
operator handles: kopf removes its finalizer when no handler requires one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

import kopf

DELETED_MEMO_KEY = "tidal_deleted"
"""Set in an object's kopf ``memo`` once its ``DELETED`` watch event arrived."""


def is_deletion_event(type: str, **_: Any) -> bool:  # noqa: A002 - kopf's argument name
    """``when=`` filter of the deletion watchers: only ``DELETED`` watch events."""
    return type == "DELETED"


def mark_deleted(memo: Any) -> None:
    """Record in the object's kopf memo that it is gone (its timers stop on this event)."""
    memo[DELETED_MEMO_KEY] = True


def not_deleted(memo: Any, **_: Any) -> bool:
    """``when=`` filter of the per-object timers: False once :func:`mark_deleted` ran."""
    return not memo.get(DELETED_MEMO_KEY, False)


def timers_need_no_finalizer(registry: kopf.OperatorRegistry, handler_ids: Collection[str]) -> None:
    """Let the timers ``handler_ids`` run without a finalizer on their objects.

    Raises ``LookupError`` when one of them is not registered (a renamed id must not silently bring
    the finalizer back)."""
    spawning = registry._spawning  # noqa: SLF001 - no public API; see the module docstring
    handlers = spawning._handlers  # noqa: SLF001
    missing = set(handler_ids)
    for index, handler in enumerate(handlers):
        if handler.id in missing:
            handlers[index] = dataclasses.replace(handler, requires_finalizer=False)
            missing.discard(handler.id)
    if missing:
        raise LookupError(f"no timer handler with id {sorted(missing)} in the registry")
