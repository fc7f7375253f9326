"""The three classic PATCH formats: JSON merge patch, JSON patch, strategic merge patch.

Server-side apply lives in ``fieldmanager``. All functions here are pure: they take the current
object and the patch and return the patched object (or raise ``ApiError`` 422/400 on bad patches).
"""

from __future__ import annotations

import copy
from typing import Any

from tests.kubeapi.errors import ApiError, bad_request

# Lists that strategic merge patch and server-side apply merge item-by-item, by this key, as the
# Kubernetes Go types declare with `patchMergeKey` / `listMapKeys` (core/v1, meta/v1 types.go).
# "ports" is keyed by containerPort inside containers and by port inside a Service; see merge_key.
LIST_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
}
# Primitive lists that strategic merge patch unions instead of replacing (metav1.ObjectMeta).
PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})


def merge_key(field: str, items: list[Any]) -> str | None:
    """The merge key of list ``field`` whose items look like ``items``, or None if atomic."""
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return LIST_MERGE_KEYS.get(field)


# --- JSON merge patch (RFC 7396) -------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- JSON patch (RFC 6902) -------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container_and_key(doc: Any, tokens: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ApiError(
                422, "Invalid", f"the server rejected our request due to an error in our request: "
                f"json patch path {path!r}: missing element {token!r}"
            )
    return node, tokens[-1]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for token in _pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ApiError(422, "Invalid", f"json patch: path {path!r} does not exist")
    return node


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise bad_request("json patch: cannot remove the whole document")
    parent, key = _container_and_key(doc, tokens, path)
    if isinstance(parent, dict) and key in parent:
        return parent.pop(key)
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return parent.pop(int(key))
    raise ApiError(422, "Invalid", f"json patch remove: path {path!r} does not exist")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, key = _container_and_key(doc, tokens, path)
    if isinstance(parent, dict):
        parent[key] = value
    elif isinstance(parent, list):
        if key == "-":
            parent.append(value)
        elif key.isdigit() and int(key) <= len(parent):
            parent.insert(int(key), value)
        else:
            raise ApiError(422, "Invalid", f"json patch add: index {key!r} out of range in {path!r}")
    else:
        raise ApiError(422, "Invalid", f"json patch add: {path!r} is not inside an object or array")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("json patch body must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"json patch operation #{index} needs 'op' and 'path': {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # must exist
            tokens = _pointer(path)
            if not tokens:
                doc = copy.deepcopy(op.get("value"))
            else:
                parent, key = _container_and_key(doc, tokens, path)
                parent[int(key) if isinstance(parent, list) else key] = copy.deepcopy(op.get("value"))
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op["from"])))
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, "Invalid", f"json patch test failed at {path!r}")
        else:
            raise bad_request(f"json patch operation #{index}: unknown op {kind!r}")
    return doc


# --- strategic merge patch -------------------------------------------------------------------


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$")
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def _merge_keyed_list(current: list[Any], patch: list[Any], key: str) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            result.append(_strip_directives(item))
            continue
        position = next(
            (n for n, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge: a merge patch whose known lists merge by key, honouring $-directives.

    kubectl's client-side apply sends ``$setElementOrder/<list>`` (ordering only: ignored here),
    ``$retainKeys``, ``$deleteFromPrimitiveList/<list>`` and ``$patch: delete|replace``.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list):
            current = result.get(key) if isinstance(result.get(key), list) else []
            list_key = merge_key(key, value or current)
            if list_key is not None:
                result[key] = _merge_keyed_list(current, value, list_key)
            elif key in PRIMITIVE_MERGE_LISTS:
                result[key] = current + [v for v in value if v not in current]
            else:
                result[key] = _strip_directives(value)
        else:
            result[key] = value
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result
