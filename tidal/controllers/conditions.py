"""Status conditions with metav1.Condition semantics, shared by every controller.

Why one module: ``lastTransitionTime`` must move only when a condition's status flips, so watchers
(and `kubectl wait`) can tell how long a state has lasted; the ModelDeployment status and the three
other controllers all follow that one rule from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from tidal.api.types import Condition


def rfc3339(now: datetime | float) -> str:
    """A datetime or Unix seconds as the API's timestamp format (seconds, UTC)."""
    when = now if isinstance(now, datetime) else datetime.fromtimestamp(now, tz=timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def last_transition(previous: Mapping[str, Any] | None, status: str, now: datetime | float) -> str:
    """The previous ``lastTransitionTime`` while the status is unchanged, else now."""
    if previous and previous.get("status") == status and previous.get("lastTransitionTime"):
        return str(previous["lastTransitionTime"])
    return rfc3339(now)


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """Conditions with ``type_`` set; ``lastTransitionTime`` changes only when the status flips
    (metav1.Condition semantics), so watchers can tell how long a state has lasted."""
    value = status if isinstance(status, str) else ("True" if status else "False")
    out: list[dict[str, Any]] = []
    found = False
    for existing in conditions:
        if existing.get("type") != type_:
            out.append(dict(existing))
            continue
        found = True
        out.append(
            _condition(
                type_, value, reason, message, last_transition(existing, value, now), generation
            )
        )
    if not found:
        out.append(_condition(type_, value, reason, message, rfc3339(now), generation))
    return out


def _condition(
    type_: str, value: str, reason: str, message: str, when: str, generation: int | None
) -> dict[str, Any]:
    cond = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    Condition.model_validate(cond)  # fail here, not at the API server, on a malformed condition
    return cond
