"""Structural-schema handling for custom resources: defaulting, pruning, validation, CEL rules.

kube-apiserver applies a CRD's ``openAPIV3Schema`` to every write: it fills ``default`` values,
prunes fields the schema does not declare (unless ``x-kubernetes-preserve-unknown-fields``), then
validates and evaluates ``x-kubernetes-validations`` CEL rules, answering 422 Invalid on failure.
This module does the same with jsonschema and cel-python (CEL rules are evaluated when cel-python
can compile them; a rule it cannot compile is reported as a 422 naming the rule, never skipped).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import jsonschema

_SCHEMA_KEYS_DROPPED = (
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "nullable",
    "default",
)


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Translate OpenAPI v3 structural-schema dialect into plain JSON Schema."""
    out = {k: v for k, v in schema.items() if k not in _SCHEMA_KEYS_DROPPED}
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: to_json_schema(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = to_json_schema(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [to_json_schema(sub) for sub in out[key]]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill ``default`` for absent properties, recursively (structural defaulting)."""
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(value[name], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                if name not in (schema.get("properties") or {}):
                    value[name] = apply_defaults(value[name], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


def prune(value: Any, schema: dict[str, Any], path: str = "") -> tuple[Any, list[str]]:
    """Drop undeclared fields; return the pruned value and the dropped field paths."""
    dropped: list[str] = []
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
            "x-kubernetes-embedded-resource"
        ):
            props = schema.get("properties") or {}
            for name, sub in props.items():
                if name in value:
                    value[name], more = prune(value[name], sub, f"{path}.{name}")
                    dropped += more
            return value, dropped
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and extra is None:
            return value, dropped
        for name in list(value):
            if props is not None and name in props:
                value[name], more = prune(value[name], props[name], f"{path}.{name}")
                dropped += more
            elif isinstance(extra, dict):
                value[name], more = prune(value[name], extra, f"{path}.{name}")
                dropped += more
            elif extra is True:
                continue
            else:
                dropped.append(f"{path}.{name}")
                del value[name]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            value[n], more = prune(item, schema["items"], f"{path}[{n}]")
            dropped += more
    return value, dropped


def _field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, message) for every schema violation; metadata is validated by the server."""
    body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    local_schema = copy.deepcopy(schema)
    for name in ("metadata", "apiVersion", "kind"):
        (local_schema.get("properties") or {}).pop(name, None)
    validator = jsonschema.Draft4Validator(to_json_schema(local_schema))
    return [
        (_field_path(error.absolute_path) or "<root>", error.message)
        for error in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.path)))
    ] + list_type_errors(body, local_schema)


def list_type_errors(value: Any, schema: dict[str, Any], path: str = "") -> list[tuple[str, str]]:
    """Duplicates in ``x-kubernetes-list-type: set`` lists and duplicate keys in ``map`` lists
    (``x-kubernetes-list-map-keys``), which the API server rejects as ``Duplicate value``."""
    errors: list[tuple[str, str]] = []
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                errors += list_type_errors(item, sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen: set[str] = set()
        for n, item in enumerate(value):
            if list_type == "set":
                identity = repr(item)
            elif list_type == "map" and isinstance(item, dict):
                identity = repr({k: item.get(k) for k in keys})
            else:
                identity = None
            if identity is not None:
                if identity in seen:
                    errors.append((f"{path}[{n}]", f"Duplicate value: {identity}"))
                seen.add(identity)
            errors += list_type_errors(item, schema.get("items") or {}, f"{path}[{n}]")
    return errors


def _rules(
    value: Any, old: Any, schema: dict[str, Any], path: str
) -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
    for rule in schema.get("x-kubernetes-validations") or []:
        yield path, rule, value, old
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                child_old = old.get(name) if isinstance(old, dict) else None
                yield from _rules(value[name], child_old, sub, f"{path}.{name}" if path else name)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            yield from _rules(item, None, schema["items"], f"{path}[{n}]")


def cel_errors(
    obj: dict[str, Any], old: dict[str, Any] | None, schema: dict[str, Any]
) -> list[tuple[str, str]]:
    """Evaluate ``x-kubernetes-validations``; transition rules (using oldSelf) only on update."""
    import celpy  # imported lazily: only CRDs with CEL rules need it

    environment = celpy.Environment()
    functions = _kubernetes_cel_library()
    errors = []
    body, old_body = _cel_root(obj), (_cel_root(old) if old is not None else None)
    for path, rule, value, old_value in _rules(body, old_body, schema, ""):
        expression = rule["rule"]
        uses_old = "oldSelf" in expression
        if uses_old and old_value is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if uses_old:
            activation["oldSelf"] = celpy.json_to_cel(old_value)
        try:
            program = environment.program(environment.compile(expression), functions=functions)
            result = program.evaluate(activation)
        except Exception as exc:  # noqa: BLE001 -- any compile/eval failure is reported as 422
            errors.append((path or "<root>", f"rule {expression!r} could not be evaluated: {exc}"))
            continue
        if isinstance(result, Exception) or not bool(result):
            message = rule.get("message") or f"failed rule: {expression}"
            field = rule.get("fieldPath")
            errors.append(((path + field) if field else (path or "<root>"), message))
    return errors


def _cel_root(obj: dict[str, Any]) -> dict[str, Any]:
    """``self`` at the root: kube-apiserver exposes only metadata.name and generateName."""
    root = {k: v for k, v in obj.items() if k != "metadata"}
    meta = obj.get("metadata") or {}
    root["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return root


def _kubernetes_cel_library() -> dict[str, Any]:
    """The parts of Kubernetes' CEL extension libraries (lists, strings) cel-python lacks.

    Kubernetes documents them under "CEL in Kubernetes": list library (sum, min, max, isSorted,
    indexOf, lastIndexOf) and the cel-go strings extension (lowerAscii, upperAscii, trim, split,
    join). Everything else a rule uses must come from standard CEL.
    """
    from celpy import celtypes

    def list_sum(items: Any) -> Any:
        return sum(items[1:], items[0]) if len(items) else celtypes.IntType(0)

    def index_of(target: Any, item: Any) -> Any:
        if isinstance(target, str):
            return celtypes.IntType(target.find(item))
        return celtypes.IntType(list(target).index(item) if item in target else -1)

    def last_index_of(target: Any, item: Any) -> Any:
        if isinstance(target, str):
            return celtypes.IntType(target.rfind(item))
        positions = [n for n, value in enumerate(target) if value == item]
        return celtypes.IntType(positions[-1] if positions else -1)

    return {
        "sum": list_sum,
        "min": lambda items: min(items),
        "max": lambda items: max(items),
        "isSorted": lambda items: celtypes.BoolType(list(items) == sorted(items)),
        "indexOf": index_of,
        "lastIndexOf": last_index_of,
        "lowerAscii": lambda text: celtypes.StringType(text.lower()),
        "upperAscii": lambda text: celtypes.StringType(text.upper()),
        "trim": lambda text: celtypes.StringType(text.strip()),
        "split": lambda text, sep: celtypes.ListType([celtypes.StringType(x) for x in text.split(sep)]),
        "join": lambda items, sep="": celtypes.StringType(sep.join(items)),
    }
