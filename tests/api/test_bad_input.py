"""Table of invalid resources: each must be rejected by BOTH the pydantic models and the generated
CRD schema (OpenAPI + CEL), with an error at the same field path. This is what keeps the operator's
validation and the API server's validation from drifting apart."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tidal.api.crdgen import crd_for
from tidal.api.registry import KINDS_BY_NAME
from tidal.api.validation import InvalidResource, parse_resource
from tests.api.crd_schema import validate_against_crd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DELETE = object()


def example(kind: str) -> dict[str, Any]:
    """A valid example of ``kind`` from examples/ (the first document of that kind)."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind:
                return doc
    raise AssertionError(f"no example of {kind}")


def first_doc(name: str) -> dict[str, Any]:
    return next(yaml.safe_load_all((EXAMPLES / name).read_text()))


BASE = {
    "mdep": lambda: first_doc("modeldeployment-unified.yaml"),
    "mdep-dis": lambda: first_doc("modeldeployment-disaggregated.yaml"),
    "sfn": lambda: example("ServerlessFunction"),
    "acc": lambda: example("AcceleratorClass"),
    "fsp": lambda: example("FairSharePolicy"),
}


@dataclass(frozen=True)
class Case:
    id: str
    base: str
    changes: tuple[tuple[str, Any], ...]
    path: str
    model_hint: str
    schema_hint: str


def case(id: str, base: str, changes: dict[str, Any], path: str, hint: str, schema_hint: str | None = None) -> Case:
    return Case(id, base, tuple(changes.items()), path, hint, schema_hint or hint)


CASES = [
    # wrong types
    case("max-replicas-string", "mdep", {"spec.pools.unified.maxReplicas": "eight"}, "spec.pools.unified.maxReplicas", "integer"),
    case("parameters-string", "mdep", {"spec.model.parametersBillions": "8B"}, "spec.model.parametersBillions", "number"),
    case("args-not-list", "mdep", {"spec.engine.args": "--foo"}, "spec.engine.args", "array"),
    case("prewarm-not-bool", "mdep", {"spec.autoscaling.prewarm": "sometimes"}, "spec.autoscaling.prewarm", "bool", "boolean"),
    # strings that lax parsing would coerce; the API server checks JSON types
    case("max-replicas-quoted", "mdep", {"spec.pools.unified.maxReplicas": "3"}, "spec.pools.unified.maxReplicas", "integer"),
    case("prewarm-yes", "mdep", {"spec.autoscaling.prewarm": "yes"}, "spec.autoscaling.prewarm", "bool", "boolean"),
    case("parameters-quoted", "mdep", {"spec.model.parametersBillions": "8"}, "spec.model.parametersBillions", "number"),
    case("scale-to-zero-string", "sfn", {"spec.scaleToZero": "true"}, "spec.scaleToZero", "bool", "boolean"),
    case("weight-quoted", "fsp", {"spec.tenants[0].weight": "2"}, "spec.tenants[0].weight", "number"),
    # object names: what the API server checks itself (RFC 1123), before the schema
    case("name-uppercase", "mdep", {"metadata.name": "Llama-8b"}, "metadata.name", "RFC 1123 subdomain"),
    case("name-underscore", "sfn", {"metadata.name": "hello_world"}, "metadata.name", "RFC 1123 subdomain"),
    case("name-leading-dash", "acc", {"metadata.name": "-h100"}, "metadata.name", "RFC 1123 subdomain"),
    case("namespace-dotted", "mdep", {"metadata.namespace": "team.a"}, "metadata.namespace", "RFC 1123 label"),
    case("node-selector-not-map", "acc", {"spec.nodeSelector": ["gpu"]}, "spec.nodeSelector", "object"),
    # out of range
    case("negative-min-replicas", "mdep", {"spec.pools.unified.minReplicas": -1}, "spec.pools.unified.minReplicas", "greater than or equal to 0", "minimum"),
    case("zero-max-replicas", "mdep", {"spec.pools.unified.maxReplicas": 0}, "spec.pools.unified.maxReplicas", "greater than or equal to 1", "minimum"),
    case("gpus-per-replica-huge", "mdep-dis", {"spec.pools.decode.gpusPerReplica": 65}, "spec.pools.decode.gpusPerReplica", "less than or equal to 64", "maximum"),
    case("percentile-100", "mdep", {"spec.slo.percentile": 100}, "spec.slo.percentile", "less than 100", "maximum"),
    case("percentile-0", "mdep", {"spec.slo.percentile": 0}, "spec.slo.percentile", "greater than 0", "minimum"),
    case("attainment-above-1", "mdep", {"spec.slo.attainment": 1.5}, "spec.slo.attainment", "less than or equal to 1", "maximum"),
    case("port-too-big", "sfn", {"spec.container.port": 70000}, "spec.container.port", "65535"),
    case("zero-weight", "fsp", {"spec.tenants[0].weight": 0}, "spec.tenants[0].weight", "greater than 0", "minimum"),
    case("negative-cost", "acc", {"spec.hourlyCost": -1}, "spec.hourlyCost", "greater than or equal to 0", "minimum"),
    case("zero-bandwidth", "acc", {"spec.memoryBandwidthGbps": 0}, "spec.memoryBandwidthGbps", "greater than 0", "minimum"),
    # unknown enum values
    case("unknown-mode", "mdep", {"spec.mode": "hybrid"}, "spec.mode", "disaggregated"),
    case("unknown-dialect", "mdep", {"spec.engine.metricsDialect": "tgi"}, "spec.engine.metricsDialect", "sglang"),
    case("unknown-dtype", "mdep", {"spec.model.dtype": "fp64"}, "spec.model.dtype", "bfloat16"),
    case("unknown-predictor", "mdep", {"spec.autoscaling.predictor": "prophet"}, "spec.autoscaling.predictor", "holt-winters"),
    case("unknown-prewarm", "sfn", {"spec.prewarm": "always"}, "spec.prewarm", "auto"),
    # cross-field rules
    case("min-above-max", "mdep", {"spec.pools.unified.minReplicas": 9}, "spec.pools.unified", "minReplicas must be less than or equal to maxReplicas"),
    case("disaggregated-without-decode", "mdep-dis", {"spec.pools.decode": DELETE}, "spec", "mode disaggregated needs pools.prefill and pools.decode"),
    case("unified-with-prefill", "mdep", {"spec.pools.prefill": {"maxReplicas": 2}}, "spec", "mode unified needs pools.unified only"),
    case("disaggregated-with-unified", "mdep-dis", {"spec.pools.unified": {"maxReplicas": 2}}, "spec", "needs pools.prefill and pools.decode only"),
    case("target-on-one-pool-only", "mdep-dis", {"spec.pools.prefill.scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "p"}}, "spec", "set scaleTargetRef on every pool or on none"),
    case("target-kind-lowercase", "mdep", {"spec.pools.unified.scaleTargetRef": {"apiVersion": "apps/v1", "kind": "deployment", "name": "p"}}, "spec.pools.unified.scaleTargetRef.kind", "A-Z"),
    case("rdma-resource-without-rdma", "mdep-dis", {"spec.disaggregation.rdmaDeviceResource": "rdma/ib"}, "spec.disaggregation", "rdmaDeviceResource needs kvTransport: rdma"),
    case("slo-without-targets", "mdep", {"spec.slo.ttft": DELETE, "spec.slo.tpot": DELETE}, "spec.slo", "at least one of ttft or tpot"),
    case("no-accelerator", "mdep", {"spec.placement.acceleratorClasses": []}, "spec.placement.acceleratorClasses", "at least 1", "non-empty"),
    case("duplicate-accelerator", "mdep", {"spec.placement.acceleratorClasses": ["l4", "l4"]}, "spec.placement.acceleratorClasses", "duplicate entries"),
    case("guarantees-exceed-capacity", "fsp", {"spec.capacity.gpus": 10}, "spec", "sum of tenants' guaranteedGpus must not exceed capacity.gpus"),
    case("duplicate-tenant", "fsp", {"spec.tenants[1].name": "chat"}, "spec", "tenant names must be unique"),
    case("guarantee-above-cap", "fsp", {"spec.tenants[1].maxGpus": 2}, "spec.tenants[1]", "guaranteedGpus must be less than or equal to maxGpus"),
    case("capacity-empty", "fsp", {"spec.capacity": {}}, "spec.capacity", "capacity must set nodeSelector, acceleratorClasses or gpus"),
    case("sfn-min-above-max", "sfn", {"spec.maxInstances": 5, "spec.scaleToZero": False, "spec.minInstances": 6}, "spec", "minInstances must be less than or equal to maxInstances"),
    case("sfn-scale-to-zero-with-min", "sfn", {"spec.minInstances": 2}, "spec", "scaleToZero requires minInstances: 0"),
    case("name-too-long", "mdep", {"metadata.name": "a" * 41}, "", "at most 40 characters"),
    case("function-name-too-long", "sfn", {"metadata.name": "f" * 64}, "", "at most 63 characters"),
    # unknown fields
    case("typo-min-replica", "mdep", {"spec.pools.unified.minReplica": 1}, "spec.pools.unified.minReplica", "unknown field"),
    case("unknown-top-level", "acc", {"spec.vendor": "nvidia"}, "spec.vendor", "unknown field"),
    case("unknown-tenant-field", "fsp", {"spec.tenants[0].share": 0.5}, "spec.tenants[0].share", "unknown field"),
    # missing required
    case("missing-max-replicas", "mdep", {"spec.pools.unified.maxReplicas": DELETE}, "spec.pools.unified.maxReplicas", "required"),
    case("missing-image", "sfn", {"spec.container.image": DELETE}, "spec.container.image", "required"),
    case("missing-placement", "mdep", {"spec.placement": DELETE}, "spec.placement", "required"),
    # malformed durations and quantities
    case("duration-words", "mdep", {"spec.slo.ttft": "half a second"}, "spec.slo.ttft", "(ms|s|m|h)"),
    case("duration-no-unit", "mdep", {"spec.autoscaling.scaleDownDelay": "300"}, "spec.autoscaling.scaleDownDelay", "(ms|s|m|h)"),
    case("duration-days", "sfn", {"spec.slo.latency": "1d"}, "spec.slo.latency", "(ms|s|m|h)"),
    case("kv-ttl-bad", "mdep", {"spec.kvCache.ttl": "forever"}, "spec.kvCache.ttl", "auto|off"),
    case("quantity-bad-suffix", "acc", {"spec.memory": "80GB"}, "spec.memory", "Gi"),
    case("quantity-negative", "sfn", {"spec.memory": "-512Mi"}, "spec.memory", "Mi"),
    case("bad-accelerator-name", "mdep", {"spec.placement.acceleratorClasses": ["H100_80GB"]}, "spec.placement.acceleratorClasses[0]", "a-z0-9"),
]


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    parts: list[str | int] = []
    for token in dotted.replace("]", "").split("."):
        name, *indexes = token.split("[")
        parts.append(name)
        parts.extend(int(i) for i in indexes)
    target: Any = obj
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value


def build(c: Case) -> dict[str, Any]:
    doc = copy.deepcopy(BASE[c.base]())
    for dotted, value in c.changes:
        _set(doc, dotted, value)
    return doc


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_rejected_by_models(c: Case) -> None:
    """Strict, as ``tidal validate`` runs them: the API server's JSON types, no coercion."""
    with pytest.raises(InvalidResource) as info:
        parse_resource(build(c), strict=True)
    matching = [e for e in info.value.errors if e.path == c.path]
    assert matching, f"no error at {c.path!r}; got {[str(e) for e in info.value.errors]}"
    assert any(c.model_hint in e.message for e in matching), [str(e) for e in matching]


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_rejected_by_crd_schema(c: Case) -> None:
    doc = build(c)
    errors = validate_against_crd(crd_for(KINDS_BY_NAME[doc["kind"]]), doc)
    matching = [e for e in errors if e.path == c.path]
    assert matching, f"no error at {c.path!r}; got {errors}"
    assert any(c.schema_hint in e.message for e in matching), matching


@pytest.mark.parametrize("base", sorted(BASE))
def test_bases_are_valid_in_both(base: str) -> None:
    """Each case changes a valid document, so the error really comes from the change."""
    doc = BASE[base]()
    parse_resource(doc)
    assert validate_against_crd(crd_for(KINDS_BY_NAME[doc["kind"]]), doc) == []
