"""The activator's HTTP server (aiohttp): hold, signal demand, forward, stream back.

Per workload (the Service a request names in its Host header) a :class:`Gate` holds the waiting
requests in arrival order. A request that finds a ready endpoint and nobody held is forwarded at
once; otherwise it is held (``queueing.admit``), the operator is told (``DemandSink``, at once for
the first request, then at most every ``demand_signal_interval_s``), and one poller per workload
looks the ready endpoints up every ``backend_poll_interval_s``. When it finds one, it releases the
held requests in arrival order. A request still held after ``hold_timeout_s`` (or one that finds
the queue full) gets 503 with ``Retry-After``, and is counted. Responses are streamed back chunk by
chunk as they arrive (SSE and chunked bodies are never buffered).

Where endpoints come from and where demand goes are the two ports of this module
(:class:`Backends`, :class:`DemandSink`): ``kube.py`` implements them on the Kubernetes API; tests
and the benchmark pass their own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import (
    ClientConnectorError,
    ClientError,
    ClientSession,
    ClientTimeout,
    ConnectionTimeoutError,
    TCPConnector,
    web,
)
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tidal.activator.demand import DemandReport
from tidal.activator.metrics import ActivatorMetrics
from tidal.activator.queueing import (
    Admission,
    WorkloadRef,
    admit,
    bare_service_from_host,
    connect_retry_delay_s,
    forwarded_headers,
    pick_endpoint,
    release_order,
    remaining_hold_s,
    workload_from_host,
)
from tidal.activator.settings import ActivatorSettings

log = logging.getLogger("tidal.activator")
WHOLE_BODY_MAX_BYTES = 64 * 1024
"""A response body of known length up to this size is read whole and sent in one write (no
stream to pass through); anything chunked, larger or ``text/event-stream`` is streamed."""
EVENT_STREAM = "text/event-stream"


class Backends(Protocol):
    async def ready_endpoints(self, workload: WorkloadRef) -> tuple[str, ...]:
        """Base URLs (``http://ip:port``) of the workload's ready instances; () when none.
        Raises ``LookupError`` when the Service is not a workload the activator fronts."""


class SourceNamespaces(Protocol):
    async def namespace_of(self, address: str) -> str | None:
        """The namespace of the pod that has IP ``address``, None when it is not one pod's (a node
        or host-network address, an unknown or ambiguous IP, or the lookup is not allowed)."""


class DemandSink(Protocol):
    async def signal(self, workload: WorkloadRef, report: DemandReport) -> None:
        """Tell the operator about held demand (may raise; the activator logs and retries with
        the next signal)."""


@dataclass(frozen=True)
class Held:
    """One held request: the order it was accepted in, when, and the future its handler awaits."""

    seq: int
    arrived_s: float
    waiter: asyncio.Future[str]


@dataclass
class Gate:
    """Mutable per-workload state of one activator (local to one :class:`Activator`)."""

    ref: WorkloadRef
    held: deque[Held] = field(default_factory=deque)
    accepted: int = 0
    endpoints: tuple[str, ...] = ()
    endpoints_at_s: float = float("-inf")
    turn: int = 0
    poller: asyncio.Task[None] | None = None
    refresher: asyncio.Task[None] | None = None
    arrivals_s: deque[float] = field(default_factory=deque)
    signaller: asyncio.Task[None] | None = None
    signal_pending: bool = False
    last_signal_s: float = float("-inf")
    metrics: ActivatorMetrics | None = None
    _proxied: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Label lookups take a lock each; a gate resolves its series once.
        assert self.metrics is not None
        labels = (self.ref.namespace, self.ref.service)
        self.held_gauge = self.metrics.held.labels(*labels)
        self.wait_histogram = self.metrics.wait_s.labels(*labels)

    def count(self, status: int) -> None:
        """One more forwarded request answered ``status`` (502/504: by the activator)."""
        child = self._proxied.get(status)
        if child is None:
            assert self.metrics is not None
            child = self._proxied[status] = self.metrics.proxied.labels(
                self.ref.namespace, self.ref.service, str(status))
        child.inc()


class Activator:
    """One activator: its gates, its HTTP client and its metrics. Build the app with :meth:`app`."""

    def __init__(
        self,
        settings: ActivatorSettings,
        backends: Backends,
        demand: DemandSink,
        *,
        metrics: ActivatorMetrics | None = None,
        namespaces: SourceNamespaces | None = None,
        monotonic_s: Callable[[], float] = time.monotonic,
        wall_clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.backends = backends
        self.demand = demand
        self.metrics = metrics or ActivatorMetrics()
        self.namespaces = namespaces
        self._now = monotonic_s
        self._wall = wall_clock_s
        self._gates: dict[WorkloadRef, Gate] = {}
        self._session: ClientSession | None = None

    # -- wiring -----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        self._session = ClientSession(
            connector=TCPConnector(limit=0, ttl_dns_cache=30),
            timeout=ClientTimeout(total=None, sock_connect=self.settings.connect_timeout_s),
            auto_decompress=False,
        )

    async def _stop(self, _: web.Application) -> None:
        for gate in self._gates.values():
            for task in (gate.poller, gate.refresher, gate.signaller):
                if task is not None:
                    task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _healthz(self, request: web.Request) -> web.Response:
        if self._is_workload_host(request):
            return await self.handle(request)
        return web.Response(text="ok\n")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self._is_workload_host(request):
            return await self.handle(request)
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    @staticmethod
    def _is_workload_host(request: web.Request) -> bool:
        """A function's own /healthz or /metrics (its Host names a Service) is proxied, not
        answered by the activator."""
        return workload_from_host(request.host) is not None

    def gate(self, ref: WorkloadRef) -> Gate:
        gate = self._gates.get(ref)
        if gate is None:
            gate = self._gates[ref] = Gate(ref, metrics=self.metrics)
        return gate

    # -- requests ---------------------------------------------------------------------------
    async def _bare_host_ref(self, request: web.Request) -> WorkloadRef | None:
        """A bare ``<service>`` Host: the client resolved it in its own namespace (the DNS search
        path), so the Service is in the namespace of the pod the request comes from."""
        service = bare_service_from_host(request.host)
        if service is None or self.namespaces is None or not request.remote:
            return None
        try:
            namespace = await self.namespaces.namespace_of(request.remote)
        except Exception as exc:  # noqa: BLE001 - answered with the 404 that says what to send
            log.warning("namespace of %s: %s", request.remote, exc)
            return None
        return WorkloadRef(namespace, service) if namespace else None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ref = workload_from_host(request.host) or await self._bare_host_ref(request)
        if ref is None:
            return web.Response(
                status=404,
                text=f"tidal activator: Host {request.host!r} names no Service (a bare <service> needs a "
                     "client pod the activator can find by its IP); send requests to <service>.<namespace> "
                     "(or <service>.<namespace>.svc.cluster.local)\n")
        gate = self.gate(ref)
        arrived_s = self._now()
        # Endpoints older than the TTL are not trusted (the function may have gone to zero since):
        # the request is held and the poller looks them up now. Past half the TTL they are
        # refreshed in the background, so steady traffic is rarely held for a lookup.
        age_s = arrived_s - gate.endpoints_at_s
        fresh = age_s <= self.settings.endpoints_ttl_s
        action = admit(ready_endpoints=len(gate.endpoints) if fresh else 0, held=len(gate.held),
                       queue_limit=self.settings.queue_limit)
        if action is Admission.FORWARD:
            if age_s > self.settings.endpoints_ttl_s / 2:
                self._refresh_in_background(gate)
            endpoint = pick_endpoint(gate.endpoints, gate.turn)
            gate.turn += 1
            gate.wait_histogram.observe(0.0)
            return await self._forward(request, ref, endpoint)
        self._record_arrival(gate)
        if action is Admission.REJECT_FULL:
            return self._reject(ref, "queue-full")
        return await self._hold_then_forward(request, gate, arrived_s)

    async def _hold_then_forward(self, request: web.Request, gate: Gate,
                                 arrived_s: float) -> web.StreamResponse:
        ref = gate.ref
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        gate.accepted += 1
        gate.held.append(Held(gate.accepted, arrived_s, waiter))
        gate.held_gauge.inc()
        self._signal(gate)
        if gate.poller is None or gate.poller.done():
            gate.poller = asyncio.create_task(self._poll(gate), name=f"activator-poll-{ref}")
        try:
            endpoint = await asyncio.wait_for(waiter, remaining_hold_s(
                arrived_s=arrived_s, now_s=self._now(), hold_timeout_s=self.settings.hold_timeout_s))
        except asyncio.TimeoutError:
            self._drop(gate, waiter)
            return self._reject(ref, "timeout")
        except asyncio.CancelledError:  # the client went away while held
            self._drop(gate, waiter)
            raise
        gate.wait_histogram.observe(self._now() - arrived_s)
        return await self._forward(request, ref, endpoint)

    def _drop(self, gate: Gate, waiter: asyncio.Future[str]) -> None:
        kept = [h for h in gate.held if h.waiter is not waiter]
        if len(kept) == len(gate.held):
            return  # already released
        gate.held = deque(kept)
        gate.held_gauge.dec()

    def _reject(self, ref: WorkloadRef, reason: str) -> web.Response:
        self.metrics.rejected.labels(ref.namespace, ref.service, reason).inc()
        what = ("too many requests are waiting" if reason == "queue-full"
                else f"no instance became ready within {self.settings.hold_timeout_s:g}s")
        return web.Response(status=503, text=f"tidal activator: {ref}: {what}; retry\n",
                            headers={"Retry-After": str(self.settings.retry_after_s)})

    # -- endpoints --------------------------------------------------------------------------
    async def _lookup(self, gate: Gate) -> tuple[str, ...]:
        try:
            endpoints = await self.backends.ready_endpoints(gate.ref)
        except LookupError as exc:
            log.warning("%s: %s", gate.ref, exc)
            endpoints = ()
        except Exception as exc:  # noqa: BLE001 - an API hiccup must not fail the held requests
            log.warning("%s: endpoint lookup failed: %s", gate.ref, exc)
            return gate.endpoints
        gate.endpoints = tuple(endpoints)
        gate.endpoints_at_s = self._now()
        return gate.endpoints

    async def _poll(self, gate: Gate) -> None:
        """While requests are held: look for a ready endpoint, then release them in order."""
        while gate.held:
            endpoints = await self._lookup(gate)
            if endpoints:
                self._release(gate)
                return
            await asyncio.sleep(self.settings.backend_poll_interval_s)

    def _release(self, gate: Gate) -> None:
        """Forward every held request, first arrived first (each waiter resumes in this order)."""
        gauge = gate.held_gauge
        held, gate.held = list(gate.held), deque()
        for index in release_order([(h.seq, h.arrived_s) for h in held]):
            waiter = held[index].waiter
            gauge.dec()
            if not waiter.done():
                waiter.set_result(pick_endpoint(gate.endpoints, gate.turn))
                gate.turn += 1

    def _refresh_in_background(self, gate: Gate) -> None:
        if gate.refresher is None or gate.refresher.done():
            gate.refresher = asyncio.create_task(self._lookup(gate))

    # -- demand -----------------------------------------------------------------------------
    def _record_arrival(self, gate: Gate) -> None:
        gate.arrivals_s.append(self._wall())
        while len(gate.arrivals_s) > self.settings.arrivals_reported:
            gate.arrivals_s.popleft()

    def _signal(self, gate: Gate) -> None:
        """Report demand now if the last report is older than the signal interval, else once
        the interval has passed (one writer task per workload)."""
        gate.signal_pending = True
        if gate.signaller is None or gate.signaller.done():
            gate.signaller = asyncio.create_task(self._signaller(gate))

    async def _signaller(self, gate: Gate) -> None:
        ref = gate.ref
        while gate.signal_pending:
            wait_s = gate.last_signal_s + self.settings.demand_signal_interval_s - self._now()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            gate.signal_pending = False
            gate.last_signal_s = self._now()
            report = DemandReport(tuple(gate.arrivals_s), len(gate.held), self._wall())
            try:
                await self.demand.signal(ref, report)
            except Exception as exc:  # noqa: BLE001 - logged and counted; the next arrival retries
                self.metrics.demand_signals.labels(ref.namespace, ref.service, "error").inc()
                log.warning("%s: demand signal failed: %s", ref, exc)
                if gate.held:
                    gate.signal_pending = True
            else:
                self.metrics.demand_signals.labels(ref.namespace, ref.service, "ok").inc()

    # -- forwarding -------------------------------------------------------------------------
    async def _forward(self, request: web.Request, ref: WorkloadRef,
                       endpoint: str) -> web.StreamResponse:
        assert self._session is not None, "the activator's app has not started"
        headers = forwarded_headers(list(request.headers.items()))
        peer = request.remote
        if peer:
            prior = request.headers.get("X-Forwarded-For")
            headers = [(k, v) for k, v in headers if k.lower() != "x-forwarded-for"]
            headers.append(("X-Forwarded-For", f"{prior}, {peer}" if prior else peer))
        gate = self.gate(ref)
        deadline_s = self._now() + self.settings.connect_retry_s
        attempt = 0
        try:
            while True:
                try:
                    async with asyncio.timeout(self.settings.response_header_timeout_s):
                        upstream = await self._session.request(
                            request.method, endpoint + request.rel_url.raw_path_qs, headers=headers,
                            data=request.content if request.body_exists else None,
                            allow_redirects=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
                    break
                except (ClientConnectorError, ConnectionTimeoutError):
                    # Not connected, so nothing was sent: safe to try again (a new instance's
                    # accept queue overflows under a burst), within the retry budget. If the
                    # instance is gone (scaled to zero), the request is held for a new one.
                    if not await self._lookup(gate):
                        return await self._hold_then_forward(request, gate, self._now())
                    delay_s = connect_retry_delay_s(attempt)
                    if self._now() + delay_s >= deadline_s:
                        raise
                    attempt += 1
                    await asyncio.sleep(delay_s)
                    endpoint = pick_endpoint(gate.endpoints, gate.turn)
                    gate.turn += 1
        except ClientError as exc:  # before TimeoutError: aiohttp's connect timeout is both
            gate.count(502)
            return web.Response(status=502, text=f"tidal activator: {ref}: {endpoint}: {exc}\n")
        except asyncio.TimeoutError:
            gate.count(504)
            return web.Response(status=504, text=f"tidal activator: {ref}: no response headers "
                                f"within {self.settings.response_header_timeout_s:g}s\n")
        except OSError as exc:
            gate.count(502)
            return web.Response(status=502, text=f"tidal activator: {ref}: {endpoint}: {exc}\n")
        try:
            response_headers = forwarded_headers(list(upstream.headers.items()))
            length = upstream.content_length
            if length is not None and length <= WHOLE_BODY_MAX_BYTES and upstream.content_type != EVENT_STREAM:
                # A small body of known length is no stream: one read, one write.
                body = await upstream.read()
                response: web.StreamResponse = web.Response(
                    status=upstream.status, reason=upstream.reason, body=body,
                    headers=[(k, v) for k, v in response_headers if k.lower() != "content-length"])
            else:  # chunked, SSE or large: pass every chunk on as it arrives
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for key, value in response_headers:
                    response.headers.add(key, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
        finally:
            upstream.release()
        gate.count(upstream.status)
        return response


async def serve(activator: Activator, *, shutdown: asyncio.Event | None = None) -> None:
    """Run the activator's HTTP server until ``shutdown`` is set (forever without one)."""
    runner = web.AppRunner(activator.app(), access_log=None,
                           shutdown_timeout=activator.settings.hold_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, activator.settings.bind_address, activator.settings.port,
                       backlog=4096, reuse_address=True)
    await site.start()
    log.info("tidal activator listening on %s:%d", activator.settings.bind_address,
             activator.settings.port)
    try:
        await (shutdown or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
