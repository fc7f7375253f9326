"""Label and field selectors, parsed from query strings and matched against objects.

Grammar as in k8s.io/apimachinery/pkg/labels: comma-separated requirements, each one of
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists), ``!k`` (absent).
Field selectors support ``=``, ``==`` and ``!=`` on metadata.name and metadata.namespace (the fields
every resource supports), plus a few per-kind fields clients commonly use.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.kubeapi.errors import bad_request

# A requirement's key: an optional DNS prefix, then a name (labels validation rules).
_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "=":
            return present and value in self.values
        if self.op == "!=":
            return not present or value not in self.values
        if self.op == "in":
            return present and value in self.values
        if self.op == "notin":
            return not present or value not in self.values
        if self.op == "exists":
            return present
        return not present  # "!exists"


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` set-value lists."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    requirements = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m.group(4).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(3), values))
        elif m := _EQ_RE.match(part):
            op = "=" if m.group(3) in ("=", "==") else "!="
            requirements.append(Requirement(m.group(1), op, frozenset([m.group(4)])))
        elif m := _EXISTS_RE.match(part):
            requirements.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: {part.strip()!r} in labelSelector {text!r}")
    return requirements


def selector_from_label_selector_object(selector: Mapping[str, Any] | None) -> str:
    """Render a ``metav1.LabelSelector`` (matchLabels/matchExpressions) as a selector string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = expr["operator"]
        values = ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr['key']} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr['key']} notin ({values})")
        elif op == "Exists":
            parts.append(expr["key"])
        elif op == "DoesNotExist":
            parts.append(f"!{expr['key']}")
    return ",".join(parts)


# Fields selectable per kind beyond metadata.name/namespace (a subset of kube-apiserver's).
_FIELD_GETTERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name", ""),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "status.podIP": lambda o: (o.get("status") or {}).get("podIP", ""),
    "spec.hostNetwork": lambda o: str(bool((o.get("spec") or {}).get("hostNetwork"))).lower(),
}
# Events are stored as written (core/v1 involvedObject or events.k8s.io/v1 regarding); both
# spellings select on either form.
for _field in ("name", "namespace", "uid", "kind"):
    for _prefix in ("involvedObject", "regarding"):
        _FIELD_GETTERS[f"{_prefix}.{_field}"] = (
            lambda o, f=_field: (o.get("involvedObject") or o.get("regarding") or {}).get(f, "")
        )
for _same in ("reason", "type"):
    _FIELD_GETTERS[_same] = lambda o, a=_same: str(o.get(a) or "")


@dataclasses.dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = _FIELD_GETTERS[self.field](obj)
        return (actual != self.value) if self.negate else (actual == self.value)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    if not text:
        return []
    requirements = []
    for part in text.split(","):
        if not part.strip():
            continue
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: {part!r} in fieldSelector {text!r}")
        field = m.group(1)
        if field not in _FIELD_GETTERS:
            raise bad_request(
                f'field label not supported: "{field}" (supported: {", ".join(sorted(_FIELD_GETTERS))})'
            )
        requirements.append(FieldRequirement(field, m.group(2) == "!=", m.group(3)))
    return requirements


@dataclasses.dataclass(frozen=True)
class Filter:
    """Everything a list or watch request narrows its results by."""

    namespace: str | None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        labels = meta.get("labels") or {}
        return all(r.matches(labels) for r in self.labels) and all(
            r.matches(obj) for r in self.fields
        )
