"""The object store: versioned objects, watch history, and the built-in controllers' effects.

Semantics follow kube-apiserver where clients can observe them:
- one global, monotonically increasing resourceVersion (strings on the wire);
- uid, creationTimestamp, generation (bumped only when something other than metadata and, with
  a status subresource, status changes);
- optimistic concurrency: a write carrying a stale metadata.resourceVersion is a 409 Conflict;
- finalizers: delete sets deletionTimestamp and keeps the object until its finalizers are empty;
- the controllers whose effects the API itself shows: garbage collection by ownerReferences
  (background, foreground, orphan), namespace termination, CRD establishment and cleanup.

Stored objects are never mutated in place (every write stores a fresh deep copy), so history
entries and watch events can share them safely. A lock makes the store usable from test threads
as well as from the server's event loop.
"""

from __future__ import annotations

import base64
import collections
import copy
import dataclasses
import datetime
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from tests.kubeapi import errors, fieldmanager, patches, validation
from tests.kubeapi.resources import NO_GENERATION_KINDS, Registry, ResourceType, from_crd
from tests.kubeapi.selectors import Filter

Obj = dict[str, Any]
ObjKey = tuple[str, str]  # (namespace or "", name)

# kube-apiserver's watch cache keeps a bounded window of events (default capacity 100 per resource,
# growing up to 100 * 1000 under load; see k8s.io/apiserver/pkg/storage/cacher). We keep one window
# for all resources; tests shrink it or call compact() to provoke "410 Gone".
DEFAULT_HISTORY_EVENTS = 10_000

# Namespaces every cluster has (kube-apiserver creates them at start-up).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

# RFC 1123 subdomain, as kube-apiserver validates object names (apimachinery validation).
_DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
FOREGROUND_FINALIZER = "foregroundDeletion"
ORPHAN_FINALIZER = "orphan"


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def format_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    resource_version: int
    key: tuple[str, str]  # (group, plural) of the object
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    old: Obj | None  # the previous state (for selector transitions), None for ADDED


class Subscriber:
    """A watcher's mailbox; ``deliver`` is called under the store lock, in commit order."""

    def __init__(self, key: tuple[str, str], deliver: Callable[[WatchEvent], None]) -> None:
        self.key = key
        self.deliver = deliver


class Store:
    def __init__(
        self,
        registry: Registry,
        *,
        history_events: int = DEFAULT_HISTORY_EVENTS,
        clock: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        self.registry = registry
        self._clock = clock
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str], dict[ObjKey, Obj]] = collections.defaultdict(dict)
        self._by_uid: dict[str, tuple[tuple[str, str], ObjKey]] = {}
        self._rv = 0
        self._history: collections.deque[WatchEvent] = collections.deque(maxlen=history_events)
        self._compacted_rv = 0  # events at or below this RV are gone from history
        self._subscribers: set[Subscriber] = set()
        for name in SYSTEM_NAMESPACES:
            self.create(self._type("", "namespaces"), None, {"metadata": {"name": name}}, "kube-apiserver")

    # --- reading -----------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        with self._lock:
            obj = self._objects[rtype.key].get((namespace or "", name))
            if obj is None:
                raise errors.not_found(rtype.group, rtype.plural, name)
            return obj

    def list(
        self,
        rtype: ResourceType,
        flt: Filter,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[Obj], str, str | None]:
        """Matching objects sorted by (namespace, name); returns (items, list RV, next token)."""
        with self._lock:
            start_after: ObjKey | None = None
            list_rv = str(self._rv)
            if continue_token:
                try:
                    state = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                    start_after, list_rv = (state["ns"], state["name"]), state["rv"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise errors.bad_request(f"invalid continue token: {exc}") from exc
            items = []
            for key in sorted(self._objects[rtype.key]):
                if start_after is not None and key <= start_after:
                    continue
                obj = self._objects[rtype.key][key]
                if flt.matches(obj):
                    items.append(obj)
            next_token = None
            if limit and len(items) > limit:
                items = items[:limit]
                last = items[-1]["metadata"]
                state = {"ns": last.get("namespace", ""), "name": last["name"], "rv": list_rv}
                next_token = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            return items, list_rv, next_token

    # --- watching ----------------------------------------------------------------------------

    def subscribe(
        self,
        key: tuple[str, str],
        since_rv: int | None,
        deliver: Callable[[WatchEvent], None],
    ) -> tuple[Subscriber, list[WatchEvent], list[Obj], int]:
        """Register a watcher atomically with its starting point.

        With ``since_rv`` None: returns the current objects (sent as synthetic ADDED events).
        Otherwise: returns the history after ``since_rv``, or raises 410 Gone if it is compacted.
        The last element is the store's resourceVersion at subscription time.
        """
        with self._lock:
            subscriber = Subscriber(key, deliver)
            if since_rv is None:
                snapshot = [self._objects[key][k] for k in sorted(self._objects[key])]
                self._subscribers.add(subscriber)
                return subscriber, [], snapshot, self._rv
            if since_rv < self._compacted_rv:
                raise errors.gone(
                    f"too old resource version: {since_rv} ({self._compacted_rv + 1})"
                )
            replay = [e for e in self._history if e.key == key and e.resource_version > since_rv]
            self._subscribers.add(subscriber)
            return subscriber, replay, [], self._rv

    @property
    def lock(self) -> threading.RLock:
        """Held while committing; watchers take it to read a consistent bookmark version."""
        return self._lock

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(subscriber)

    def compact(self) -> None:
        """Forget all watch history, as etcd compaction does: older RVs now get 410 Gone."""
        with self._lock:
            self._history.clear()
            self._compacted_rv = self._rv

    def _emit(self, key: tuple[str, str], event_type: str, obj: Obj, old: Obj | None) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].resource_version
        event = WatchEvent(int(obj["metadata"]["resourceVersion"]), key, event_type, obj, old)
        self._history.append(event)
        for subscriber in list(self._subscribers):
            if subscriber.key == key:
                subscriber.deliver(event)

    # --- writing -----------------------------------------------------------------------------

    def _type(self, group: str, plural: str) -> ResourceType:
        for rtype in self.registry.all():
            if rtype.key == (group, plural):
                return rtype
        raise errors.not_found(group, plural, "")

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _now(self) -> str:
        return format_time(self._clock())

    def _check_namespace(self, rtype: ResourceType, namespace: str | None, creating: bool) -> None:
        if not rtype.namespaced:
            return
        ns = self._objects[("", "namespaces")].get(("", namespace or ""))
        if ns is None:
            raise errors.not_found("", "namespaces", namespace or "")
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403, "Forbidden",
                f'{rtype.plural} is forbidden: unable to create new content in namespace '
                f'{namespace} because it is being terminated',
            )

    def _validate(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        """Default, prune and validate against the CRD schema; built-ins get the basic checks."""
        name = obj["metadata"].get("name", "")
        causes: list[tuple[str, str]] = []
        if not name:
            causes.append(("metadata.name", "Required value: name or generateName is required"))
        elif len(name) > 253 or not _DNS_SUBDOMAIN_RE.fullmatch(name):
            causes.append((
                "metadata.name",
                (
                    f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                    "case alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character"
                ),
            ))
        for field in ("labels", "annotations"):
            values = obj["metadata"].get(field) or {}
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                causes.append((f"metadata.{field}", "Invalid value: values must be strings"))
        if rtype.schema is not None and not causes:
            obj = copy.deepcopy(obj)
            validation.apply_defaults(obj, rtype.schema)
            envelope = {k: obj.pop(k) for k in ("apiVersion", "kind", "metadata") if k in obj}
            obj, _ = validation.prune(obj, rtype.schema)
            obj.update(envelope)
            causes += validation.schema_errors(obj, rtype.schema)
            if not causes:
                causes += validation.cel_errors(obj, old, rtype.schema)
        if rtype.kind == "CustomResourceDefinition" and not causes:
            causes += _crd_problems(obj)
        if causes:
            raise errors.invalid(rtype.kind, rtype.group, name, causes)
        return obj

    def _commit(self, rtype: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        key = (meta.get("namespace", ""), meta["name"])
        self._objects[rtype.key][key] = obj
        self._by_uid[meta["uid"]] = (rtype.key, key)
        if rtype.kind == "CustomResourceDefinition":
            self.registry.remove_crd(meta["name"])
            for served in from_crd(obj):
                self.registry.add(served)
        self._emit(rtype.key, "ADDED" if old is None else "MODIFIED", obj, old)
        return obj

    def _remove(self, rtype: ResourceType, obj: Obj) -> Obj:
        final = copy.deepcopy(obj)
        meta = final["metadata"]
        meta["resourceVersion"] = self._next_rv()
        key = (meta.get("namespace", ""), meta["name"])
        del self._objects[rtype.key][key]
        self._by_uid.pop(meta["uid"], None)
        self._emit(rtype.key, "DELETED", final, obj)
        self._on_removed(rtype, final)
        return final

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Obj,
        manager: str,
        *,
        dry_run: bool = False,
        applied: bool = False,
    ) -> Obj:
        with self._lock:
            obj = copy.deepcopy(body)
            obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
            meta = obj.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            if rtype.namespaced:
                if meta.get("namespace") not in (None, "", namespace):
                    raise errors.bad_request(
                        f"the namespace of the provided object ({meta['namespace']}) does not "
                        f"match the namespace sent on the request ({namespace})"
                    )
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
            self._check_namespace(rtype, namespace, creating=True)
            for server_field in ("uid", "resourceVersion", "deletionTimestamp", "generation",
                                 "creationTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(server_field, None)
            if rtype.has_status and not applied and rtype.kind != "Namespace":
                # Like kube-apiserver, status sent on create is dropped when status is a
                # subresource (kept for built-ins whose strategies keep it, e.g. Pod is reset too).
                obj.pop("status", None)
            obj = self._validate(rtype, obj, None)
            meta = obj["metadata"]
            if (meta.get("namespace", ""), meta["name"]) in self._objects[rtype.key]:
                raise errors.already_exists(rtype.group, rtype.plural, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = self._now()
            if rtype.kind not in NO_GENERATION_KINDS:
                meta["generation"] = 1
            self._controller_defaults(rtype, obj)
            if not applied:
                fieldmanager.record_update(None, obj, manager, "", rtype.api_version, self._now())
            if dry_run:
                return obj
            committed = self._commit(rtype, obj, None)
            self._after_write(rtype, committed)
            return committed

    def _controller_defaults(self, rtype: ResourceType, obj: Obj) -> None:
        """What kube-apiserver's strategies and fast controllers set right at creation."""
        if rtype.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rtype.kind == "CustomResourceDefinition":
            finalizers = obj["metadata"].setdefault("finalizers", [])
            if CRD_CLEANUP_FINALIZER not in finalizers:
                finalizers.append(CRD_CLEANUP_FINALIZER)
            names = obj["spec"]["names"]
            names.setdefault("singular", names["kind"].lower())
            names.setdefault("listKind", names["kind"] + "List")
            storage = [v["name"] for v in obj["spec"]["versions"] if v.get("storage")]
            now = self._now()
            obj["status"] = {
                "acceptedNames": copy.deepcopy(names),
                "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now},
                ],
            }
        elif rtype.kind == "Deployment":
            obj.setdefault("status", {})
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            )
        elif rtype.kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        elif rtype.kind == "Pod":
            obj["status"] = obj.get("status") or {"phase": "Pending"}

    def _generation_relevant(self, rtype: ResourceType, obj: Obj) -> Obj:
        skip = {"metadata"} | ({"status"} if rtype.has_status else set())
        return {k: v for k, v in obj.items() if k not in skip}

    def _write(
        self,
        rtype: ResourceType,
        current: Obj,
        new: Obj,
        subresource: str,
        manager: str,
        *,
        dry_run: bool,
        applied: bool = False,
    ) -> Obj:
        """Shared tail of update and patch: preconditions, subresource rules, generation, commit."""
        meta, old_meta = new.setdefault("metadata", {}), current["metadata"]
        name = old_meta["name"]
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != old_meta["resourceVersion"]:
            raise errors.conflict(
                rtype.group, rtype.plural, name,
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            )
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise errors.conflict(
                rtype.group, rtype.plural, name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                f"{old_meta['uid']}",
            )
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        if rtype.kind == "Event":
            # Events keep the form they were written in (see conversion.py).
            new["apiVersion"] = current["apiVersion"]
        if subresource == "status":
            # The status subresource changes status only.
            merged = copy.deepcopy(current)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        elif rtype.has_status:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        meta = new["metadata"]
        # Server-owned metadata cannot be changed by clients.
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "generation",
                      "deletionGracePeriodSeconds"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta["name"] = name
        if rtype.namespaced:
            meta["namespace"] = old_meta["namespace"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(
                    rtype.kind, rtype.group, name,
                    [("metadata.finalizers", (
                        "Forbidden: no new finalizers can be added if the object is being "
                        f"deleted, found new finalizers {sorted(added)!r}"))],
                )
        new = self._validate(rtype, new, current)
        if "generation" in old_meta and self._generation_relevant(rtype, new) != (
            self._generation_relevant(rtype, current)
        ):
            new["metadata"]["generation"] = old_meta["generation"] + 1
        if rtype.kind == "CustomResourceDefinition" and subresource != "status":
            new["status"] = current.get("status", {})
            self._controller_defaults(rtype, new)
        if not applied:
            fieldmanager.record_update(current, new, manager, subresource, rtype.api_version, self._now())
        if new == current:
            return current  # a no-op write does not bump the resourceVersion
        if dry_run:
            return new
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            return self._remove(rtype, new)
        committed = self._commit(rtype, new, current)
        self._after_write(rtype, committed)
        return committed

    def update(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str,
        manager: str,
        *,
        dry_run: bool = False,
    ) -> Obj:
        with self._lock:
            current = self.get(rtype, namespace, name)
            new = copy.deepcopy(body)
            new.setdefault("metadata", {})
            if not new["metadata"].get("resourceVersion") and rtype.from_crd:
                raise errors.invalid(
                    rtype.kind, rtype.group, name,
                    [("metadata.resourceVersion", "Invalid value: 0x0: must be specified for an update")],
                )
            new["metadata"]["managedFields"] = current["metadata"].get("managedFields", [])
            return self._write(rtype, current, new, subresource, manager, dry_run=dry_run)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch_type: str,
        patch: Any,
        subresource: str,
        manager: str,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> Obj:
        with self._lock:
            if patch_type == "apply":
                return self._apply(rtype, namespace, name, patch, subresource, manager,
                                   force=force, dry_run=dry_run)
            current = self.get(rtype, namespace, name)
            base = {k: v for k, v in current.items()}
            if patch_type == "merge":
                new = patches.merge_patch(base, patch)
            elif patch_type == "json":
                new = patches.json_patch(base, patch)
            elif patch_type == "strategic":
                if rtype.from_crd:
                    raise errors.ApiError(
                        415, "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types "
                        "include: application/json-patch+json, application/merge-patch+json, "
                        "application/apply-patch+yaml",
                    )
                new = patches.strategic_merge_patch(base, patch)
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(new, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            new = copy.deepcopy(new)
            new.setdefault("metadata", {})
            new["metadata"]["managedFields"] = current["metadata"].get("managedFields", [])
            return self._write(rtype, current, new, subresource, manager, dry_run=dry_run)

    def _apply(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str,
        manager: str,
        *,
        force: bool,
        dry_run: bool,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("an apply patch must be a single object")
        if not manager:
            raise errors.bad_request("PATCH requests with apply patch type require a fieldManager")
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") not in (None, name):
            raise errors.bad_request(
                f"the name of the object ({body_meta.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        for field, want in (("apiVersion", rtype.api_version), ("kind", rtype.kind)):
            if body.get(field) != want:
                raise errors.bad_request(f"{field} must be {want!r} in an apply patch, got {body.get(field)!r}")
        applied = copy.deepcopy(body)
        applied.setdefault("metadata", {})["name"] = name
        if rtype.namespaced:
            applied["metadata"]["namespace"] = namespace
        if subresource == "status":
            applied = {k: v for k, v in applied.items() if k in ("apiVersion", "kind", "metadata", "status")}
        elif rtype.has_status:
            applied.pop("status", None)
        now = self._now()
        current = self._objects[rtype.key].get((namespace or "", name))
        if current is None:
            if subresource:
                raise errors.not_found(rtype.group, rtype.plural, name)
            merged = fieldmanager.apply(None, applied, manager, force, "", rtype.api_version, now)
            return self.create(rtype, namespace, merged, manager, dry_run=dry_run, applied=True)
        merged = fieldmanager.apply(current, applied, manager, force, subresource, rtype.api_version, now)
        merged["metadata"]["resourceVersion"] = applied["metadata"].get("resourceVersion") or (
            current["metadata"]["resourceVersion"]
        )
        return self._write(rtype, current, merged, subresource, manager, dry_run=dry_run, applied=True)

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Delete or mark for deletion; returns (object, whether it is gone now)."""
        with self._lock:
            current = self.get(rtype, namespace, name)
            meta = current["metadata"]
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = (preconditions or {}).get(field)
                if wanted and wanted != meta[field]:
                    raise errors.conflict(
                        rtype.group, rtype.plural, name,
                        f"Precondition failed: {label} in precondition: {wanted}, {label} in "
                        f"object meta: {meta[field]}",
                    )
            if dry_run:
                return current, not meta.get("finalizers")
            finalizers = list(meta.get("finalizers") or [])
            if propagation == "Foreground" and FOREGROUND_FINALIZER not in finalizers:
                finalizers.append(FOREGROUND_FINALIZER)
            elif propagation == "Orphan" and ORPHAN_FINALIZER not in finalizers:
                finalizers.append(ORPHAN_FINALIZER)
            # A namespace is never removed at once: the namespace controller empties it first.
            if not finalizers and rtype.kind != "Namespace":
                return self._remove(rtype, current), True
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []):
                return current, False  # already being deleted
            new = copy.deepcopy(current)
            new["metadata"]["finalizers"] = finalizers
            new["metadata"].setdefault("deletionTimestamp", self._now())
            new["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            if rtype.kind == "Namespace":
                new["status"] = {"phase": "Terminating"}
            if not new["metadata"]["finalizers"]:
                del new["metadata"]["finalizers"]
            committed = self._commit(rtype, new, current)
            self._after_write(rtype, committed)
            still_there = self._objects[rtype.key].get((meta.get("namespace", ""), name))
            return (still_there or committed), still_there is None

    # --- the controllers whose effects clients observe ---------------------------------------

    def _after_write(self, rtype: ResourceType, obj: Obj) -> None:
        """Run the controllers when a write gives them work: an object being deleted, or one whose
        owner is gone (kube-controller-manager's garbage collector deletes a dependent written with,
        or left with, an ownerReference to an object that no longer exists)."""
        meta = obj["metadata"]
        dangling = any(r.get("uid") not in self._by_uid for r in meta.get("ownerReferences") or [])
        if meta.get("deletionTimestamp") or dangling:
            self._run_controllers()

    def _on_removed(self, rtype: ResourceType, obj: Obj) -> None:
        if rtype.kind == "CustomResourceDefinition":
            self.registry.remove_crd(obj["metadata"]["name"])
            group, plural = obj["spec"]["group"], obj["spec"]["names"]["plural"]
            self._objects.pop((group, plural), None)
        self._run_controllers()

    def _run_controllers(self) -> None:
        """Garbage collection, namespace and CRD cleanup, until nothing more changes."""
        if getattr(self, "_in_controllers", False):
            return
        self._in_controllers = True
        try:
            for _ in itertools.count():
                if not self._controllers_pass():
                    break
        finally:
            self._in_controllers = False

    def _all_objects(self) -> list[tuple[ResourceType, Obj]]:
        types = {t.key: t for t in self.registry.all()}
        return [
            (types[key], obj)
            for key, objects in list(self._objects.items()) if key in types
            for obj in list(objects.values())
        ]

    def _drop_finalizer(self, rtype: ResourceType, obj: Obj, finalizer: str) -> None:
        new = copy.deepcopy(obj)
        remaining = [f for f in new["metadata"].get("finalizers") or [] if f != finalizer]
        if remaining:
            new["metadata"]["finalizers"] = remaining
        else:
            new["metadata"].pop("finalizers", None)
        if new["metadata"].get("deletionTimestamp") and not remaining:
            self._remove(rtype, new)
        else:
            self._commit(rtype, new, obj)

    def _delete_quietly(self, rtype: ResourceType, obj: Obj, propagation: str | None = None) -> bool:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and propagation is None:
            return False
        self.delete(rtype, meta.get("namespace"), meta["name"], propagation=propagation)
        return True

    def _controllers_pass(self) -> bool:
        everything = self._all_objects()
        live_uids = set(self._by_uid)
        changed = False
        referenced: set[str] = set()
        for rtype, obj in everything:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if not refs:
                continue
            alive = [r for r in refs if r.get("uid") in live_uids]
            referenced |= {r["uid"] for r in alive}
            orphaning = [r for r in alive if ORPHAN_FINALIZER in self._finalizers_of(r["uid"])]
            if alive and not orphaning and len(alive) == len(refs):
                continue
            if not alive:
                if self._delete_quietly(rtype, obj):
                    changed = True
                continue
            new = copy.deepcopy(obj)
            keep = [r for r in alive if r not in orphaning]
            if keep:
                new["metadata"]["ownerReferences"] = keep
            else:
                new["metadata"].pop("ownerReferences", None)
            self._commit(rtype, new, obj)
            changed = True
        for rtype, obj in everything:
            meta = obj["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            current = self._objects[rtype.key].get((meta.get("namespace", ""), meta["name"]))
            if current is not obj:
                continue
            finalizers = meta.get("finalizers") or []
            if FOREGROUND_FINALIZER in finalizers:
                dependents = [
                    (t, o) for t, o in self._all_objects()
                    if any(r.get("uid") == meta["uid"] for r in o["metadata"].get("ownerReferences") or [])
                ]
                for t, o in dependents:
                    changed |= self._delete_quietly(t, o)
                if not dependents:
                    self._drop_finalizer(rtype, obj, FOREGROUND_FINALIZER)
                    changed = True
            elif ORPHAN_FINALIZER in finalizers and meta["uid"] not in referenced:
                self._drop_finalizer(rtype, obj, ORPHAN_FINALIZER)
                changed = True
            elif rtype.kind == "Namespace":
                changed |= self._terminate_namespace(rtype, obj)
            elif rtype.kind == "CustomResourceDefinition" and CRD_CLEANUP_FINALIZER in finalizers:
                group, plural = obj["spec"]["group"], obj["spec"]["names"]["plural"]
                instances = [
                    (t, o) for t, o in self._all_objects() if t.key == (group, plural)
                ]
                for t, o in instances:
                    changed |= self._delete_quietly(t, o)
                if not instances:
                    self._drop_finalizer(rtype, obj, CRD_CLEANUP_FINALIZER)
                    changed = True
        return changed

    def _finalizers_of(self, uid: str) -> list[str]:
        where = self._by_uid.get(uid)
        if where is None:
            return []
        obj = self._objects[where[0]].get(where[1])
        return list((obj or {}).get("metadata", {}).get("finalizers") or [])

    def _terminate_namespace(self, rtype: ResourceType, ns: Obj) -> bool:
        name = ns["metadata"]["name"]
        contents = [
            (t, o) for t, o in self._all_objects()
            if t.namespaced and o["metadata"].get("namespace") == name
        ]
        changed = False
        for t, o in contents:
            changed |= self._delete_quietly(t, o)
        if contents:
            return changed
        spec_finalizers = (ns.get("spec") or {}).get("finalizers") or []
        if spec_finalizers:
            new = copy.deepcopy(ns)
            new["spec"]["finalizers"] = []
            self._commit(rtype, new, ns)
            return True
        if not ns["metadata"].get("finalizers"):
            self._remove(rtype, ns)
            return True
        return changed


def _crd_problems(crd: Obj) -> list[tuple[str, str]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    problems = []
    for field in ("group",):
        if not spec.get(field):
            problems.append((f"spec.{field}", "Required value"))
    for field in ("plural", "kind"):
        if not names.get(field):
            problems.append((f"spec.names.{field}", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        problems.append(("spec.scope", (
            f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"')))
    versions = spec.get("versions") or []
    if not versions:
        problems.append(("spec.versions", "Required value: must have exactly one version marked as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        problems.append(("spec.versions", "Invalid value: must have exactly one version marked as storage version"))
    if not problems and crd["metadata"]["name"] != f"{names['plural']}.{spec['group']}":
        problems.append(("metadata.name", f'Invalid value: "{crd["metadata"]["name"]}": must be spec.names.plural+"."+spec.group'))
    return problems
