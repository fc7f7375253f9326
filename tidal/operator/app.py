"""The operator process: one explicit kopf registry, kopf settings, login, health and /metrics.

Why an explicit ``kopf.OperatorRegistry`` and no module-level ``@kopf.on`` decorators: importing a
module must not register handlers into kopf's global registry, so tests can run several operators
(with different settings) in one process, and ``tidal explain`` can import this without side effects.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable

import kopf
from kubernetes import client as k8s

from tidal.operator.kube import KubeClients
from tidal.operator.leader import LeaderElector, LeadershipLost, serve_standby_health
from tidal.operator.metrics import OperatorMetrics, serve_metrics
from tidal.operator.settings import OperatorSettings

log = logging.getLogger("tidal.operator")

ANNOTATION_PREFIX = "tidal.dev"
"""kopf keeps handler progress and the last handled spec in annotations under this prefix (the CRD
status schema is strict, so kopf's default ``status.kopf`` would be pruned)."""
FINALIZER = "tidal.dev/kopf-finalizer"
WATCH_SERVER_TIMEOUT_S = 300
"""Ask the API server to end each watch after 5 minutes (kopf's docs recommend setting it; the
server's own default, --min-request-timeout 1800 s, is randomised up to twice that)."""
WATCH_CLIENT_TIMEOUT_S = WATCH_SERVER_TIMEOUT_S + 60
"""Drop a watch the server forgot to end, one minute after it should have ended."""
WATCH_CONNECT_TIMEOUT_S = 30
LEADERSHIP_POLL_S = 0.2
"""How often the leader checks for a stop request or a lost Lease (stops kopf within this)."""
EXECUTOR_WORKERS = 16
"""Threads for sync handlers: ticks block on the API server and Prometheus (I/O), not on CPU."""


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    ks = kopf.OperatorSettings()
    ks.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    ks.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration")
    ks.persistence.finalizer = FINALIZER
    ks.posting.enabled = True
    ks.posting.level = logging.INFO  # explicit kopf.event() calls only (posting.loggers stays False)
    ks.watching.server_timeout = WATCH_SERVER_TIMEOUT_S
    ks.watching.client_timeout = WATCH_CLIENT_TIMEOUT_S
    ks.watching.connect_timeout = WATCH_CONNECT_TIMEOUT_S
    ks.execution.max_workers = EXECUTOR_WORKERS
    if settings.peering_name:
        ks.peering.name = settings.peering_name
        ks.peering.mandatory = True
        ks.peering.standalone = False
    else:
        ks.peering.standalone = True
    ks.peering.clusterwide = settings.cluster_wide
    # With --namespace (exact names), kopf would list and watch all Namespaces to discover them,
    # which the namespaced RBAC (docs/configuration.md, Permissions) does not grant. The names are
    # exact, so there is nothing to discover; CRDs are then read once at start-up (the chart and
    # the plain manifests install them before the operator).
    ks.scanning.disabled = not settings.cluster_wide
    return ks


def connection_info(configuration: k8s.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the kubernetes client's configuration (kubeconfig or in-cluster), so
    both clients use the same server, CA and identity."""
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook(configuration)  # in-cluster: re-read the rotated token
    token = None
    header = configuration.get_api_key_with_prefix("authorization") or configuration.get_api_key_with_prefix("BearerToken")
    if header:
        token = header.split(" ", 1)[1] if " " in header else header
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
    )


def build_registry(settings: OperatorSettings, clients: KubeClients, metrics: OperatorMetrics,
                   prometheus: Any | None = None, include_others: bool = True) -> tuple[kopf.OperatorRegistry, Any]:
    """The registry with the login handler, the ModelDeployment handlers and, with ``include_others``,
    those of the other three kinds. Returns (registry, ModelDeploymentController)."""
    from tidal.operator import (
        handlers_accelerators,
        handlers_fairshare,
        handlers_modeldeployment,
        handlers_serverless,
    )

    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def tidal_login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(clients.api.configuration)

    controller = handlers_modeldeployment.register(registry, settings, clients, metrics=metrics, prometheus=prometheus)
    if include_others:
        handlers_serverless.register(registry, settings, clients, operator_metrics=metrics)
        handlers_accelerators.register(registry, settings, clients)
        handlers_fairshare.register(registry, settings, clients)
    return registry, controller


def make_prometheus(settings: OperatorSettings) -> Any | None:
    if not settings.prometheus_url:
        return None
    from tidal.operator.prometheus import PrometheusMetrics, PrometheusSettings

    return PrometheusMetrics(PrometheusSettings(url=settings.prometheus_url))


def liveness_endpoint(settings: OperatorSettings) -> str | None:
    """kopf's liveness URL (``/healthz`` on ``--health-bind-address``), None when disabled."""
    if not settings.health_port:
        return None
    host = settings.health_bind_address
    host = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL
    return f"http://{host}:{settings.health_port}/healthz"


def run_operator(settings: OperatorSettings, kubeconfig: str | Path | None = None,
                 stop_flag: threading.Event | None = None, ready_flag: threading.Event | None = None,
                 metrics: OperatorMetrics | None = None, include_others: bool = True,
                 on_controller: Any | None = None) -> None:
    """Run until ``stop_flag`` is set (or SIGTERM/SIGINT in the main thread). Usable from a thread.

    With leader election (``settings.leader_election_namespace``) the process first waits as a
    standby until it holds the Lease, reconciles only while it holds it, releases it on a clean
    stop, and raises :class:`~tidal.operator.leader.LeadershipLost` when it could not renew it."""
    if settings.leader_election_namespace is None:
        _run(settings, kubeconfig, stop_flag, ready_flag, metrics, include_others, on_controller)
        return
    clients = KubeClients.from_config(kubeconfig)
    elector = LeaderElector(k8s.CoordinationV1Api(clients.api), settings.leader_election_namespace,
                            settings.leader_identity, request_timeout_s=settings.api_timeout_s)
    stop = stop_flag or threading.Event()
    health = (serve_standby_health(settings.health_port, settings.health_bind_address)
              if settings.health_port else None)
    try:
        leading = elector.wait_for_leadership(stop)
    finally:
        if health is not None:
            health.shutdown()
            health.server_close()
        clients.close()
    if not leading:
        return
    lost, done, kopf_stop = threading.Event(), threading.Event(), threading.Event()
    renewer = threading.Thread(target=elector.keep_leading, args=(done, lost), name="tidal-lease", daemon=True)
    renewer.start()

    def relay() -> None:  # kopf gets one flag: the caller's stop or a lost Lease
        while not done.is_set():
            if lost.is_set() or stop.is_set():
                kopf_stop.set()
                return
            done.wait(LEADERSHIP_POLL_S)

    threading.Thread(target=relay, name="tidal-lease-relay", daemon=True).start()
    try:
        _run(settings, kubeconfig, kopf_stop, ready_flag, metrics, include_others, on_controller,
             on_stopping=kopf_stop.set)
    finally:
        done.set()
        renewer.join(elector.retry_period_s + settings.api_timeout_s)
        if not lost.is_set():
            elector.release()
    if lost.is_set():
        raise LeadershipLost(f"Lease {settings.leader_election_namespace}/{elector.name} not renewed in time")


def _run(settings: OperatorSettings, kubeconfig: str | Path | None, stop_flag: Any,
         ready_flag: threading.Event | None, metrics: OperatorMetrics | None, include_others: bool,
         on_controller: Any | None, on_stopping: Callable[[], None] | None = None) -> None:
    """kopf with the registry, /metrics and /healthz until ``stop_flag`` or a signal. ``on_stopping``
    runs when kopf stops for any reason: kopf waits on a ``threading.Event`` stop flag in an executor
    thread, so a flag nobody sets after a SIGTERM would keep the process from exiting."""
    clients = KubeClients.from_config(kubeconfig)
    clients.request_timeout_s = settings.api_timeout_s
    metrics = metrics or OperatorMetrics()
    registry, controller = build_registry(settings, clients, metrics, make_prometheus(settings), include_others)
    if on_stopping is not None:
        @kopf.on.cleanup(registry=registry, id="tidal-stopping")
        def tidal_stopping(**_: Any) -> None:
            on_stopping()

    if on_controller is not None:
        on_controller(controller)
    server = (serve_metrics(metrics, settings.metrics_port, settings.metrics_bind_address)
              if settings.metrics_port else None)
    liveness = liveness_endpoint(settings)
    try:
        kopf.run(
            registry=registry, settings=kopf_settings(settings),
            standalone=settings.peering_name is None, peering_name=settings.peering_name,
            clusterwide=settings.cluster_wide, namespaces=list(settings.namespaces),
            liveness_endpoint=liveness, stop_flag=stop_flag, ready_flag=ready_flag,
        )
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        clients.close()
