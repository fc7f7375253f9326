"""Shared field types for tidal's custom resources.

Durations and quantities are strings in the Kubernetes style (``30s``, ``5m``,
``80Gi``) because that is what users write in every other manifest; the
patterns live here once so the pydantic models and the generated CRD schemas
enforce exactly the same grammar.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
"""Go-style durations restricted to ms, s, m and h (``1h30m``, ``250ms``), as in metav1.Duration."""

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
"""The decimal/binary-SI subset of Kubernetes resource.Quantity used for memory sizes."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

_DURATION_UNITS_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_QUANTITY_SUFFIX = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}

Duration = Annotated[
    str,
    StringConstraints(pattern=DURATION_PATTERN, max_length=32),
    Field(json_schema_extra={"x-tidal-format": "duration"}),
]
Quantity = Annotated[
    str,
    StringConstraints(pattern=QUANTITY_PATTERN, max_length=32),
    Field(json_schema_extra={"x-tidal-format": "quantity"}),
]
DnsLabel = Annotated[str, StringConstraints(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]


def parse_duration_s(text: str) -> float:
    """Seconds in a duration string; raises ValueError naming the accepted grammar."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use a number with ms, s, m or h, e.g. '30s' or '1h30m'")
    return sum(float(n) * _DURATION_UNITS_S[u] for n, u in _DURATION_PART.findall(text))


def parse_quantity_bytes(text: str) -> float:
    """Bytes in a quantity string such as ``80Gi`` or ``512M``."""
    match = re.fullmatch(QUANTITY_PATTERN, text)
    if not match:
        raise ValueError(f"invalid quantity {text!r}: use a number with an optional suffix like Mi, Gi or G")
    suffix = match.group(2) or ""
    return float(text[: len(text) - len(suffix)]) * _QUANTITY_SUFFIX[suffix]


class ApiModel(BaseModel):
    """Base for every spec/status object: camelCase on the wire, unknown fields rejected.

    Unknown fields are rejected (not pruned) because a typo such as
    ``minReplica`` silently ignored is the worst kind of misconfiguration; this
    mirrors the API server's strict field validation that kubectl requests.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class StatusModel(ApiModel):
    """Status objects are written by the operator only; unknown fields are tolerated on read."""

    model_config = ConfigDict(extra="ignore")


class Condition(StatusModel):
    """A standard Kubernetes condition (metav1.Condition shape)."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


CONDITIONS_LIST_MAP = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
"""``status.conditions`` is a map keyed by ``type`` (as metav1.Condition lists are declared with
``+listType=map``, ``+listMapKey=type``): one condition per type, and server-side apply merges
conditions by type instead of replacing the whole list."""


DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
"""RFC 1123 label, as Kubernetes validates namespace names (apimachinery validation.IsDNS1123Label)."""
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
"""RFC 1123 subdomain, as the API server validates custom objects' names (IsDNS1123Subdomain)."""
DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253


def _dns_name_problem(value: str, pattern: str, max_length: int, what: str, allowed: str, example: str) -> str | None:
    if len(value) > max_length:
        return f"{value!r} is {len(value)} characters; a {what} has at most {max_length}"
    if re.fullmatch(pattern, value) is None:
        return (f"{value!r} is not a lowercase {what}: use {allowed}, starting and ending with a letter "
                f"or digit (e.g. {example!r})")
    return None


class ObjectMeta(BaseModel):
    """The part of metadata tidal validates; everything else is the API server's business.

    ``name`` and ``namespace`` follow the API server's own rules (an RFC 1123 subdomain and label), so
    ``tidal validate`` rejects what ``kubectl apply`` would."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None

    @field_validator("name")
    @classmethod
    def _name_is_subdomain(cls, value: str | None) -> str | None:
        if value is not None:
            problem = _dns_name_problem(value, DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX, "RFC 1123 subdomain",
                                        "lowercase letters, digits, '-' and '.'", "llama-8b")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_is_label(cls, value: str | None) -> str | None:
        if value is not None:
            problem = _dns_name_problem(value, DNS1123_LABEL, DNS1123_LABEL_MAX, "RFC 1123 label",
                                        "lowercase letters, digits and '-'", "team-a")
            if problem:
                raise ValueError(problem)
        return value


def cel_rules(*rules: tuple[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules (rule, message) for the generated CRD."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


def unique_names(names: list[str]) -> list[str]:
    """Reject duplicates, as the API server does for ``x-kubernetes-list-type: set``."""
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate entries in a list of type set: {', '.join(duplicates)}")
    return names
