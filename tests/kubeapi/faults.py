"""Fault injection: make the next N matching requests fail or stall, to test client retries.

    server.faults.inject(verb="patch", resource="deployments", status=409, times=2)
    server.faults.inject(verb="get", resource="modeldeployments", delay_s=5.0)  # a timeout

A rule matches on RBAC-style verb and resource (and optionally group, subresource, namespace);
``None`` matches anything. A delay happens before the request is handled; with a status as well
the request then fails, otherwise it proceeds normally after the delay.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from tests.kubeapi.errors import ApiError

# Reasons kube-apiserver uses for these codes (k8s.io/apimachinery/pkg/apis/meta/v1 StatusReason).
_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclasses.dataclass
class FaultRule:
    verb: str | None
    resource: str | None
    group: str | None
    subresource: str | None
    namespace: str | None
    status: int | None
    delay_s: float
    remaining: int
    message: str

    def matches(self, request: dict[str, Any]) -> bool:
        return all(
            wanted is None or wanted == request.get(field)
            for field, wanted in (
                ("verb", self.verb),
                ("resource", self.resource),
                ("group", self.group),
                ("subresource", self.subresource),
                ("namespace", self.namespace),
            )
        )

    def error(self) -> ApiError | None:
        if self.status is None:
            return None
        return ApiError(self.status, _REASONS.get(self.status, "InternalError"), self.message)


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def inject(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        group: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        status: int | None = None,
        delay_s: float = 0.0,
        times: int = 1,
        message: str = "injected fault",
    ) -> FaultRule:
        if status is None and delay_s <= 0:
            raise ValueError("a fault needs a status (e.g. 409, 500) or a delay_s > 0")
        if times < 1:
            raise ValueError(f"times must be >= 1, got {times}")
        rule = FaultRule(verb, resource, group, subresource, namespace, status, delay_s, times, message)
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, request: dict[str, Any]) -> FaultRule | None:
        """The first live rule matching ``request``, consuming one of its uses."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining > 0 and rule.matches(request):
                    rule.remaining -= 1
                    return rule
        return None

    def pending(self) -> int:
        """How many injected failures have not fired yet."""
        with self._lock:
            return sum(r.remaining for r in self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
