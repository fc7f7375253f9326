"""The HTTP front of the test API server: routing, content negotiation, watch streams.

``KubeApiServer`` runs an aiohttp application on its own thread and event loop, on 127.0.0.1 and a
free port, so synchronous tests, the kubernetes client, kopf (in its own thread via KopfRunner) and
kubectl (a subprocess) can all talk to it at once.

    with KubeApiServer() as server:
        server.write_kubeconfig(tmp_path / "kubeconfig")
        server.faults.inject(verb="patch", resource="deployments", status=500)
        ...
        server.audit.rbac_triples()
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime
import json
import logging
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import yaml
from aiohttp import web

from tests.kubeapi import conversion, discovery, errors, tables
from tests.kubeapi.audit import AuditLog, AuditRecord
from tests.kubeapi.faults import FaultInjector
from tests.kubeapi.resources import Registry, ResourceType
from tests.kubeapi.selectors import (
    Filter,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
)
from tests.kubeapi.store import DEFAULT_HISTORY_EVENTS, Store, WatchEvent

LOOPBACK = "127.0.0.1"
logger = logging.getLogger(__name__)

# kube-apiserver sends a watch bookmark roughly once a minute (Kubernetes API concepts, "Watch
# bookmarks"). Tests want to see them sooner; they can lower it further per server.
DEFAULT_BOOKMARK_INTERVAL_S = 5.0
# kube-apiserver's --min-request-timeout default (1800 s): the longest a watch lasts by default.
DEFAULT_WATCH_TIMEOUT_S = 1800.0
# How long stop() waits for in-flight requests before closing their connections.
SHUTDOWN_GRACE_S = 1.0

_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "unsupported",
}
_SERVER_SUBRESOURCES = ("status", "scale")


@dataclasses.dataclass(frozen=True)
class Target:
    """What a resource URL addresses."""

    rtype: ResourceType
    namespace: str | None  # None: cluster-scoped, or all namespaces for a namespaced list/watch
    name: str | None
    subresource: str


def _json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


def _error_response(error: errors.ApiError) -> web.Response:
    return _json_response(error.status(), error.code)


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


class KubeApiServer:
    def __init__(
        self,
        *,
        port: int = 0,
        bookmark_interval_s: float = DEFAULT_BOOKMARK_INTERVAL_S,
        history_events: int = DEFAULT_HISTORY_EVENTS,
    ) -> None:
        self.registry = Registry()
        self.store = Store(self.registry, history_events=history_events)
        self.faults = FaultInjector()
        self.audit = AuditLog()
        self.bookmark_interval_s = bookmark_interval_s
        self._requested_port = port
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._closing = False
        self._watch_wakers: set[asyncio.Event] = set()

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started; call start() first")
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._serve, name="kubeapi-server", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            raise RuntimeError("the test API server failed to start") from self._start_error
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(
                app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_S,
                handler_cancellation=True,  # a client hanging up ends its watch, as in Kubernetes
            )
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, LOOPBACK, self._requested_port)
            loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
        except BaseException as exc:  # noqa: BLE001 -- reported to start()'s caller
            self._start_error = exc
            self._started.set()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return

        def close_watches() -> None:
            self._closing = True
            for waker in list(self._watch_wakers):
                waker.set()

        self._loop.call_soon_threadsafe(close_watches)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "tidal-test", "cluster": {"server": self.url}}],
            "users": [{"name": "tidal-test", "user": {"token": "tidal-test-token"}}],
            "contexts": [{"name": "tidal-test", "context": {
                "cluster": "tidal-test", "user": "tidal-test", "namespace": namespace}}],
            "current-context": "tidal-test",
        }

    def write_kubeconfig(self, path: pathlib.Path, namespace: str = "default") -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.kubeconfig(namespace), sort_keys=False))
        return path

    # --- routing -----------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._non_resource(request)
            if response is not None:
                return response
            target = self._parse_target(request)
        except errors.ApiError as error:
            return _error_response(error)
        verb = self._verb(request, target)
        audit = {
            "verb": verb,
            "group": target.rtype.group,
            "resource": target.rtype.plural,
            "subresource": target.subresource,
            "namespace": target.namespace or "",
        }
        code = 500
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self.audit.record(AuditRecord(
                    name=target.name or "", code=status,
                    user_agent=request.headers.get("User-Agent", ""), **audit,
                ))

        try:
            fault = self.faults.take(audit)
            if fault is not None:
                if fault.delay_s > 0:
                    await asyncio.sleep(fault.delay_s)
                injected = fault.error()
                if injected is not None:
                    raise injected
            if verb == "watch":
                # Watches last long: audit them once the stream is established.
                response = await self._watch(request, target, on_established=lambda: record(200))
            else:
                response = await self._handle(request, verb, target)
            code = response.status
            return response
        except errors.ApiError as error:
            code = error.code
            return _error_response(error)
        except Exception as exc:
            logger.exception("the test API server failed on %s %s", request.method, request.path)
            code = 500
            return _error_response(errors.ApiError(500, "InternalError", f"test API server bug: {exc!r}"))
        finally:
            record(code)

    async def _non_resource(self, request: web.Request) -> web.StreamResponse | None:
        path = request.path.rstrip("/") or "/"
        if request.method != "GET":
            if path.startswith(("/api", "/apis")) and path.count("/") >= 3:
                return None
            if path in ("/api", "/apis") or path.startswith("/openapi"):
                raise errors.method_not_allowed(f"{request.method} is not allowed on {path}")
            return None
        registry = self.registry
        if path == "/version":
            return _json_response(discovery.KUBERNETES_VERSION)
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/api":
            return _json_response(discovery.api_versions(f"{LOOPBACK}:{self.port}"))
        if path == "/api/v1":
            return _json_response(discovery.api_resource_list(registry, "", "v1"))
        if path == "/apis":
            return _json_response(discovery.api_group_list(registry))
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2:
            group = discovery.api_group(registry, parts[1])
            if group is None:
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json_response(group)
        if parts[0] == "apis" and len(parts) == 3:
            listing = discovery.api_resource_list(registry, parts[1], parts[2])
            if listing is None:
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json_response(listing)
        if path == "/openapi/v2":
            accept = request.headers.get("Accept", "")
            if accept and "json" not in accept and "*/*" not in accept:
                raise errors.ApiError(406, "NotAcceptable", "only application/json is served")
            return _json_response(discovery.openapi_v2(registry))
        if path == "/openapi/v3":
            return _json_response(discovery.openapi_v3_root(registry))
        if path.startswith("/openapi/v3/"):
            rest = path[len("/openapi/v3/"):].split("/")
            if rest[0] == "api" and len(rest) == 2:
                doc = discovery.openapi_v3_group_version(registry, "", rest[1])
            elif rest[0] == "apis" and len(rest) == 3:
                doc = discovery.openapi_v3_group_version(registry, rest[1], rest[2])
            else:
                doc = None
            if doc is None:
                raise errors.ApiError(404, "NotFound", f"no OpenAPI document at {path}")
            return _json_response(doc)
        if path.startswith(("/api/", "/apis/")):
            return None
        raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")

    def _parse_target(self, request: web.Request) -> Target:
        parts = [p for p in request.path.strip("/").split("/") if p]
        not_found = errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise not_found
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (
            group == "" and rest[2] in ("status", "finalize") and len(rest) == 3
        ):
            namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise not_found
        rtype = self.registry.get(group, version, rest[0])
        if rtype is None:
            raise not_found
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if namespace is not None and not rtype.namespaced:
            raise not_found
        if subresource == "finalize" and rtype.kind == "Namespace":
            pass
        elif subresource == "status" and not rtype.has_status or subresource == "scale" and rtype.scale is None or subresource and subresource not in _SERVER_SUBRESOURCES:
            raise not_found
        if rtype.namespaced and name is not None and namespace is None:
            raise not_found
        return Target(rtype, namespace, name, subresource)

    def _verb(self, request: web.Request, target: Target) -> str:
        method = request.method
        if method == "GET":
            if target.name is None:
                return "watch" if _truthy(request.query.get("watch")) else "list"
            return "get"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if target.name is not None else "deletecollection"
        return method.lower()

    # --- verbs -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request, verb: str, target: Target) -> web.StreamResponse:
        if verb == "list":
            return self._list(request, target)
        if verb == "get":
            return self._get(request, target)
        if verb in ("create", "update", "patch") and target.name is None and verb != "create":
            raise errors.method_not_allowed(f"{verb} needs an object name in the URL")
        if verb == "create":
            if target.name is not None:
                raise errors.method_not_allowed("POST is not allowed on a named object")
            return await self._create(request, target)
        if verb == "update":
            return await self._update(request, target)
        if verb == "patch":
            return await self._patch(request, target)
        if verb == "delete":
            return await self._delete(request, target)
        if verb == "deletecollection":
            return await self._delete_collection(request, target)
        raise errors.method_not_allowed(f"{request.method} is not supported")

    def _filter(self, request: web.Request, target: Target) -> Filter:
        return Filter(
            namespace=target.namespace,
            labels=tuple(parse_label_selector(request.query.get("labelSelector"))),
            fields=tuple(parse_field_selector(request.query.get("fieldSelector"))),
        )

    def _present(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Serve an object in the requested version (CRD versions share one schema-less store)."""
        if obj.get("apiVersion") == rtype.api_version:
            return obj
        if rtype.kind == "Event":
            return conversion.convert_event(obj, rtype.api_version)
        return {**obj, "apiVersion": rtype.api_version}

    def _wants_table(self, request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _table(self, request: web.Request, rtype: ResourceType, objs: list[dict[str, Any]],
               list_meta: dict[str, Any]) -> web.Response:
        include = request.query.get("includeObject", "Metadata")
        return _json_response(tables.to_table(
            rtype, objs, list_meta, include, datetime.datetime.now(datetime.UTC)))

    def _list(self, request: web.Request, target: Target) -> web.Response:
        limit_text = request.query.get("limit")
        try:
            limit = int(limit_text) if limit_text else None
        except ValueError as exc:
            raise errors.bad_request(f"limit must be an integer, got {limit_text!r}") from exc
        items, list_rv, next_token = self.store.list(
            target.rtype, self._filter(request, target),
            limit=limit, continue_token=request.query.get("continue"),
        )
        meta: dict[str, Any] = {"resourceVersion": list_rv}
        if next_token:
            meta["continue"] = next_token
        items = [self._present(target.rtype, o) for o in items]
        if self._wants_table(request):
            return self._table(request, target.rtype, items, meta)
        return _json_response({
            "kind": target.rtype.list_kind,
            "apiVersion": target.rtype.api_version,
            "metadata": meta,
            "items": items,
        })

    def _get(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        obj = self.store.get(target.rtype, target.namespace, target.name)
        if target.subresource == "scale":
            return _json_response(self._scale_of(target.rtype, obj))
        obj = self._present(target.rtype, obj)
        if self._wants_table(request):
            return self._table(request, target.rtype, [obj],
                               {"resourceVersion": obj["metadata"]["resourceVersion"]})
        return _json_response(obj)

    async def _body(self, request: web.Request, *, yaml_ok: bool = False) -> Any:
        raw = await request.read()
        if not raw:
            raise errors.bad_request("the request body is empty")
        if "protobuf" in request.content_type or "cbor" in request.content_type:
            raise errors.ApiError(
                415, "UnsupportedMediaType",
                f"the tidal test API server accepts JSON and YAML bodies only, not "
                f"{request.content_type} (kubectl's imperative 'create <kind>' sends protobuf; "
                f"use 'kubectl create -f' or 'kubectl apply -f')",
            )
        try:
            if yaml_ok or "yaml" in request.content_type:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"the request body is not valid {request.content_type}: {exc}") from exc

    def _manager(self, request: web.Request) -> str:
        manager = request.query.get("fieldManager")
        if manager:
            return manager
        agent = request.headers.get("User-Agent", "unknown")
        return agent.split("/", 1)[0] or "unknown"

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        return request.query.get("dryRun") == "All"

    def _check_body_type(self, rtype: ResourceType, body: Any) -> None:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        api_version = body.get("apiVersion")
        if api_version and api_version.split("/")[0] != (rtype.group or api_version.split("/")[0]):
            raise errors.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rtype.api_version})"
            )
        kind = body.get("kind")
        if kind and kind != rtype.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match {rtype.kind}")

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        body = await self._body(request)
        self._check_body_type(target.rtype, body)
        obj = self.store.create(target.rtype, target.namespace, body, self._manager(request),
                                dry_run=self._dry_run(request))
        return _json_response(self._present(target.rtype, obj), 201)

    async def _update(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        body = await self._body(request)
        if target.subresource == "scale":
            return self._write_scale(target, body, request)
        if target.subresource == "finalize":
            return self._finalize_namespace(target, body)
        self._check_body_type(target.rtype, body)
        obj = self.store.update(target.rtype, target.namespace, target.name, body,
                                target.subresource, self._manager(request),
                                dry_run=self._dry_run(request))
        return _json_response(self._present(target.rtype, obj))

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        patch_type = _PATCH_TYPES.get(request.content_type)
        if patch_type is None or patch_type == "unsupported":
            raise errors.unsupported_media_type(request.content_type)
        body = await self._body(request, yaml_ok=patch_type == "apply")
        manager = request.query.get("fieldManager") if patch_type == "apply" else self._manager(request)
        if target.subresource == "scale":
            current = self._scale_of(target.rtype, self.store.get(target.rtype, target.namespace, target.name))
            from tests.kubeapi import patches  # the scale object is patched like any object

            patched = {"merge": patches.merge_patch, "json": patches.json_patch,
                       "strategic": patches.strategic_merge_patch}.get(patch_type)
            if patched is None:
                raise errors.unsupported_media_type(request.content_type)
            return self._write_scale(target, patched(current, body), request)
        if patch_type == "apply" and not target.subresource and not self._exists(target):
            # The real API server authorizes an apply that creates the object as `create` too
            # (API concepts, "Patch and apply"), so RBAC needs both verbs: audit both.
            self.audit.record(AuditRecord(
                verb="create", group=target.rtype.group, resource=target.rtype.plural, subresource="",
                namespace=target.namespace or "", name=target.name, code=201,
                user_agent=request.headers.get("User-Agent", ""),
            ))
        obj = self.store.patch(
            target.rtype, target.namespace, target.name, patch_type, body, target.subresource,
            manager or "", force=_truthy(request.query.get("force")),
            dry_run=self._dry_run(request),
        )
        return _json_response(self._present(target.rtype, obj))

    def _exists(self, target: Target) -> bool:
        try:
            self.store.get(target.rtype, target.namespace, target.name)
        except errors.ApiError as error:
            if error.code == 404:
                return False
            raise
        return True

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        options: dict[str, Any] = {}
        raw = await request.read()
        if raw:
            try:
                options = json.loads(raw) or {}
            except ValueError as exc:
                raise errors.bad_request(f"DeleteOptions is not valid JSON: {exc}") from exc
        propagation = request.query.get("propagationPolicy") or options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            propagation = "Orphan"
        if propagation not in (None, "Background", "Foreground", "Orphan"):
            raise errors.bad_request(f"propagationPolicy {propagation!r} is not one of "
                                     "Background, Foreground, Orphan")
        obj, gone = self.store.delete(
            target.rtype, target.namespace, target.name,
            propagation=None if propagation == "Background" else propagation,
            preconditions=options.get("preconditions"),
            dry_run=self._dry_run(request) or options.get("dryRun") == ["All"],
        )
        return _json_response(self._present(target.rtype, obj), 200 if gone else 202)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        items, list_rv, _ = self.store.list(target.rtype, self._filter(request, target))
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                result, _ = self.store.delete(target.rtype, meta.get("namespace"), meta["name"])
            except errors.ApiError as error:
                if error.code == 404:
                    continue
                raise
            deleted.append(self._present(target.rtype, result))
        return _json_response({"kind": target.rtype.list_kind, "apiVersion": target.rtype.api_version,
                               "metadata": {"resourceVersion": list_rv}, "items": deleted})

    # --- subresources ------------------------------------------------------------------------

    def _scale_of(self, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        assert rtype.scale is not None
        spec_replicas = tables.jsonpath_value(obj, rtype.scale.spec_replicas_path)
        status_replicas = tables.jsonpath_value(obj, rtype.scale.status_replicas_path)
        status: dict[str, Any] = {"replicas": status_replicas or 0}
        if rtype.scale.label_selector_path:
            selector = tables.jsonpath_value(obj, rtype.scale.label_selector_path)
            if isinstance(selector, dict):
                selector = selector_from_label_selector_object(selector)
            if selector:
                status["selector"] = selector
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in meta},
            "spec": {"replicas": spec_replicas or 0},
            "status": status,
        }

    def _write_scale(self, target: Target, scale: Any, request: web.Request) -> web.Response:
        assert target.name is not None and target.rtype.scale is not None
        replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid("Scale", "autoscaling", target.name,
                                 [("spec.replicas", (f"Invalid value: {replicas!r}: must be "
                                                     "greater than or equal to 0"))])
        patch: dict[str, Any] = {}
        node = patch
        steps = target.rtype.scale.spec_replicas_path.strip(".").split(".")
        for step in steps[:-1]:
            node = node.setdefault(step, {})
        node[steps[-1]] = replicas
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv:
            patch.setdefault("metadata", {})["resourceVersion"] = rv
        obj = self.store.patch(target.rtype, target.namespace, target.name, "merge", patch, "",
                               self._manager(request), dry_run=self._dry_run(request))
        return _json_response(self._scale_of(target.rtype, obj))

    def _finalize_namespace(self, target: Target, body: Any) -> web.Response:
        assert target.name is not None
        finalizers = ((body or {}).get("spec") or {}).get("finalizers") or []
        obj = self.store.patch(target.rtype, None, target.name, "merge",
                               {"spec": {"finalizers": finalizers}}, "", "namespace-controller")
        return _json_response(obj)

    # --- watch -------------------------------------------------------------------------------

    def _wire_event(self, event: WatchEvent, flt: Filter, rtype: ResourceType) -> dict[str, Any] | None:
        """The event as this watcher sees it, given its selectors (None: not visible)."""
        now_matches = flt.matches(event.obj)
        was_matching = event.old is not None and flt.matches(event.old)
        if event.type == "DELETED":
            kind = "DELETED" if (now_matches or was_matching) else None
        elif event.type == "ADDED":
            kind = "ADDED" if now_matches else None
        elif now_matches and was_matching:
            kind = "MODIFIED"
        elif now_matches:
            kind = "ADDED"
        elif was_matching:
            kind = "DELETED"
        else:
            kind = None
        if kind is None:
            return None
        return {"type": kind, "object": self._present(rtype, event.obj)}

    def _bookmark(self, rtype: ResourceType, rv: int, *, initial_end: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version,
                                               "metadata": meta}}

    async def _watch(
        self, request: web.Request, target: Target, on_established: Callable[[], None]
    ) -> web.StreamResponse:
        query = request.query
        rtype = target.rtype
        flt = self._filter(request, target)
        since_text = query.get("resourceVersion") or ""
        send_initial = _truthy(query.get("sendInitialEvents"))
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        try:
            since = None if since_text in ("", "0") or send_initial else int(since_text)
        except ValueError as exc:
            raise errors.bad_request(f"resourceVersion {since_text!r} is not a valid version") from exc
        timeout_text = query.get("timeoutSeconds")
        try:
            timeout_s = float(timeout_text) if timeout_text else DEFAULT_WATCH_TIMEOUT_S
        except ValueError as exc:
            raise errors.bad_request(f"timeoutSeconds {timeout_text!r} is not a number") from exc
        deadline = time.monotonic() + timeout_s

        loop = asyncio.get_running_loop()
        pending: collections.deque[WatchEvent] = collections.deque()
        waker = asyncio.Event()

        def deliver(event: WatchEvent) -> None:
            pending.append(event)
            loop.call_soon_threadsafe(waker.set)

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            subscriber, replay, snapshot, start_rv = self.store.subscribe(rtype.key, since, deliver)
        except errors.ApiError as error:
            # kube-apiserver reports a too-old version inside the stream, as an ERROR event.
            await response.prepare(request)
            await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
            await response.write_eof()
            return response

        self._watch_wakers.add(waker)
        on_established()

        async def send(event: dict[str, Any]) -> None:
            await response.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")

        try:
            await response.prepare(request)
            for obj in snapshot:
                if flt.matches(obj):
                    await send({"type": "ADDED", "object": self._present(rtype, obj)})
            if send_initial and bookmarks:
                await send(self._bookmark(rtype, start_rv, initial_end=True))
            for event in replay:
                wire = self._wire_event(event, flt, rtype)
                if wire is not None:
                    await send(wire)
            next_bookmark = time.monotonic() + self.bookmark_interval_s
            while not self._closing:
                while pending:
                    wire = self._wire_event(pending.popleft(), flt, rtype)
                    if wire is not None:
                        await send(wire)
                now = time.monotonic()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    with self.store.lock:
                        rv = None if pending else self.store.resource_version
                    if rv is not None:
                        await send(self._bookmark(rtype, rv))
                    next_bookmark = now + self.bookmark_interval_s
                    continue
                waker.clear()
                if pending:
                    continue
                wait_s = min(deadline, next_bookmark if bookmarks else deadline) - now
                try:
                    await asyncio.wait_for(waker.wait(), timeout=max(wait_s, 0.0))
                except TimeoutError:
                    pass
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away; a cancelled handler re-raises CancelledError instead
        finally:
            self.store.unsubscribe(subscriber)
            self._watch_wakers.discard(waker)
        return response

