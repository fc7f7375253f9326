"""Unit and property tests of the server's pure parts: selectors, patches, field ownership."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.kubeapi import fieldmanager, patches, validation
from tests.kubeapi.errors import ApiError
from tests.kubeapi.selectors import (
    Filter,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
)
from tests.kubeapi.tables import jsonpath_value

# --- selectors ---------------------------------------------------------------------------------


def test_label_selector_grammar() -> None:
    requirements = parse_label_selector("a=1, b!=2,c in (x, y),d notin (z),e,!f,tidal.dev/pool==prefill")
    assert [(r.key, r.op, sorted(r.values)) for r in requirements] == [
        ("a", "=", ["1"]), ("b", "!=", ["2"]), ("c", "in", ["x", "y"]), ("d", "notin", ["z"]),
        ("e", "exists", []), ("f", "!exists", []), ("tidal.dev/pool", "=", ["prefill"]),
    ]


@pytest.mark.parametrize("bad", ["a===b", "a in x", "=b", "a in (x"])
def test_label_selector_errors_are_400(bad: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_label_selector(bad)
    assert error.value.code == 400


def test_label_selector_object_round_trips_through_the_parser() -> None:
    text = selector_from_label_selector_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                             {"key": "canary", "operator": "DoesNotExist"}]})
    flt = Filter(None, tuple(parse_label_selector(text)))
    assert flt.matches({"metadata": {"labels": {"app": "web", "tier": "b"}}})
    assert not flt.matches({"metadata": {"labels": {"app": "web", "tier": "b", "canary": "1"}}})


def test_field_selector_rejects_unknown_fields() -> None:
    assert parse_field_selector("metadata.name!=x")[0].negate
    with pytest.raises(ApiError):
        parse_field_selector("spec.replicas=1")


# --- patches -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent_and_does_not_mutate(target: dict[str, Any], patch: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    once = patches.merge_patch(target, patch)
    assert target == before
    assert patches.merge_patch(once, patch) == once


@given(json_objects)
def test_merge_patch_with_itself_from_empty_drops_nulls(patch: dict[str, Any]) -> None:
    assert patches.merge_patch({}, patch) == _without_nulls(patch)


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    result = patches.json_patch(doc, [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "add", "path": "/a/b/0", "value": 0},
        {"op": "remove", "path": "/c"},
        {"op": "copy", "from": "/a/b", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e~1f"},
        {"op": "replace", "path": "/a/b/1", "value": 10},
        {"op": "test", "path": "/a/b/1", "value": 10},
    ])
    assert result == {"a": {"b": [0, 10, 2, 3]}, "e/f": [0, 1, 2, 3]}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}
    with pytest.raises(ApiError):
        patches.json_patch(doc, [{"op": "replace", "path": "/missing", "value": 1}])


def test_strategic_merge_patch_directives() -> None:
    current = {"spec": {"containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]},
                                       {"name": "b", "image": "1"}],
                        "tolerations": [{"key": "k"}]},
               "metadata": {"finalizers": ["f1"]}}
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]},
                           {"name": "b", "$patch": "delete"}],
            "tolerations": [{"key": "other"}],
        },
        "metadata": {"finalizers": ["f2"], "$deleteFromPrimitiveList/finalizers": ["f1"]},
    }
    result = patches.strategic_merge_patch(current, patch)
    assert result["spec"]["containers"] == [
        {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]
    assert result["spec"]["tolerations"] == [{"key": "other"}], "lists without a merge key are replaced"
    assert result["metadata"]["finalizers"] == ["f2"]
    replaced = patches.strategic_merge_patch(current, {"spec": {"$patch": "replace", "x": 1}})
    assert replaced["spec"] == {"x": 1}


# --- field ownership ---------------------------------------------------------------------------


def test_fields_v1_round_trip_with_keyed_lists() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    paths = set(fieldmanager.leaf_paths(obj))
    tree = fieldmanager.to_fields_v1(paths)
    assert tree["f:spec"]["f:containers"]['k:{"name":"c"}'] == {".": {}, "f:image": {}, "f:name": {}}
    assert fieldmanager.from_fields_v1(tree) == paths


def test_apply_removes_only_fields_the_manager_stopped_applying() -> None:
    base = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    first = fieldmanager.apply(None, {**base, "data": {"a": "1", "b": "2"}}, "m1", False, "", "v1", "t")
    other = copy.deepcopy(first)
    other["data"]["c"] = "3"
    fieldmanager.record_update(first, other, "m2", "", "v1", "t")
    second = fieldmanager.apply(other, {**base, "data": {"a": "1"}}, "m1", False, "", "v1", "t")
    assert second["data"] == {"a": "1", "c": "3"}
    with pytest.raises(ApiError) as conflict:
        fieldmanager.apply(second, {**base, "data": {"c": "4"}}, "m1", False, "", "v1", "t")
    assert conflict.value.code == 409 and '"m2"' in conflict.value.message


# --- structural schemas, printer columns ----------------------------------------------------------


def test_defaults_prune_and_int_or_string() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True},
        "mode": {"type": "string", "default": "unified"},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "w": {"type": "integer", "default": 1}}}},
    }}}}
    obj = {"spec": {"port": 80, "junk": True, "items": [{}, {"w": 5, "x": 0}]}}
    validation.apply_defaults(obj, schema)
    pruned, dropped = validation.prune(obj, schema)
    assert pruned == {"spec": {"port": 80, "mode": "unified", "items": [{"w": 1}, {"w": 5}]}}
    assert dropped == [".spec.junk", ".spec.items[1].x"]
    assert validation.schema_errors({"spec": {"port": "http"}}, schema) == []
    assert validation.schema_errors({"spec": {"port": 1.5}}, schema)


def test_printer_column_jsonpath() -> None:
    obj = {"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]},
           "spec": {"pools": [{"replicas": 2}]}}
    assert jsonpath_value(obj, '.status.conditions[?(@.type=="Ready")].status') == "True"
    assert jsonpath_value(obj, ".spec.pools[0].replicas") == 2
    assert jsonpath_value(obj, ".spec.missing") is None
