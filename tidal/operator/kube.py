"""Kubernetes API access for the operator: one ApiClient per operator, server-side apply of children.

Why server-side apply with field manager ``tidal`` and forced conflicts: the operator owns every
field it renders, so re-applying the same render is a no-op (level-based reconcile), fields that
other managers set (a user's annotations, a mesh's injected sidecar) are left alone, and a field
someone changed by hand is taken back on the next reconcile instead of failing it.

The kubernetes client is synchronous; async kopf handlers call these helpers through
``asyncio.to_thread`` so a slow API call never blocks the event loop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient

FIELD_MANAGER = "tidal"
CONNECTION_POOL_SIZE = 16
"""Keep-alive connections to the API server: one per handler thread (tidal/operator/app.py
EXECUTOR_WORKERS), so concurrent ticks do not open and drop connections (urllib3 defaults to 10)."""
LIST_PAGE_SIZE = 500
"""Objects per list request: kubectl's default chunk size (--chunk-size=500)."""
USER_AGENT = "tidal-operator"
"""Sent on every request of the operator's own client, so audit logs (and the tests' RBAC check)
tell the operator's requests from kubectl's or a test's."""
REQUEST_TIMEOUT_S = 10.0
"""Per-request timeout of the operator's own API calls (reads, applies). kube-apiserver answers a
healthy request in milliseconds; 10 s is two-thirds of the default tick, so a hung connection costs
one tick, never the operator (kopf's watch streams have their own timeouts)."""
DEFAULT_NAMESPACE = "default"
"""Namespace when neither the pod's service account nor the kubeconfig context names one (kubectl's)."""
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
"""Worth retrying: conflicts and rate limiting (the Kubernetes API conventions say clients retry
409 Conflict and 429 with backoff) and server-side failures."""


@dataclass
class KubeClients:
    """Typed and dynamic clients sharing one connection pool (built once per operator)."""

    api: k8s.ApiClient
    request_timeout_s: float = REQUEST_TIMEOUT_S
    namespace: str = DEFAULT_NAMESPACE
    """The operator's own namespace (in a pod: its service account's; else the kubeconfig context's):
    where events about cluster-scoped objects go, as kopf posts them."""
    _dynamic: DynamicClient | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> "KubeClients":
        """In-cluster service account when running in a pod, else the kubeconfig (KUBECONFIG or the path)."""
        api: k8s.ApiClient | None = None
        namespace = DEFAULT_NAMESPACE
        if kubeconfig is None:
            try:
                configuration = k8s.Configuration()
                k8s_config.load_incluster_config(client_configuration=configuration)
                configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
                api = k8s.ApiClient(configuration)
                namespace = SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip() or DEFAULT_NAMESPACE
            except (k8s_config.ConfigException, OSError):
                pass
        if api is None:
            configuration = k8s.Configuration()
            config_file = str(kubeconfig) if kubeconfig else None
            k8s_config.load_kube_config(config_file=config_file, context=context,
                                        client_configuration=configuration, persist_config=False)
            configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
            api = k8s.ApiClient(configuration)
            namespace = _context_namespace(config_file, context)
        api.user_agent = USER_AGENT
        return cls(api, namespace=namespace)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api)

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api)

    @property
    def custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api)

    @property
    def dynamic(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = DynamicClient(self.api)
        return self._dynamic

    def close(self) -> None:
        self.api.close()


def _context_namespace(config_file: str | None, context: str | None) -> str:
    """The namespace of the kubeconfig context in use, or ``default``."""
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=config_file)
    except (k8s_config.ConfigException, OSError):
        return DEFAULT_NAMESPACE
    chosen = next((c for c in contexts if c.get("name") == context), current) if context else current
    return ((chosen or {}).get("context") or {}).get("namespace") or DEFAULT_NAMESPACE


def apply_object(clients: KubeClients, obj: dict[str, Any], field_manager: str = FIELD_MANAGER) -> dict[str, Any]:
    """Server-side apply one rendered object; returns the object as stored."""
    resource = clients.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    meta = obj["metadata"]
    result = resource.server_side_apply(
        body=obj, name=meta["name"], namespace=meta.get("namespace"),
        field_manager=field_manager, force_conflicts=True, _request_timeout=clients.request_timeout_s,
    )
    return result.to_dict()


def is_transient(exc: BaseException) -> bool:
    """Whether a failed API call is worth retrying (timeouts, connection errors, 409/429/5xx)."""
    from kubernetes.client.rest import ApiException
    from kubernetes.dynamic.exceptions import DynamicApiError
    import urllib3

    if isinstance(exc, (ApiException, DynamicApiError)):
        return getattr(exc, "status", None) in TRANSIENT_STATUSES
    return isinstance(exc, (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError, OSError))


def describe_api_error(exc: BaseException) -> str:
    """One line: status, reason and the server's message, without the response headers."""
    status = getattr(exc, "status", None)
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, (str, bytes)):
        try:
            message = json.loads(body).get("message", "")
        except (ValueError, AttributeError):
            message = body[:200] if isinstance(body, str) else ""
    reason = getattr(exc, "reason", None) or type(exc).__name__
    head = f"{status} {reason}" if status else f"{type(exc).__name__}: {exc}"
    return f"{head}: {message}" if message else head


def list_items(call: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """All items of a list call as plain JSON dicts (camelCase, as the API sends them), paginated.

    Raw JSON instead of the client's models: the controllers work on API-shaped dicts, and skipping
    model deserialisation keeps listing thousands of Pods cheap.
    """
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        extra = {"_continue": token} if token else {}
        response = call(*args, limit=LIST_PAGE_SIZE, _preload_content=False, **extra, **kwargs)
        body = json.loads(response.data)
        items.extend(body.get("items") or [])
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items
