"""Turn a raw manifest into a typed resource, or into errors that name the field and the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import ValidationError

from tidal.api.registry import API_VERSION, GROUP as API_GROUP, KINDS_BY_NAME
from tidal.api.types import ApiModel


@dataclass(frozen=True)
class FieldError:
    """One problem in a resource: where (``spec.pools.unified.minReplicas``) and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidResource(ValueError):
    """A resource that tidal cannot act on; carries every field error found, not just the first."""

    def __init__(self, kind: str, name: str | None, errors: list[FieldError]):
        self.kind, self.name, self.errors = kind, name, errors
        what = f"{kind} {name!r}" if name else kind
        super().__init__(f"invalid {what}: " + "; ".join(str(e) for e in errors))


def format_loc(loc: tuple[Any, ...]) -> str:
    """``('spec', 'tenants', 2, 'name')`` -> ``spec.tenants[2].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling against docs/reference.md"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        return f"unsupported value {error.get('input')!r}: {error['msg'].lower()}"
    if kind == "string_pattern_mismatch":
        return f"value {error.get('input')!r} does not match the required format {error['ctx']['pattern']}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def errors_from(exc: ValidationError) -> list[FieldError]:
    return [FieldError(format_loc(tuple(e["loc"])), _message(e)) for e in exc.errors()]


def parse_resource(obj: Mapping[str, Any], *, strict: bool = False) -> ApiModel:
    """Validate a manifest of any tidal kind; raise :class:`InvalidResource` listing every problem.

    ``strict``: judge the manifest as the API server does, on its JSON types: ``maxReplicas: "3"``
    and ``prewarm: "yes"`` are errors (pydantic's default lax mode would coerce them). ``tidal
    validate`` is strict; the operator reads objects the API server already checked."""
    if not isinstance(obj, Mapping):
        raise InvalidResource("resource", None, [FieldError("", "a resource must be a mapping")])
    kind = obj.get("kind")
    name = (obj.get("metadata") or {}).get("name") if isinstance(obj.get("metadata"), Mapping) else None
    info = KINDS_BY_NAME.get(kind) if isinstance(kind, str) else None
    if info is None:
        choices = ", ".join(sorted(KINDS_BY_NAME))
        raise InvalidResource(str(kind), name, [FieldError("kind", f"unknown kind {kind!r}; expected one of {choices}")])
    if obj.get("apiVersion") != API_VERSION:
        raise InvalidResource(info.kind, name, [FieldError("apiVersion", f"must be {API_VERSION}, got {obj.get('apiVersion')!r}")])
    try:
        if strict:
            # YAML timestamps and the like become strings, as kubectl's YAML-to-JSON conversion does.
            return info.model.model_validate_json(json.dumps(obj, default=str), strict=True)
        return info.model.model_validate(dict(obj))
    except ValidationError as exc:
        raise InvalidResource(info.kind, name, errors_from(exc)) from None


def is_tidal_object(obj: Any) -> bool:
    """Whether ``obj`` claims tidal's API group (``apiVersion: tidal.dev/...``); other objects in
    the same files (Namespaces, Secrets, other operators' kinds) are not tidal's to judge."""
    if not isinstance(obj, Mapping):
        return False
    api_version = obj.get("apiVersion")
    return isinstance(api_version, str) and api_version.split("/", 1)[0] == API_GROUP


def parse_spec(kind: str, spec: Mapping[str, Any]) -> ApiModel:
    """Validate just a ``spec`` (what kopf hands a handler); errors are prefixed with ``spec.``."""
    info = KINDS_BY_NAME[kind]
    spec_model = info.model.model_fields["spec"].annotation
    try:
        return spec_model.model_validate(dict(spec))  # type: ignore[union-attr]
    except ValidationError as exc:
        errors = [FieldError(("spec." + e.path) if e.path else "spec", e.message) for e in errors_from(exc)]
        raise InvalidResource(kind, None, errors) from None
