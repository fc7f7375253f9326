"""Active/standby operator replicas: leader election on a coordination.k8s.io Lease.

Why a Lease and not kopf peering: peering pauses every operator that sees another of equal
priority ("possibly conflicting operators"), so two replicas both stall, and a dead peer is only
forgotten after its peering lifetime (60 s by default). A Lease is how controller-runtime and
client-go operators run replicas: one holds it and reconciles, the others wait and take it over
when it is not renewed for ``lease_duration_s``.

The algorithm is client-go's ``tools/leaderelection``: a candidate creates the Lease if it is
missing, takes it when its holder has not renewed it for a lease duration as measured on the
candidate's own clock (the time it *observed* the record change, so clock skew between nodes does
not matter), and renews it every retry period while it leads; updates carry the
resourceVersion read, so two candidates cannot both win. A leader that cannot renew within
``renew_deadline_s`` stops leading (the process exits and restarts as a standby); one that stops
on SIGTERM releases the Lease so a standby takes over at its next retry.

:func:`next_step` is the decision, pure; :class:`LeaderElector` does the API calls.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

log = logging.getLogger("tidal.operator.leader")

DEFAULT_LEASE_NAME = "tidal-operator"
DEFAULT_LEASE_DURATION_S = 10.0
"""How long a standby waits after the last renewal it saw before taking over. client-go's and
controller-runtime's default is 15 s; 10 s keeps failover after a crash within 15 s (10 s lease +
one 2 s retry period + start-up), the target tidal documents."""
DEFAULT_RENEW_DEADLINE_S = 7.0
"""A leader that has not renewed for this long stops leading, before any standby may take over
(client-go requires renew deadline < lease duration; its default ratio is 10 s / 15 s)."""
DEFAULT_RETRY_PERIOD_S = 2.0
"""Between attempts to acquire or renew: client-go's and controller-runtime's default."""

Step = Literal["create", "take", "renew", "wait"]


@dataclass(frozen=True)
class LeaseView:
    """What a candidate knows of the Lease: the record, its version, and when it last changed on
    the candidate's own monotonic clock."""

    holder: str
    duration_s: float
    transitions: int
    resource_version: str
    renew_time: str
    observed_at_s: float
    acquire_time: Any = None


def next_step(view: LeaseView | None, identity: str, now_s: float) -> Step:
    """What a candidate does next: create a missing Lease, renew its own, take an expired or released
    one, or wait while another holder is live."""
    if view is None:
        return "create"
    if view.holder == identity:
        return "renew"
    if not view.holder or now_s - view.observed_at_s >= view.duration_s:
        return "take"
    return "wait"


def _micro_time(now: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds)."""
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def serve_standby_health(port: int, addr: str = "0.0.0.0") -> Any:
    """``/healthz`` answering 200 while this replica waits for the Lease, so the kubelet's liveness
    probe does not restart a healthy standby. Stopped (``shutdown()``) before kopf binds the port."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            ok = self.path.split("?", 1)[0] == "/healthz"
            body = b'{"standby": true}' if ok else b"not found"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json" if ok else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET

    server = Server((addr, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tidal-standby-health", daemon=True).start()
    return server


class LeadershipLost(RuntimeError):
    """The leader could not renew its Lease in time; the process must stop reconciling."""


class LeaderElector:
    """Acquires, renews and releases one Lease for this process (see the module docstring)."""

    def __init__(self, coordination: Any, namespace: str, identity: str, *, name: str = DEFAULT_LEASE_NAME,
                 lease_duration_s: float = DEFAULT_LEASE_DURATION_S,
                 renew_deadline_s: float = DEFAULT_RENEW_DEADLINE_S,
                 retry_period_s: float = DEFAULT_RETRY_PERIOD_S, request_timeout_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < retry_period_s < renew_deadline_s < lease_duration_s:
            raise ValueError("need 0 < retry period < renew deadline < lease duration "
                             f"(got {retry_period_s:g}, {renew_deadline_s:g}, {lease_duration_s:g})")
        if not identity:
            raise ValueError("leader election needs a non-empty identity (the pod name)")
        self.api = coordination
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration_s = lease_duration_s
        self.renew_deadline_s = renew_deadline_s
        self.retry_period_s = retry_period_s
        self.request_timeout_s = request_timeout_s
        self.clock = clock
        self._view: LeaseView | None = None
        self.last_renewed_s: float | None = None

    # --- one attempt ------------------------------------------------------------------------------

    def _read(self) -> LeaseView | None:
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=self.request_timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        spec = lease.spec
        holder = (spec.holder_identity or "") if spec else ""
        renew = str(spec.renew_time) if spec and spec.renew_time else ""
        duration = float(spec.lease_duration_seconds or self.lease_duration_s) if spec else self.lease_duration_s
        transitions = int(spec.lease_transitions or 0) if spec else 0
        version = lease.metadata.resource_version or ""
        previous = self._view
        changed = previous is None or (previous.holder, previous.renew_time, previous.resource_version) != (
            holder, renew, version)
        observed = self.clock() if changed else previous.observed_at_s
        return LeaseView(holder, duration, transitions, version, renew, observed,
                         spec.acquire_time if spec else None)

    def _body(self, view: LeaseView | None, *, acquire: bool, holder: str | None = None,
              duration_s: float | None = None) -> k8s.V1Lease:
        now = _micro_time(datetime.now(timezone.utc))
        transitions = (view.transitions if view else 0) + (1 if acquire and view is not None else 0)
        spec = k8s.V1LeaseSpec(
            holder_identity=self.identity if holder is None else holder,
            lease_duration_seconds=int(round(duration_s if duration_s is not None else self.lease_duration_s)),
            renew_time=now, lease_transitions=transitions,
            acquire_time=now if acquire or view is None else view.acquire_time)
        meta = k8s.V1ObjectMeta(name=self.name, namespace=self.namespace,
                                resource_version=view.resource_version if view else None)
        return k8s.V1Lease(api_version="coordination.k8s.io/v1", kind="Lease", metadata=meta, spec=spec)

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this process holds the Lease afterwards. API errors (409 when
        another candidate wrote first, or anything transient) count as "not now"."""
        try:
            view = self._read()
            self._view = view
            step = next_step(view, self.identity, self.clock())
            if step == "wait":
                return False
            body = self._body(view, acquire=step != "renew")
            if step == "create":
                self.api.create_namespaced_lease(self.namespace, body, _request_timeout=self.request_timeout_s)
            else:
                self.api.replace_namespaced_lease(self.name, self.namespace, body,
                                                  _request_timeout=self.request_timeout_s)
            if step == "take":
                log.info("took over Lease %s/%s from %r", self.namespace, self.name, view.holder if view else "")
            self.last_renewed_s = self.clock()
            return True
        except ApiException as exc:
            log.debug("lease attempt failed: %s %s", exc.status, exc.reason)
            return False
        except Exception as exc:  # noqa: BLE001 - network errors: try again next period
            log.debug("lease attempt failed: %s", exc)
            return False

    # --- loops ------------------------------------------------------------------------------------

    def wait_for_leadership(self, stop: threading.Event) -> bool:
        """Block until this process leads (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            if self.try_acquire_or_renew():
                log.info("leading: holding Lease %s/%s as %s", self.namespace, self.name, self.identity)
                return True
            if not announced:
                holder = self._view.holder if self._view else ""
                log.info("standby: Lease %s/%s is held by %r", self.namespace, self.name, holder)
                announced = True
            stop.wait(self.retry_period_s)
        return False

    def keep_leading(self, stop: threading.Event, lost: threading.Event) -> None:
        """Renew every retry period until ``stop``; set ``lost`` when renewals fail for the renew deadline."""
        while not stop.wait(self.retry_period_s):
            if self.try_acquire_or_renew():
                continue
            since = self.clock() - (self.last_renewed_s or 0.0)
            if since >= self.renew_deadline_s:
                log.error("lost Lease %s/%s: not renewed for %.1fs; stopping", self.namespace, self.name, since)
                lost.set()
                return

    def release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration) so a standby takes it at its next retry."""
        try:
            view = self._read()
            if view is None or view.holder != self.identity:
                return
            body = self._body(view, acquire=False, holder="", duration_s=1.0)
            self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=self.request_timeout_s)
            log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:  # noqa: BLE001 - the Lease then expires on its own
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)
