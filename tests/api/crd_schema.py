"""Validate a manifest against a generated CRD the way the API server does.

Order as in kube-apiserver: object metadata (the name an RFC 1123 subdomain, the namespace an RFC
1123 label: apimachinery's ValidateObjectMeta with NameIsDNSSubdomain), structural defaulting, OpenAPI v3 schema
validation with strict field validation (unknown fields rejected, as kubectl's
default ``--validate=strict`` asks), list-type ``set`` uniqueness, then the CEL
``x-kubernetes-validations`` rules. CEL runs on cel-python with the Kubernetes
list extension's ``sum()`` added.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import celpy
import jsonschema


@dataclass(frozen=True)
class SchemaError:
    path: str
    message: str


def _join(path: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else part


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Structural defaulting: fill absent properties that carry a default, recursively."""
    if isinstance(obj, dict) and schema.get("type") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                obj[name] = apply_defaults(sub, obj[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(obj):
                obj[key] = apply_defaults(extra, obj[key])
    elif isinstance(obj, list) and schema.get("type") == "array":
        return [apply_defaults(schema.get("items", {}), item) for item in obj]
    return obj


def _strict(schema: Any) -> Any:
    """Copy with ``additionalProperties: false`` on every object that lists properties."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _schema_errors(schema: dict[str, Any], obj: Any) -> list[SchemaError]:
    validator = jsonschema.Draft4Validator(_strict(schema))
    errors = []
    for err in validator.iter_errors(obj):
        path = ""
        for part in err.absolute_path:
            path = _join(path, part)
        if err.validator == "additionalProperties":
            allowed = set((err.schema.get("properties") or {}))
            for name in sorted(set(err.instance) - allowed):
                errors.append(SchemaError(_join(path, name), "unknown field"))
        elif err.validator == "required":
            missing = err.message.split("'")[1]
            errors.append(SchemaError(_join(path, missing), "required field is missing"))
        else:
            errors.append(SchemaError(path, err.message))
    return errors


def _walk(schema: dict[str, Any], obj: Any, path: str):
    """Yield (schema node, value, path) for every value present in ``obj``."""
    yield schema, obj, path
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if key in props:
                yield from _walk(props[key], value, _join(path, key))
            elif isinstance(extra, dict):
                yield from _walk(extra, value, _join(path, key))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _walk(schema.get("items", {}), item, _join(path, i))


def _k8s_sum(values: Any) -> Any:
    total = sum(values)
    return celpy.celtypes.IntType(total) if isinstance(total, int) else celpy.celtypes.DoubleType(total)


_CEL_ENV = celpy.Environment()


def _cel_errors(schema: dict[str, Any], obj: Any) -> list[SchemaError]:
    errors = []
    for node, value, path in _walk(schema, obj, ""):
        for rule in node.get("x-kubernetes-validations", []):
            program = _CEL_ENV.program(_CEL_ENV.compile(rule["rule"]), functions={"sum": _k8s_sum})
            try:
                ok = bool(program.evaluate({"self": celpy.json_to_cel(value)}))
            except Exception as exc:  # a rule that errors rejects the object, as in the API server
                ok, rule = False, {"message": f"{rule['message']} (rule error: {exc})"}
            if not ok:
                errors.append(SchemaError(path, rule["message"]))
    return errors


def _set_errors(schema: dict[str, Any], obj: Any) -> list[SchemaError]:
    errors = []
    for node, value, path in _walk(schema, obj, ""):
        if node.get("x-kubernetes-list-type") == "set" and isinstance(value, list):
            if len({repr(v) for v in value}) != len(value):
                errors.append(SchemaError(path, "duplicate entries in a list of type set"))
    return errors


_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*"


def _meta_errors(manifest: dict[str, Any]) -> list[SchemaError]:
    """The API server's own metadata checks (messages as apimachinery words them)."""
    meta = manifest.get("metadata") or {}
    errors = []
    name = meta.get("name")
    if isinstance(name, str) and (len(name) > 253 or not re.fullmatch(_DNS1123_SUBDOMAIN, name)):
        errors.append(SchemaError("metadata.name", "a lowercase RFC 1123 subdomain must consist of lower case "
                                  "alphanumeric characters, '-' or '.', and must start and end with an "
                                  "alphanumeric character"))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and (len(namespace) > 63 or not re.fullmatch(_DNS1123_LABEL, namespace)):
        errors.append(SchemaError("metadata.namespace", "a lowercase RFC 1123 label must consist of lower case "
                                  "alphanumeric characters or '-', and must start and end with an alphanumeric "
                                  "character"))
    return errors


def validate_against_crd(crd: dict[str, Any], manifest: dict[str, Any]) -> list[SchemaError]:
    """Every error the API server would report for ``manifest`` (empty when accepted)."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    obj = apply_defaults(schema, copy.deepcopy(manifest))
    errors = _meta_errors(manifest) + _schema_errors(schema, obj) + _set_errors(schema, obj)
    if errors:
        return errors
    return _cel_errors(schema, obj)
