"""Discovery documents (/api, /apis, resource lists) and the OpenAPI documents kubectl reads.

Only the legacy (unaggregated) discovery format is served; clients asking for aggregated discovery
get it in the legacy format with ``Content-Type: application/json`` and fall back, as they do with
older API servers.

OpenAPI: /openapi/v3 lists one document per group-version; each declares, per resource, the PATCH
operation with its ``x-kubernetes-group-version-kind`` and the ``fieldValidation`` parameter, which
tells kubectl to leave field validation to the server instead of validating client-side.
CRD kinds carry their openAPIV3Schema; built-in kinds carry an open schema (no field-level detail).
/openapi/v2 is a minimal Swagger document with the same definitions.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.kubeapi.resources import Registry, ResourceType

KUBERNETES_VERSION = {"major": "1", "minor": "33", "gitVersion": "v1.33.0-tidal-test",
                      "gitCommit": "0000000000000000000000000000000000000000",
                      "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                      "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}


def _resource_entries(rtype: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
        "storageVersionHash": hashlib.sha256(
            f"{rtype.group}/{rtype.version}/{rtype.kind}".encode()
        ).hexdigest()[:12],
    }
    if rtype.short_names:
        main["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        main["categories"] = list(rtype.categories)
    entries = [main]
    if rtype.has_status:
        entries.append({"name": f"{rtype.plural}/status", "singularName": "",
                        "namespaced": rtype.namespaced, "kind": rtype.kind,
                        "verbs": ["get", "patch", "update"]})
    if rtype.scale is not None:
        entries.append({"name": f"{rtype.plural}/scale", "singularName": "",
                        "namespaced": rtype.namespaced, "group": "autoscaling", "version": "v1",
                        "kind": "Scale", "verbs": ["get", "patch", "update"]})
    return entries


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for t in types for e in _resource_entries(t)],
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.versions_of(group)
    if not versions:
        return None
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": entries,
            "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [api_group(registry, g) for g in registry.groups()]
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{k: v for k, v in g.items() if k not in ("kind", "apiVersion")} for g in groups if g],
    }


# --- OpenAPI -----------------------------------------------------------------------------------


def _definition_name(rtype: ResourceType) -> str:
    reversed_group = ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
    return f"{reversed_group}.{rtype.version}.{rtype.kind}"


def _kind_schema(rtype: ResourceType) -> dict[str, Any]:
    gvk = [{"group": rtype.group, "version": rtype.version, "kind": rtype.kind}]
    if rtype.schema is not None:
        schema = json.loads(json.dumps(rtype.schema))
    else:
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_v3_root(registry: Registry) -> dict[str, Any]:
    seen = {(t.group, t.version) for t in registry.all()}
    paths = {}
    for group, version in sorted(seen):
        path = _gv_path(group, version)
        digest = hashlib.sha256(json.dumps(openapi_v3_group_version(registry, group, version),
                                           sort_keys=True).encode()).hexdigest()[:16].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def _operation(rtype: ResourceType, action: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "operationId": f"{action}{rtype.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rtype.group, "version": rtype.version, "kind": rtype.kind,
        },
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{_definition_name(rtype)}"}}}}},
    }


def openapi_v3_group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    query = [
        {"name": name, "in": "query", "schema": {"type": "string"}}
        for name in ("dryRun", "fieldManager", "fieldValidation", "force")
    ]
    paths: dict[str, Any] = {}
    for rtype in types:
        base = "/" + _gv_path(group, version)
        ns = "/namespaces/{namespace}" if rtype.namespaced else ""
        item = f"{base}{ns}/{rtype.plural}/{{name}}"
        paths[f"{base}{ns}/{rtype.plural}"] = {
            "get": _operation(rtype, "list", []),
            "post": _operation(rtype, "post", query),
        }
        paths[item] = {
            "get": _operation(rtype, "get", []),
            "put": _operation(rtype, "put", query),
            "patch": _operation(rtype, "patch", query),
            "delete": _operation(rtype, "delete", query),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {_definition_name(t): _kind_schema(t) for t in types}},
    }


def openapi_v2(registry: Registry) -> dict[str, Any]:
    definitions = {_definition_name(t): _kind_schema(t) for t in registry.all()}
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": {},
        "definitions": definitions,
    }
