"""Pure decisions of the activator: which workload a request is for, whether it is admitted to the
hold queue, how long it may still wait, where it goes. The server (``server.py``) does the I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass

CLUSTER_DOMAIN_SUFFIXES = (".svc.cluster.local", ".svc")
"""What a Kubernetes client may append to ``<service>.<namespace>`` in the Host header (the
default cluster domain ``cluster.local``; a custom domain arrives as ``.svc.<domain>``)."""
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


@dataclass(frozen=True, order=True)
class WorkloadRef:
    """The Service a request was sent to: the activator holds and forwards per Service."""

    namespace: str
    service: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}"


def workload_from_host(host: str | None) -> WorkloadRef | None:
    """The Service named by a Host header: ``<service>.<namespace>``, optionally followed by
    ``.svc``, ``.svc.<cluster domain>`` and a port. A bare ``<service>`` names no namespace, so it
    is None (the caller answers 404 and says to use ``<service>.<namespace>``)."""
    if not host:
        return None
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal names no Service
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    name = name.rstrip(".")
    parts = name.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        parts = parts[:2]
    if len(parts) != 2 or not all(re.fullmatch(_LABEL, p) and len(p) <= 63 for p in parts):
        return None
    return WorkloadRef(namespace=parts[1], service=parts[0])


def bare_service_from_host(host: str | None) -> str | None:
    """The Service a bare ``<service>`` Host names (a client resolved the short name through its
    own namespace's DNS search path), else None: an FQDN, an IP literal or no Host."""
    if not host:
        return None
    name = host.strip().lower()
    if name.startswith("["):
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    if "." in name or not re.fullmatch(_LABEL, name) or len(name) > 63 or name == "localhost":
        return None
    return name


class Admission(enum.Enum):
    FORWARD = "forward"
    """A ready endpoint is known and nobody is held before this request: forward now."""
    HOLD = "hold"
    """No ready endpoint (or requests are held before it, which it must not overtake): hold."""
    REJECT_FULL = "queue-full"
    """The workload's hold queue is at its limit: 503 with Retry-After."""


def admit(*, ready_endpoints: int, held: int, queue_limit: int) -> Admission:
    """What to do with a request that just arrived. FIFO: while anything is held, a new request
    queues behind it even if an endpoint became ready in between (the release is in order)."""
    if ready_endpoints > 0 and held == 0:
        return Admission.FORWARD
    if held >= queue_limit:
        return Admission.REJECT_FULL
    return Admission.HOLD


def remaining_hold_s(*, arrived_s: float, now_s: float, hold_timeout_s: float) -> float:
    """Seconds a request that arrived at ``arrived_s`` may still be held (0: reject it now)."""
    return max(0.0, arrived_s + hold_timeout_s - now_s)


def release_order(arrivals: Sequence[tuple[int, float]]) -> list[int]:
    """Indices of held requests ``(sequence number, arrival time)`` in the order they are
    forwarded: arrival order, ties by sequence number (the order the activator accepted them)."""
    return [i for i, _ in sorted(enumerate(arrivals), key=lambda item: (item[1][1], item[1][0]))]


def pick_endpoint(endpoints: Sequence[str], turn: int) -> str:
    """Round-robin over the ready endpoints (Knative's activator balances the same way when a
    revision has no container-concurrency limit)."""
    if not endpoints:
        raise ValueError("pick_endpoint: no ready endpoints to choose from")
    return endpoints[turn % len(endpoints)]


CONNECT_RETRY_FIRST_S = 0.05
CONNECT_RETRY_MAX_S = 1.0


def connect_retry_delay_s(attempt: int) -> float:
    """Pause before connection attempt ``attempt + 1`` to a backend that refused or did not accept
    in time: 50 ms doubling to at most 1 s (the shape of Knative's activator retries of a new
    pod, tidal's numbers; the caller stops at the hold timeout)."""
    return min(CONNECT_RETRY_FIRST_S * 2 ** max(attempt, 0), CONNECT_RETRY_MAX_S)


HOP_BY_HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade",
})
"""RFC 9110 section 7.6.1: connection-specific headers a proxy must not forward."""


def forwarded_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers to pass on: without hop-by-hop headers and those the Connection header names."""
    named = {
        token.strip().lower()
        for key, value in headers if key.lower() == "connection"
        for token in value.split(",")
    }
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP_HEADERS and k.lower() not in named]
