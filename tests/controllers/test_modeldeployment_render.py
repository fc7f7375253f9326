"""Rendered children are valid Kubernetes objects that carry the spec, the placement and the drain."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tidal.api.validation import parse_resource
from tidal.controllers.labels import ACCELERATOR_LABEL, DEPLOYMENT_LABEL, POOL_LABEL
from tidal.controllers.modeldeployment import ChildKey, pools_of, render_children, stale_children

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UID = "0b6c1f5e-0000-4000-8000-000000000001"


def load(name: str):
    return [parse_resource(d) for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


ACCELERATORS = {a.metadata.name: a for a in load("accelerator-classes.yaml")}
UNIFIED = load("modeldeployment-unified.yaml")[0]
DISAGGREGATED = load("modeldeployment-disaggregated.yaml")[0]
SGLANG = load("modeldeployment-scale-to-zero.yaml")[0]


def by_kind(children, kind):
    return [c for c in children if c["kind"] == kind]


def flag_value(args, flag):
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("md", [UNIFIED, DISAGGREGATED, SGLANG], ids=lambda m: m.metadata.name)
def test_children_validate_against_kubernetes_schema(md) -> None:
    replicas = {ChildKey(p, a): 2 for p in pools_of(md) for a in md.spec.placement.accelerator_classes}
    for child in render_children(md, UID, ACCELERATORS, replicas, kv_ttl_s=30.0):
        kubernetes_validate.validate(child, "1.33.0", strict=True)
        assert len(child["metadata"]["name"]) <= 63


def test_unified_renders_one_deployment_per_accelerator() -> None:
    replicas = {ChildKey("unified", "h100-80gb"): 3, ChildKey("unified", "a100-80gb"): 1}
    children = render_children(UNIFIED, UID, ACCELERATORS, replicas, kv_ttl_s=None)
    deployments = {d["metadata"]["name"]: d for d in by_kind(children, "Deployment")}
    assert set(deployments) == {"llama-8b-chat-unified-h100-80gb", "llama-8b-chat-unified-a100-80gb"}
    h100 = deployments["llama-8b-chat-unified-h100-80gb"]
    assert h100["spec"]["replicas"] == 3
    labels = h100["spec"]["template"]["metadata"]["labels"]
    assert labels[DEPLOYMENT_LABEL] == "llama-8b-chat" and labels[POOL_LABEL] == "unified"
    assert labels[ACCELERATOR_LABEL] == "h100-80gb"
    pod = h100["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"] == [
        {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}
    ]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    # An explicit command, so the image's `vllm serve` entrypoint is replaced, never prefixed.
    assert container["command"] == ["vllm", "serve"]
    assert container["args"][0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert container["args"][-1] == "--enable-prefix-caching"  # user args last, so they win
    assert pod["terminationGracePeriodSeconds"] >= 60  # the spec's default drainTimeout
    assert h100["metadata"]["ownerReferences"][0]["uid"] == UID
    (cm,) = by_kind(children, "ConfigMap")
    assert cm["metadata"]["name"] == "llama-8b-chat-kv-policy" and cm["data"]["ttlSeconds"] == "off"


def test_disaggregated_renders_pools_with_tensor_parallelism() -> None:
    children = render_children(DISAGGREGATED, UID, ACCELERATORS, {}, kv_ttl_s=12.5)
    services = sorted(s["metadata"]["name"] for s in by_kind(children, "Service"))
    assert services == ["llama-70b-decode", "llama-70b-prefill"]
    for dep in by_kind(children, "Deployment"):
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--tensor-parallel-size") + 1] == "4"
        assert dep["spec"]["replicas"] == 0
    assert by_kind(children, "ConfigMap")[0]["data"]["ttlSeconds"] == "12.5"


def test_sglang_dialect_uses_its_launcher() -> None:
    children = render_children(SGLANG, UID, ACCELERATORS, {}, kv_ttl_s=30)
    container = by_kind(children, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python3", "-m", "sglang.launch_server"]
    args = container["args"]
    assert args[:2] == ["--model-path", "Qwen/Qwen2.5-3B-Instruct"]
    assert "--enable-metrics" in args
    assert flag_value(args, "--host") == "0.0.0.0"  # SGLang binds 127.0.0.1 by default
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"


def test_unknown_accelerator_renders_nothing_for_it() -> None:
    only_l4 = {"l4": ACCELERATORS["l4"]}
    children = render_children(UNIFIED, UID, only_l4, {}, kv_ttl_s=None)
    assert by_kind(children, "Deployment") == []
    assert len(by_kind(children, "Service")) == 1


def test_rendering_is_deterministic() -> None:
    replicas = {ChildKey("unified", "h100-80gb"): 2}
    assert render_children(UNIFIED, UID, ACCELERATORS, replicas, 5.0) == render_children(UNIFIED, UID, ACCELERATORS, replicas, 5.0)


@given(st.dictionaries(st.sampled_from(["h100-80gb", "a100-80gb", "l4"]), st.integers(0, 50)))
def test_replicas_are_conserved(counts) -> None:
    """Replicas for allowed classes appear exactly; classes outside placement never get pods."""
    replicas = {ChildKey("unified", a): n for a, n in counts.items()}
    children = render_children(UNIFIED, UID, ACCELERATORS, replicas, None)
    rendered = {d["metadata"]["labels"][ACCELERATOR_LABEL]: d["spec"]["replicas"] for d in by_kind(children, "Deployment")}
    allowed = set(UNIFIED.spec.placement.accelerator_classes)
    assert rendered == {a: counts.get(a, 0) for a in allowed}


def test_mode_switch_leaves_the_old_pool_stale_and_nothing_else() -> None:
    unified = render_children(UNIFIED, UID, ACCELERATORS,
                              {ChildKey("unified", a): 1 for a in UNIFIED.spec.placement.accelerator_classes}, None)
    switched = UNIFIED.model_copy(update={"spec": DISAGGREGATED.spec.model_copy(
        update={"placement": UNIFIED.spec.placement})})
    disaggregated = render_children(switched, UID, ACCELERATORS, {}, None)
    stale = stale_children(unified + disaggregated, disaggregated, UID)
    old = {(c["kind"], c["metadata"]["name"]) for c in unified if c["kind"] in ("Deployment", "Service")}
    assert stale == sorted(old)
    assert all("-unified" in name for _, name in stale)


def test_children_of_another_owner_are_never_stale() -> None:
    children = render_children(UNIFIED, UID, ACCELERATORS, {}, None)
    assert stale_children(children, [], "some-other-uid") == []
    assert {k for k, _ in stale_children(children, [], UID)} == {"Deployment", "Service"}  # never ConfigMaps


@given(st.sets(st.sampled_from(sorted(ACCELERATORS)), min_size=1), st.sets(st.sampled_from(sorted(ACCELERATORS)), min_size=1))
def test_dropping_accelerators_prunes_exactly_their_deployments(before, after) -> None:
    def render(classes):
        md = UNIFIED.model_copy(update={"spec": UNIFIED.spec.model_copy(update={
            "placement": UNIFIED.spec.placement.model_copy(update={"accelerator_classes": sorted(classes)})})})
        return render_children(md, UID, ACCELERATORS, {}, None)

    stale = stale_children(render(before), render(after), UID)
    assert stale == sorted(("Deployment", f"llama-8b-chat-unified-{a}") for a in before - after)
