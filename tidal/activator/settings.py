"""Every tunable of the activator, with its meaning and source (Knative's config package is the model).

The numbers follow Knative Serving's activator (``pkg/activator``, ``cmd/activator``) and the KEDA
HTTP add-on's interceptor (keda.sh/http-add-on, "Environment variables", "Configure the
Interceptor") where they have one; tidal's own choices say so.
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP_PORT = 8012
"""Knative's activator serves HTTP/1 on port 8012 (``networking.BackendHTTPPort``)."""
QUEUE_LIMIT = 10_000
"""Requests held per workload and activator replica before 503s: Knative's activator
``breakerQueueDepth = 10000`` ("the number of requests that are queued on the breaker before the
503s are sent"). KEDA's ``KEDA_HTTP_COLD_START_MAX_PENDING_REQUESTS`` defaults to 0 = unlimited,
which the issue rules out (never an unbounded buffer)."""
HOLD_TIMEOUT_S = 300.0
"""Longest a request is held for a ready instance before a 503: Knative bounds the activator's
wait by the revision's request timeout, ``revision-timeout-seconds: 300``. (KEDA's readiness
timeout is 0 = bounded only by the request timeout, itself 0 = none.)"""
RETRY_AFTER_S = 1
"""``Retry-After`` on a 503 (tidal's choice; Knative sends none): a function's cold start is
seconds, so one second lets a client retry into the instance that is starting."""
BACKEND_POLL_INTERVAL_S = 0.2
"""How often the ready endpoints of a workload with held requests are looked up: Knative's
activator probes new pods every 200 ms (``probeFrequency`` in ``pkg/activator/net``)."""
ENDPOINTS_TTL_S = 1.0
"""How long a looked-up list of ready endpoints is trusted for requests that arrive while the
workload is warm (clients that keep a connection to the activator after the Service switched
back): refreshed in the background after half of it, and past it a request is held while the
endpoints are looked up (the function may have gone to zero). tidal's choice, five Knative probe
periods."""
CONNECT_TIMEOUT_S = 0.5
"""TCP connect timeout to a backend: KEDA interceptor ``KEDA_HTTP_CONNECT_TIMEOUT: 500ms``."""
CONNECT_RETRY_S = 10.0
"""How long connection failures to an instance are retried (50 ms doubling to 1 s between tries,
``queueing.connect_retry_delay_s``): tidal's choice. A request that was never sent can safely be
tried again, and a freshly started instance refuses or drops connections for a moment under a
burst of hundreds (measured in tests/activator/test_scale_from_zero.py); an instance that stays
unreachable this long gets a 502."""
RESPONSE_HEADER_TIMEOUT_S = 300.0
"""Longest wait for a backend's response headers: KEDA ``KEDA_HTTP_RESPONSE_HEADER_TIMEOUT: 300s``
(and Knative's 300 s request timeout). The body then streams without a deadline."""
DEMAND_SIGNAL_INTERVAL_S = 0.25
"""Least time between two demand annotations for one workload (tidal's choice): the first
request of a burst is signalled at once, the rest are batched, so a 500-request burst costs a
handful of API writes, and the operator hears of demand well within 1 s."""
ARRIVALS_REPORTED = 64
"""Arrival timestamps the demand annotation carries (tidal's choice, the keep-alive policy's bound
on rank steps, ``keepalive.MAX_RANK_STEPS``): enough for every tick's exact idle gap, bounded."""
SHUTDOWN_GRACE_S = 5.0
"""Seconds a terminating activator keeps serving while endpoints drop it: the same preStop
allowance as function instances (``serverlessfunction.PRESTOP_DELAY_S``) and KEDA's
``KEDA_HTTP_SHUTDOWN_DELAY: 5s``."""


@dataclass(frozen=True)
class ActivatorSettings:
    """One activator process's configuration (``tidal activator`` flags, chart ``activator.*``)."""

    port: int = HTTP_PORT
    bind_address: str = "0.0.0.0"
    queue_limit: int = QUEUE_LIMIT
    hold_timeout_s: float = HOLD_TIMEOUT_S
    retry_after_s: int = RETRY_AFTER_S
    backend_poll_interval_s: float = BACKEND_POLL_INTERVAL_S
    endpoints_ttl_s: float = ENDPOINTS_TTL_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    connect_retry_s: float = CONNECT_RETRY_S
    response_header_timeout_s: float = RESPONSE_HEADER_TIMEOUT_S
    demand_signal_interval_s: float = DEMAND_SIGNAL_INTERVAL_S
    arrivals_reported: int = ARRIVALS_REPORTED
    replica_name: str = "activator"
    """This replica's name (the pod name in a cluster): the key of its demand annotation."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.port < 65536:
            problems.append(f"port: {self.port} is not a TCP port (1-65535)")
        if self.queue_limit < 1:
            problems.append(f"queue_limit: {self.queue_limit}; hold at least 1 request per workload")
        for name in ("hold_timeout_s", "backend_poll_interval_s", "connect_timeout_s",
                     "response_header_timeout_s"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}: {getattr(self, name)}; must be > 0 seconds")
        for name in ("endpoints_ttl_s", "demand_signal_interval_s", "connect_retry_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name}: {getattr(self, name)}; must be >= 0 seconds")
        if self.retry_after_s < 0:
            problems.append(f"retry_after_s: {self.retry_after_s}; must be >= 0 seconds")
        if self.arrivals_reported < 1:
            problems.append(f"arrivals_reported: {self.arrivals_reported}; must be >= 1")
        if problems:
            raise ValueError("invalid activator settings: " + "; ".join(problems))
