"""The resource types the server knows: the built-in kinds, and those registered by CRDs.

A ``ResourceType`` is everything discovery, routing, validation and the store need to know about a
(group, version, plural). Built-ins are declared here; CRD-backed types are derived from CRD bodies
by ``from_crd`` so that creating a CRD makes its resources servable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """Where a ``/scale`` subresource reads and writes replicas (CRD ``subresources.scale``)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None


@dataclasses.dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    scale: ScaleSpec | None = None
    # The CRD's openAPIV3Schema for this version, used to validate bodies (None: no validation).
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    from_crd: str | None = None  # the CRD name that registered it, if any
    # Another resource whose storage this one shares (events.k8s.io/v1 Events are core Events).
    storage_key: tuple[str, str] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Objects are stored per (group, plural), whatever the version they were written in."""
        return self.storage_key or (self.group, self.plural)

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def _core(plural: str, kind: str, namespaced: bool, **kwargs: Any) -> ResourceType:
    return ResourceType("", "v1", plural, kind.lower(), kind, namespaced, **kwargs)


# What kube-apiserver 1.33 declares for these kinds (short names and categories from `kubectl
# api-resources`), restricted to the kinds the operator and its tests use.
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _core("namespaces", "Namespace", False, short_names=("ns",), has_status=True,
          verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _core("pods", "Pod", True, short_names=("po",), categories=("all",), has_status=True),
    _core("services", "Service", True, short_names=("svc",), categories=("all",), has_status=True),
    _core("configmaps", "ConfigMap", True, short_names=("cm",)),
    _core("secrets", "Secret", True),
    _core("serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
    _core("events", "Event", True, short_names=("ev",)),
    _core("nodes", "Node", False, short_names=("no",), has_status=True),
    ResourceType("events.k8s.io", "v1", "events", "event", "Event", True, short_names=("ev",),
                 storage_key=("", "events")),
    ResourceType(
        "apps", "v1", "deployments", "deployment", "Deployment", True,
        short_names=("deploy",), categories=("all",), has_status=True,
        scale=ScaleSpec(label_selector_path=".spec.selector"),
    ),
    ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True),
    ResourceType(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
        "CustomResourceDefinition", False, short_names=("crd", "crds"),
        categories=("api-extensions",), has_status=True,
    ),
)

# Kinds kube-apiserver does not give a metadata.generation (no spec whose changes it counts).
NO_GENERATION_KINDS = frozenset(
    {"ConfigMap", "Secret", "Event", "Lease", "ServiceAccount", "Namespace", "Node", "Pod", "Role", "RoleBinding"}
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The served versions of a CRD as resource types."""
    spec = crd["spec"]
    names = spec["names"]
    types = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        scale = None
        if "scale" in subresources:
            raw = subresources["scale"] or {}
            scale = ScaleSpec(
                spec_replicas_path=raw.get("specReplicasPath", ".spec.replicas"),
                status_replicas_path=raw.get("statusReplicasPath", ".status.replicas"),
                label_selector_path=raw.get("labelSelectorPath"),
            )
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        types.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular") or names["kind"].lower(),
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in subresources,
                scale=scale,
                schema=schema,
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                from_crd=crd["metadata"]["name"],
            )
        )
    return types


class Registry:
    """The resource types currently served, indexed for routing and discovery."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in BUILTIN_TYPES:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._by_gvr[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_crd(self, crd_name: str) -> None:
        for gvr, rtype in list(self._by_gvr.items()):
            if rtype.from_crd == crd_name:
                del self._by_gvr[gvr]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_gvr.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._by_gvr.values())

    def versions_of(self, group: str) -> list[str]:
        """Served versions of a group, preferred (first registered) first."""
        seen: list[str] = []
        for g, v, _ in self._by_gvr:
            if g == group and v not in seen:
                seen.append(v)
        return seen

    def groups(self) -> list[str]:
        seen: list[str] = []
        for g, _, _ in self._by_gvr:
            if g and g not in seen:
                seen.append(g)
        return seen

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for (g, v, _), t in self._by_gvr.items() if g == group and v == version]

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        for (g, _, _), t in self._by_gvr.items():
            if g == group and t.kind == kind:
                return t
        return None
