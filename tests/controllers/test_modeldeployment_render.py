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
from tidal.controllers.modeldeployment import (
    MIN_KUBERNETES_VERSION, PRESTOP_DELAY_S, ChildKey, pools_of, render_children, render_deployment, render_pod_template,
    stale_children,
)
from tests.controllers.engine_flags import problems

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UID = "0b6c1f5e-0000-4000-8000-000000000001"


def load(name: str):
    return [parse_resource(d) for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d]


ACCELERATORS = {a.metadata.name: a for a in load("accelerator-classes.yaml")}
UNIFIED = load("modeldeployment-unified.yaml")[0]
DISAGGREGATED = load("modeldeployment-disaggregated.yaml")[0]
SGLANG = load("modeldeployment-scale-to-zero.yaml")[0]
SGLANG_PD = load("modeldeployment-disaggregated-sglang.yaml")[0]


def by_kind(children, kind):
    return [c for c in children if c["kind"] == kind]


def flag_value(args, flag):
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("md", [UNIFIED, DISAGGREGATED, SGLANG, SGLANG_PD], ids=lambda m: m.metadata.name)
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
    assert services == ["llama-70b", "llama-70b-decode", "llama-70b-prefill"]  # the entry, then one per pool
    for dep in by_kind(children, "Deployment"):
        if dep["metadata"]["name"] == "llama-70b-router":
            continue
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
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"  # 200 once warm-up succeeded
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"  # a one-token generation


def test_unknown_accelerator_renders_nothing_for_it() -> None:
    only_l4 = {"l4": ACCELERATORS["l4"]}
    children = render_children(UNIFIED, UID, only_l4, {}, kv_ttl_s=None)
    assert by_kind(children, "Deployment") == []
    assert len(by_kind(children, "Service")) == 2  # the pool's and the entry


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
    assert stale == sorted(old - {("Service", "llama-8b-chat")})  # the entry Service stays, now on the router
    assert all("-unified" in name for _, name in stale)
    # and back: the router and the prefill/decode pools go, the entry stays
    back = stale_children(disaggregated + unified, unified, UID)
    assert ("Deployment", "llama-8b-chat-router") in back and ("Service", "llama-8b-chat") not in back
    assert all(name.startswith(("llama-8b-chat-prefill", "llama-8b-chat-decode", "llama-8b-chat-router"))
               for _, name in back)


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


def engine_pod(md, accelerator="h100-80gb"):
    return render_pod_template(md, ChildKey(next(iter(pools_of(md))), accelerator), ACCELERATORS[accelerator])


def with_engine(md, **engine_fields):
    """``md`` with spec.engine fields replaced, validated as the API server would (camelCase input)."""
    raw = md.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["engine"].update(engine_fields)
    return parse_resource(raw)


@pytest.mark.parametrize("md", [UNIFIED, SGLANG], ids=lambda m: m.spec.engine.metrics_dialect)
def test_engine_pod_binds_everywhere_mounts_shm_and_probes_health(md) -> None:
    pod = engine_pod(md, md.spec.placement.accelerator_classes[0])
    (container,) = pod["spec"]["containers"]
    assert flag_value(container["args"], "--host") == "0.0.0.0"
    assert flag_value(container["args"], "--port") == str(md.spec.engine.port)
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    (shm,) = [v for v in pod["spec"]["volumes"] if v["name"] == "dshm"]
    assert shm["emptyDir"]["medium"] == "Memory"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    # the liveness probe outlasts SGLang's 20 s one-token health generation
    assert container["livenessProbe"]["timeoutSeconds"] > 20


def test_dtype_tensor_parallel_and_context_come_from_the_spec() -> None:
    args = engine_pod(DISAGGREGATED)["spec"]["containers"][0]["args"]
    assert flag_value(args, "--dtype") == "bfloat16"
    assert flag_value(args, "--tensor-parallel-size") == "4"
    assert flag_value(args, "--max-model-len") == str(DISAGGREGATED.spec.model.max_context_tokens)
    raw = UNIFIED.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["model"]["dtype"] = "fp8"  # quantised checkpoints: activations in the checkpoint's dtype
    assert flag_value(engine_pod(parse_resource(raw))["spec"]["containers"][0]["args"], "--dtype") == "auto"


@pytest.mark.parametrize(("drain", "seconds"), [("60s", 60), ("2m", 120), ("1.5s", 2)])
def test_drain_waits_for_endpoints_then_finishes_in_flight_requests(drain, seconds) -> None:
    vllm = engine_pod(with_engine(UNIFIED, drainTimeout=drain))["spec"]
    (container,) = vllm["containers"]
    assert flag_value(container["args"], "--shutdown-timeout") == str(seconds)
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": PRESTOP_DELAY_S}}
    assert vllm["terminationGracePeriodSeconds"] >= PRESTOP_DELAY_S + seconds
    sglang = engine_pod(with_engine(SGLANG, drainTimeout=drain), "l4")["spec"]
    assert sglang["terminationGracePeriodSeconds"] >= PRESTOP_DELAY_S + seconds  # SGLang drains on SIGTERM


@pytest.mark.parametrize("md", [UNIFIED, SGLANG], ids=lambda m: m.spec.engine.metrics_dialect)
def test_engine_pods_are_hardened(md) -> None:
    spec = engine_pod(md, md.spec.placement.accelerator_classes[0])["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = spec["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]


POD_SETTINGS = {
    "env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}, {"name": "TIDAL_POOL", "value": "mine"},
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
    "envFrom": [{"secretRef": {"name": "hf-token"}}],
    "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": "model-cache", "readOnly": True}},
                {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}],
    "volumeMounts": [{"name": "cache", "mountPath": "/root/.cache/huggingface", "readOnly": True}],
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "nodeSelector": {"topology.kubernetes.io/zone": "us-east-1a"},
    "affinity": {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]},
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b"]}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"tidal.dev/deployment": "llama-8b-chat"}}}}]},
    },
    "resources": {"requests": {"cpu": "8", "memory": "64Gi"}, "limits": {"memory": "96Gi"}},
    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True},
    "serviceAccountName": "model-reader",
    "annotations": {"example.com/team": "chat"},
    "labels": {"team": "chat"},
}


def test_every_pod_setting_reaches_the_pod() -> None:
    md = with_engine(UNIFIED, pod=POD_SETTINGS)
    pod = engine_pod(md)
    spec, (container,) = pod["spec"], pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["VLLM_LOGGING_LEVEL"]["value"] == "DEBUG"
    assert env["TIDAL_POOL"]["value"] == "mine"  # same name: the user's entry wins
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token", "optional": False}
    assert container["envFrom"] == [{"secretRef": {"name": "hf-token", "optional": False}}]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["cache"]["persistentVolumeClaim"] == {"claimName": "model-cache", "readOnly": True}
    assert volumes["dshm"]["emptyDir"]["sizeLimit"] == "32Gi"  # replaces tidal's /dev/shm volume
    assert {"name": "cache", "mountPath": "/root/.cache/huggingface", "readOnly": True} in container["volumeMounts"]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"topology.kubernetes.io/zone": "us-east-1a"}
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    accelerator = {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}
    assert len(terms) == 2 and all(accelerator in t["matchExpressions"] for t in terms)  # ANDed into each term
    assert spec["affinity"]["podAntiAffinity"] == POD_SETTINGS["affinity"]["podAntiAffinity"]
    assert container["resources"]["requests"] == {"nvidia.com/gpu": "1", "cpu": "8", "memory": "64Gi"}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "96Gi"}
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 1000,
                                       "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False  # hardening stays
    assert spec["serviceAccountName"] == "model-reader" and spec["automountServiceAccountToken"] is False
    assert pod["metadata"]["annotations"] == {"example.com/team": "chat"}
    assert pod["metadata"]["labels"]["team"] == "chat" and pod["metadata"]["labels"][POOL_LABEL] == "unified"
    replicas = {ChildKey("unified", a): 1 for a in md.spec.placement.accelerator_classes}
    for child in render_children(md, UID, ACCELERATORS, replicas, None):
        kubernetes_validate.validate(child, "1.33.0", strict=True)


@pytest.mark.parametrize(("pod", "field", "message"), [
    ({"env": [{"name": "A", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     "env", "value or valueFrom"),
    ({"env": [{"name": "A B"}]}, "env[0].name", "required format"),
    ({"env": [{"name": "A"}, {"name": "A"}]}, "env", "duplicate names: A"),
    ({"envFrom": [{}]}, "envFrom", "exactly one of secretRef or configMapRef"),
    ({"volumes": [{"name": "v"}]}, "volumes", "exactly one of secret, configMap"),
    ({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, "pod", "not in volumes: nope"),
    ({"volumeMounts": [{"name": "dshm", "mountPath": "relative"}]}, "mountPath", "required format"),
    ({"tolerations": [{"effect": "Sometimes"}]}, "effect", "unsupported value 'Sometimes'"),
    ({"resources": {"requests": {"cpu": "lots"}}}, "cpu", "required format"),
    ({"resources": {"requests": {"gpu": "1"}}}, "requests.gpu", "unknown field"),
    ({"securityContext": {"runAsUser": -1}}, "runAsUser", "greater than or equal to 0"),
    ({"serviceAccountName": "Bad_Name"}, "serviceAccountName", "required format"),
    ({"labels": {"tidal.dev/pool": "x"}}, "labels", "select tidal's pods"),
    ({"affinity": {"nodeAfinity": {}}}, "affinity", "unknown keys nodeAfinity"),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": "a"}}}},
     "nodeSelectorTerms", "must be a list"),
    ({"affinity": {"nodeAffinity": "zone-a"}}, "affinity.nodeAffinity", "must be an object"),
    ({"hostNetwork": True}, "hostNetwork", "unknown field"),
])
def test_bad_pod_settings_name_the_field(pod, field, message) -> None:
    with pytest.raises(ValueError) as err:
        with_engine(UNIFIED, pod=pod)
    assert field in str(err.value) and message in str(err.value)


def test_minimum_kubernetes_version_is_stated_consistently() -> None:
    """The preStop sleep the pods use needs 1.30; the chart and the install guide must say so."""
    major, minor = MIN_KUBERNETES_VERSION
    root = EXAMPLES.parent
    chart = yaml.safe_load((root / "charts" / "tidal" / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={major}.{minor}.0-0"
    assert f"Kubernetes {major}.{minor} or newer" in (root / "docs" / "install.md").read_text()
    pod = engine_pod(UNIFIED)["spec"]["containers"][0]
    assert "sleep" in pod["lifecycle"]["preStop"] and "exec" not in pod["lifecycle"]["preStop"]


def test_a_name_controlled_by_another_owner_is_taken() -> None:
    from tidal.controllers.modeldeployment import taken_names

    ours = render_children(UNIFIED, UID, ACCELERATORS, {}, None)
    theirs = [{**c, "metadata": {**c["metadata"], "ownerReferences": [
        {"uid": "someone-else", "controller": True}]}} for c in ours if c["kind"] == "Service"]
    unowned = [{"kind": "Service", "metadata": {"name": "llama-8b-chat"}}]  # made by hand: not ours either
    assert taken_names(ours, ours, UID) == []  # our own objects are never taken
    assert taken_names(theirs, ours, UID) == sorted(("Service", c["metadata"]["name"]) for c in theirs)
    assert taken_names(unowned, ours, UID) == [("Service", "llama-8b-chat")]


def _with_strategy(md, strategy: str):
    raw = md.model_dump(by_alias=True, exclude_none=True)
    raw["spec"]["placement"]["strategy"] = strategy
    return parse_resource(raw)


def test_pack_prefers_nodes_that_already_run_tidal_engines_and_keeps_the_users_pod_affinity() -> None:
    assert "podAffinity" not in engine_pod(UNIFIED)["spec"]["affinity"], "cheapest sets no pod affinity"
    packed = engine_pod(_with_strategy(UNIFIED, "pack"))["spec"]["affinity"]
    (term,) = packed["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["weight"] == 100
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"] == {"matchExpressions": [{"key": POOL_LABEL, "operator": "Exists"}]}
    assert packed["nodeAffinity"] == engine_pod(UNIFIED)["spec"]["affinity"]["nodeAffinity"]
    mine = {"weight": 10, "podAffinityTerm": {"topologyKey": "topology.kubernetes.io/zone",
                                              "labelSelector": {"matchLabels": {"app": "cache"}}}}
    user = with_engine(_with_strategy(UNIFIED, "pack"), pod={"affinity": {"podAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [mine]}}})
    terms = engine_pod(user)["spec"]["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["weight"] == 10 and terms[1]["weight"] == 100
    for md in (_with_strategy(UNIFIED, "pack"), user):
        replicas = {ChildKey(p, a): 1 for p in pools_of(md) for a in md.spec.placement.accelerator_classes}
        for child in render_children(md, UID, ACCELERATORS, replicas, kv_ttl_s=None):
            kubernetes_validate.validate(child, "1.33.0", strict=True)


@pytest.mark.parametrize(("ttl", "exported"), [("auto", True), ("30s", False), ("off", False)])
def test_vllm_pods_export_kv_residency_only_for_ttl_auto(ttl, exported) -> None:
    """``kvCache.ttl: auto`` learns pauses from vLLM's KV-block residency histograms
    (docs/kv-ttl.md): its pods start with ``--kv-cache-metrics``; a fixed or no TTL needs none."""
    md = UNIFIED.model_copy(deep=True)
    md.spec.kv_cache.ttl = ttl
    key = next(iter(ACCELERATORS))
    args = render_deployment(md, UID, ChildKey("unified", key), ACCELERATORS[key], replicas=1)[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert ("--kv-cache-metrics" in args) is exported
    assert problems("vllm", args) == []


def test_sglang_pods_have_no_kv_residency_flags() -> None:
    md = SGLANG.model_copy(deep=True)
    md.spec.kv_cache.ttl = "auto"
    key = next(iter(ACCELERATORS))
    args = render_deployment(md, UID, ChildKey("unified", key), ACCELERATORS[key], replicas=1)[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(a.startswith("--kv-cache-metrics") for a in args)
