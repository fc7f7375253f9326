"""Per-workload memory of the operator: the decision core's live state plus its persisted form.

One :class:`WorkloadRuntime` per ModelDeployment, created on the first tick after the operator starts and restored from the ConfigMap ``<name>-tidal-state`` (so a restart loses
nothing). The cache is owned by one operator instance (no module globals) and guarded by locks,
because kopf runs sync handlers of different objects in a thread pool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.rest import ApiException

from tidal.controllers.labels import DEPLOYMENT_LABEL, MANAGED_BY
from tidal.controllers.modeldeployment import owner_reference
from tidal.controllers.workload_state import (
    STATE_KEY,
    StateError,
    WorkloadState,
    decode_state,
    encode_state,
    state_configmap_name,
)
from tidal.core.state import CoreState
from tidal.operator.kube import KubeClients, apply_object

log = logging.getLogger("tidal.operator.workloads")


def digest(text: str) -> bytes:
    """What is kept of the last saved state: a hash, not the text (88 KB per workload with ``auto``)."""
    return hashlib.sha256(text.encode()).digest()


@dataclass
class WorkloadRuntime:
    """Live state of one workload. Callers hold ``lock`` while reading or changing it."""

    namespace: str
    name: str
    uid: str
    state: WorkloadState
    core: CoreState = field(default_factory=CoreState)
    """The decision core's live state (predictors, scale-down window), passed to and returned by
    ``decide_workload`` each tick."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    recent_applies: dict[Any, tuple[int, int, int]] = field(default_factory=dict)
    """child -> (replicas before, after, tick) of this operator's last replica writes, until the
    watch-fed index shows them (see ``modeldeployment_controller.settle_applies``)."""
    saved_digest: bytes | None = None
    saved_at: float = 0.0
    last_status: dict[str, Any] | None = None
    """The status last written (without its timestamps), to skip identical patches."""
    last_target_problem: str | None = None
    """The scale-target problem last announced by a Warning Event (target mode), so a problem that
    persists is announced once, not every tick."""
    routed: Any = None
    """The entry's routing through the activator as this operator last applied it: ``None``
    (unknown, e.g. after a restart), ``False`` (not routed) or the activator's addresses."""
    resumed: bool = False
    """Restored from a state ConfigMap and not ticked since: the first tick resumes the windows
    (``tidal.policies.utilization.resume_window``) so a restart never shortens them."""

    def snapshot(self) -> WorkloadState:
        """The state to persist. The predictors' serialised form is built here and not kept: the
        live objects are authoritative, and keeping both doubled the memory per workload."""
        parts = self.core.to_parts()
        return dataclasses.replace(self.state, forecaster=parts["forecaster"], cold_start=parts["coldStart"],
                                   counted_pods=parts["countedPods"], policy=parts["policy"])


class StateStore:
    """Reads and writes the state ConfigMaps (get; server-side apply)."""

    def __init__(self, clients: KubeClients, field_manager: str) -> None:
        self.clients = clients
        self.field_manager = field_manager

    def load(self, namespace: str, name: str, uid: str | None = None) -> WorkloadState | None:
        """The stored state, or None when there is none, it is unreadable (logged; start fresh), or
        it belongs to an earlier object of the same name (deleted and re-created before the garbage
        collector removed its state)."""
        try:
            cm = self.clients.core.read_namespaced_config_map(
                state_configmap_name(name), namespace, _request_timeout=self.clients.request_timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        owners = {ref.uid for ref in (cm.metadata.owner_references or [])}
        if uid is not None and uid not in owners:
            log.info("%s/%s: stored state belongs to an earlier object (owners %s); starting fresh",
                     namespace, name, sorted(owners))
            return None
        text = (cm.data or {}).get(STATE_KEY)
        if not text:
            return None
        try:
            return decode_state(text)
        except StateError as exc:
            log.warning("%s/%s: ignoring stored state (%s); starting fresh", namespace, name, exc)
            return None

    def save(self, namespace: str, name: str, uid: str, text: str) -> None:
        apply_object(self.clients, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": state_configmap_name(name), "namespace": namespace,
                "labels": {**MANAGED_BY, DEPLOYMENT_LABEL: name},
                "ownerReferences": [owner_reference("ModelDeployment", name, uid)],
            },
            "data": {STATE_KEY: text},
        }, field_manager=self.field_manager)


class WorkloadCache:
    """All runtimes of one operator, keyed by (namespace, name)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._runtimes: dict[tuple[str, str], WorkloadRuntime] = {}
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def get(self, namespace: str, name: str, uid: str) -> WorkloadRuntime:
        """The runtime, restoring it from the state ConfigMap on first use (API errors propagate)."""
        key = (namespace, name)
        with self._lock:
            rt = self._runtimes.get(key)
            if rt is not None and rt.uid == uid:
                return rt
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                rt = self._runtimes.get(key)
                if rt is not None and rt.uid == uid:
                    return rt
            stored = self.store.load(namespace, name, uid)
            rt = WorkloadRuntime(namespace, name, uid, stored or WorkloadState())
            if stored is not None:
                rt.resumed = True
                rt.saved_digest = digest(encode_state(stored))
                rt.saved_at = time.monotonic()
                rt.core, problems = CoreState.from_parts(stored.forecaster, stored.cold_start, stored.counted_pods,
                                                         stored.policy)
                for problem in problems:
                    log.warning("%s/%s: %s", namespace, name, problem)
                # now held by the live core state
                stored.forecaster = stored.cold_start = stored.policy = None
                stored.counted_pods = []
            with self._lock:
                self._runtimes[key] = rt
            return rt

    def peek(self, namespace: str, name: str) -> WorkloadRuntime | None:
        """The runtime if it is loaded (no API call)."""
        with self._lock:
            return self._runtimes.get((namespace, name))

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._runtimes.pop((namespace, name), None)
            self._loading.pop((namespace, name), None)

    def save(self, rt: WorkloadRuntime, *, urgent: bool, min_interval_s: float) -> bool:
        """Persist when the state changed and it is urgent or the last save is old enough."""
        if not urgent and time.monotonic() - rt.saved_at < min_interval_s:
            return False
        text = encode_state(rt.snapshot())
        hashed = digest(text)
        if hashed == rt.saved_digest:
            return False
        self.store.save(rt.namespace, rt.name, rt.uid, text)
        rt.saved_digest = hashed
        rt.saved_at = time.monotonic()
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._runtimes)
