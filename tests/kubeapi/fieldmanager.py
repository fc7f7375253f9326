"""Server-side apply and ``metadata.managedFields`` bookkeeping (a simplified structured-merge-diff).

Field ownership is tracked per (manager, operation) as sets of leaf paths, stored in the object's
``managedFields`` in the real ``FieldsV1`` encoding (``f:<field>``, ``k:<json key>`` for keyed list
items), so clients reading managedFields see the familiar shape.

Simplifications against the real algorithm (documented in docs/testing.md): lists other than the
keyed ones in ``patches.LIST_MERGE_KEYS`` are atomic (including ``finalizers``); conflicts are
detected between different manager names only; there is no client-side-apply migration.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from tests.kubeapi.errors import ApiError
from tests.kubeapi.patches import merge_key

Path = tuple[str, ...]

# Metadata the server owns or that identifies the object: never tracked as owned fields.
_UNTRACKED_TOP = frozenset({"apiVersion", "kind"})
_UNTRACKED_META = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
     "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"}
)


def _item_segment(item: dict[str, Any], key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"), sort_keys=True)


def leaf_paths(obj: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every owned path of ``obj``: leaves, plus keyed list items themselves (the "." entries)."""
    if isinstance(obj, dict):
        if not obj and prefix:
            yield prefix
        for field, value in obj.items():
            if not prefix and field in _UNTRACKED_TOP:
                continue
            if prefix == ("f:metadata",) and field in _UNTRACKED_META:
                continue
            path = prefix + (f"f:{field}",)
            key = merge_key(field, value) if isinstance(value, list) else None
            if key is not None and all(isinstance(i, dict) and key in i for i in value):
                if not value:
                    yield path
                for item in value:
                    item_path = path + (_item_segment(item, key),)
                    yield item_path
                    yield from leaf_paths(item, item_path)
            else:
                yield from leaf_paths(value, path) if isinstance(value, dict) else iter([path])
    elif prefix:
        yield prefix


def value_at(obj: Any, path: Path) -> tuple[bool, Any]:
    node = obj
    for segment in path:
        if segment.startswith("f:") and isinstance(node, dict) and segment[2:] in node:
            node = node[segment[2:]]
        elif segment.startswith("k:") and isinstance(node, list):
            wanted = json.loads(segment[2:])
            match = next(
                (i for i in node if isinstance(i, dict)
                 and all(i.get(k) == v for k, v in wanted.items())),
                None,
            )
            if match is None:
                return False, None
            node = match
        else:
            return False, None
        continue
    return True, node


def _remove_path(obj: Any, path: Path) -> None:
    found, parent = value_at(obj, path[:-1])
    if not found:
        return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("k:") and isinstance(parent, list):
        wanted = json.loads(last[2:])
        parent[:] = [
            i for i in parent
            if not (isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))
        ]


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    item_paths = {p for p in paths if p[-1].startswith("k:")}
    for path in sorted(paths):
        node = tree
        for segment in path:
            node = node.setdefault(segment, {})
        if path in item_paths:
            node["."] = {}
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for segment, sub in tree.items():
        if segment == ".":
            paths.add(prefix)
            continue
        path = prefix + (segment,)
        if sub:
            paths |= from_fields_v1(sub, path)
        else:
            paths.add(path)
    return paths


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("metadata") or {}).get("managedFields") or [])


def _ownership(obj: dict[str, Any]) -> dict[tuple[str, str, str], set[Path]]:
    owned = {}
    for entry in _entries(obj):
        ident = (entry.get("manager", ""), entry.get("operation", "Update"), entry.get("subresource", ""))
        owned[ident] = from_fields_v1(entry.get("fieldsV1") or {})
    return owned


def _write_ownership(
    obj: dict[str, Any],
    owned: dict[tuple[str, str, str], set[Path]],
    api_version: str,
    now: str,
    touched: tuple[str, str, str],
) -> None:
    old_times = {
        (e.get("manager", ""), e.get("operation", "Update"), e.get("subresource", "")): e.get("time")
        for e in _entries(obj)
    }
    entries = []
    for ident, paths in owned.items():
        if not paths:
            continue
        manager, operation, subresource = ident
        entry: dict[str, Any] = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "time": now if ident == touched else (old_times.get(ident) or now),
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    obj.setdefault("metadata", {})["managedFields"] = entries


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    subresource: str,
    api_version: str,
    now: str,
) -> None:
    """Give ``manager`` (operation Update) ownership of every leaf it changed; others lose them."""
    owned = _ownership(old) if old is not None else {}
    new_paths = set(leaf_paths(new))
    changed = {
        p for p in new_paths
        if old is None or value_at(old, p) != (True, value_at(new, p)[1])
    }
    if old is not None and not changed and all(paths <= new_paths for paths in owned.values()):
        return  # nothing changed hands: keep managedFields (and their times) as they were
    for ident in owned:
        owned[ident] = (owned[ident] - changed) & new_paths
    ident = (manager, "Update", subresource)
    owned[ident] = owned.get(ident, set()) | changed
    _write_ownership(new, owned, api_version, now, ident)


def _merge_applied(current: Any, applied: Any) -> Any:
    if not isinstance(applied, dict) or not isinstance(current, dict):
        return copy.deepcopy(applied)
    result = copy.deepcopy(current)
    for field, value in applied.items():
        key = merge_key(field, value) if isinstance(value, list) else None
        existing = result.get(field)
        if (
            key is not None
            and isinstance(existing, list)
            and all(isinstance(i, dict) and key in i for i in value)
        ):
            merged = list(existing)
            for item in value:
                position = next(
                    (n for n, old in enumerate(merged)
                     if isinstance(old, dict) and old.get(key) == item[key]),
                    None,
                )
                if position is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[position] = _merge_applied(merged[position], item)
            result[field] = merged
        else:
            result[field] = _merge_applied(existing, value)
    return result


def _render(path: Path) -> str:
    out = ""
    for segment in path:
        out += f".{segment[2:]}" if segment.startswith("f:") else f"[{segment[2:]}]"
    return out


def apply(
    current: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    subresource: str,
    api_version: str,
    now: str,
) -> dict[str, Any]:
    """Server-side apply ``applied`` by ``manager`` onto ``current`` (None: create).

    Raises 409 Conflict when another manager owns a field that ``applied`` sets to a different
    value and ``force`` is false, listing the conflicting fields like kube-apiserver does.
    """
    applied = copy.deepcopy(applied)
    applied.get("metadata", {}).pop("managedFields", None)
    applied_paths = set(leaf_paths(applied))
    ident = (manager, "Apply", subresource)
    if current is None:
        result = applied
        _write_ownership(result, {ident: applied_paths}, api_version, now, ident)
        return result

    owned = _ownership(current)
    conflicts: list[tuple[str, Path]] = []
    for path in sorted(applied_paths):
        if value_at(current, path) in ((True, value_at(applied, path)[1]), (False, None)):
            continue
        for (other, operation, other_sub), paths in owned.items():
            if other != manager and path in paths:
                conflicts.append((other, path))
    if conflicts and not force:
        lines = "\n".join(f'- conflict with "{m}": {_render(p)}' for m, p in conflicts)
        raise ApiError(
            409,
            "Conflict",
            f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: "
            f"{lines[2:] if len(conflicts) == 1 else lines}",
            details={"causes": [
                {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"',
                 "field": _render(p)} for m, p in conflicts
            ]},
        )

    result = copy.deepcopy(current)
    # Fields this manager applied before but no longer does, and nobody else owns: remove them.
    previous = owned.get(ident, set())
    others = set().union(*(p for i, p in owned.items() if i != ident)) if owned else set()
    for path in sorted(previous - applied_paths, key=len, reverse=True):
        if path in others:
            continue
        still_owned_below = any(o[: len(path)] == path and o != path for o in others)
        if not still_owned_below:
            _remove_path(result, path)

    result = _merge_applied(result, applied)
    new_paths = set(leaf_paths(result))
    for other_ident in list(owned):
        if other_ident == ident:
            continue
        taken = {p for _, p in conflicts} if force else set()
        owned[other_ident] = (owned[other_ident] - taken) & new_paths
    owned[ident] = applied_paths
    _write_ownership(result, owned, api_version, now, ident)
    return result
