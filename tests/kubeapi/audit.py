"""The audit log: one record per API request, in Kubernetes RBAC terms.

Tests use it to assert that the operator's RBAC rules cover exactly the requests it makes:
``rbac_triples()`` gives (apiGroup, resource[/subresource], verb) like a ClusterRole rule lists them.
"""

from __future__ import annotations

import dataclasses
import threading


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    group: str
    resource: str
    subresource: str
    namespace: str  # "" for cluster-scoped or cluster-wide requests
    name: str
    code: int
    user_agent: str


class AuditLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[AuditRecord] = []

    def record(self, record: AuditRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[AuditRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def rbac_triples(self) -> set[tuple[str, str, str]]:
        """(apiGroup, resource or resource/subresource, verb) of every request made so far."""
        return {
            (r.group, f"{r.resource}/{r.subresource}" if r.subresource else r.resource, r.verb)
            for r in self.records()
        }
