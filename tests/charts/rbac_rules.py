"""Read the chart's rendered RBAC as plain data, for the RBAC tests here and for the later test that
compares the operator's recorded API calls with what the chart grants."""

from __future__ import annotations

from typing import NamedTuple


class Grant(NamedTuple):
    """One permitted (verb, group, resource) triple; namespace None means cluster-wide."""

    namespace: str | None
    api_group: str
    resource: str
    verb: str


def grants(objects: list[dict], service_account: str, sa_namespace: str) -> set[Grant]:
    """Every permission bound to the service account by the rendered (Cluster)Role(Binding)s."""
    roles = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
             for o in objects if o["kind"] in ("Role", "ClusterRole")}
    result: set[Grant] = set()
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if {"kind": "ServiceAccount", "name": service_account, "namespace": sa_namespace} not in binding["subjects"]:
            continue
        binding_ns = binding["metadata"].get("namespace")  # None for ClusterRoleBinding
        ref = binding["roleRef"]
        role = roles[(ref["kind"], binding_ns if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        result.add(Grant(binding_ns, group, resource, verb))
    return result


def allows(granted: set[Grant], verb: str, api_group: str, resource: str, namespace: str | None) -> bool:
    """Whether a call is permitted: a cluster-wide grant covers every namespace."""
    return (Grant(None, api_group, resource, verb) in granted
            or (namespace is not None and Grant(namespace, api_group, resource, verb) in granted))
