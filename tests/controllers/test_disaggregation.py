"""Prefill/decode disaggregation: each engine's KV-transfer settings on the right pools, a router whose
command line its pinned release accepts and whose selectors find exactly the pools' pods, and one entry
Service in both modes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tidal.api.validation import InvalidResource

from tests.controllers.engine_flags import problems
from tests.controllers.test_modeldeployment_render import (
    ACCELERATORS, DISAGGREGATED, SGLANG_PD, UID, UNIFIED, by_kind, flag_value,
)
from tidal.api.validation import parse_resource
from tidal.controllers.disaggregation import (
    NIXL_SIDE_CHANNEL_PORT, ROUTERS, SGLANG_BOOTSTRAP_ANNOTATION, SGLANG_BOOTSTRAP_PORT, UCX_TCP_TRANSPORTS,
    kv_transfer_pod,
)
from tidal.controllers.modeldeployment import ChildKey, render_children, render_pod_template
from tidal.controllers.pd_router import POD_READ_VERBS

ENGINE_OF_ROUTER = {"vllm": "vllm-router", "sglang": "smg"}


def with_spec(md, **fields):
    raw = md.model_dump(by_alias=True, exclude_none=True)
    for path, value in fields.items():
        node = raw["spec"]
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_resource(raw)


def pool_pod(md, pool):
    acc = md.spec.placement.accelerator_classes[0]
    return render_pod_template(md, ChildKey(pool, acc), ACCELERATORS[acc])


def container_of(pod):
    (container,) = pod["spec"]["containers"]
    return container


def env_of(container):
    return {e["name"]: e for e in container["env"]}


def children(md):
    return render_children(md, UID, ACCELERATORS, {}, kv_ttl_s=None)


def router_deployment(md):
    (dep,) = [d for d in by_kind(children(md), "Deployment") if d["metadata"]["name"].endswith("-router")]
    return dep


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selector_arg(args, flag):
    start = args.index(flag) + 1
    pairs = []
    while start < len(args) and not args[start].startswith("-"):
        pairs.append(args[start])
        start += 1
    return dict(p.split("=", 1) for p in pairs)


@pytest.mark.parametrize("pool", ["prefill", "decode"])
def test_vllm_pools_run_the_nixl_connector_reachable_on_the_pod_ip(pool) -> None:
    container = container_of(pool_pod(DISAGGREGATED, pool))
    config = json.loads(flag_value(container["args"], "--kv-transfer-config"))
    assert config == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    env = env_of(container)
    # NIXL's handshake binds localhost unless told the pod IP, which decode pods on other nodes need.
    assert env["VLLM_NIXL_SIDE_CHANNEL_HOST"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["VLLM_NIXL_SIDE_CHANNEL_PORT"]["value"] == str(NIXL_SIDE_CHANNEL_PORT)
    assert {"name": "nixl", "containerPort": NIXL_SIDE_CHANNEL_PORT, "protocol": "TCP"} in container["ports"]
    assert env["UCX_TLS"]["value"] == UCX_TCP_TRANSPORTS  # the example's kvTransport: tcp
    assert problems("vllm", container["args"]) == []


def test_sglang_prefill_serves_the_bootstrap_port_the_router_reads_from_its_annotation() -> None:
    prefill, decode = pool_pod(SGLANG_PD, "prefill"), pool_pod(SGLANG_PD, "decode")
    p_args, d_args = container_of(prefill)["args"], container_of(decode)["args"]
    assert flag_value(p_args, "--disaggregation-mode") == "prefill"
    assert flag_value(d_args, "--disaggregation-mode") == "decode"
    assert flag_value(p_args, "--disaggregation-bootstrap-port") == str(SGLANG_BOOTSTRAP_PORT)
    assert prefill["metadata"]["annotations"][SGLANG_BOOTSTRAP_ANNOTATION] == str(SGLANG_BOOTSTRAP_PORT)
    assert "--disaggregation-bootstrap-port" not in d_args
    assert SGLANG_BOOTSTRAP_ANNOTATION not in decode["metadata"].get("annotations", {})
    for args in (p_args, d_args):
        assert flag_value(args, "--disaggregation-transfer-backend") == "mooncake"  # the example's rdma
        assert problems("sglang", args) == []


@pytest.mark.parametrize(("transport", "backend"), [("tcp", "mooncake_tcp"), ("rdma", "mooncake")])
def test_sglang_transfer_backend_follows_the_transport(transport, backend) -> None:
    raw = {"kvTransport": transport} if transport == "tcp" else {"kvTransport": "rdma"}
    md = with_spec(SGLANG_PD, disaggregation=raw)
    assert flag_value(container_of(pool_pod(md, "decode"))["args"], "--disaggregation-transfer-backend") == backend


def test_rdma_adds_ipc_lock_and_the_nic_resource_and_tcp_neither() -> None:
    rdma = container_of(pool_pod(SGLANG_PD, "prefill"))
    assert rdma["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["IPC_LOCK"]}
    assert rdma["resources"]["limits"]["rdma/ib"] == "1" and rdma["resources"]["requests"]["rdma/ib"] == "1"
    vllm_rdma = container_of(pool_pod(with_spec(DISAGGREGATED, disaggregation={"kvTransport": "rdma"}), "decode"))
    assert "UCX_TLS" not in env_of(vllm_rdma)  # UCX picks the RDMA transports itself
    tcp = container_of(pool_pod(DISAGGREGATED, "decode"))
    assert tcp["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(tcp["resources"]["limits"]) == {"nvidia.com/gpu"}


def test_rdma_resource_without_rdma_is_rejected_naming_the_field() -> None:
    with pytest.raises(InvalidResource, match="spec.disaggregation: .*rdmaDeviceResource needs kvTransport: rdma"):
        with_spec(DISAGGREGATED, disaggregation={"kvTransport": "tcp", "rdmaDeviceResource": "rdma/ib"})


def test_unified_pods_get_no_kv_transfer() -> None:
    container = container_of(pool_pod(UNIFIED, "unified"))
    assert "--kv-transfer-config" not in container["args"] and "UCX_TLS" not in env_of(container)
    assert not any(c["kind"] in ("Role", "RoleBinding", "ServiceAccount") for c in children(UNIFIED))
    assert [d["metadata"]["name"] for d in by_kind(children(UNIFIED), "Deployment")
            if d["metadata"]["name"].endswith("-router")] == []


@pytest.mark.parametrize("md", [DISAGGREGATED, SGLANG_PD], ids=lambda m: m.spec.engine.metrics_dialect)
def test_router_runs_the_engines_router_with_flags_its_release_accepts(md) -> None:
    dialect = md.spec.engine.metrics_dialect
    router = ROUTERS[dialect]
    pod = router_deployment(md)["spec"]["template"]["spec"]
    container = container_of({"spec": pod})
    assert container["image"] == router.image and container["command"] == list(router.command)
    assert problems(ENGINE_OF_ROUTER[dialect], container["args"]) == []
    assert flag_value(container["args"], "--port") == str(md.spec.engine.port)
    assert flag_value(container["args"], "--service-discovery-port") == str(md.spec.engine.port)
    # It watches only its own namespace, named by the downward API (Kubernetes expands $(VAR) in args).
    assert flag_value(container["args"], "--service-discovery-namespace") == "$(POD_NAMESPACE)"
    assert env_of(container)["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


@pytest.mark.parametrize("md", [DISAGGREGATED, SGLANG_PD], ids=lambda m: m.spec.engine.metrics_dialect)
def test_router_selectors_find_exactly_their_pool_and_the_entry_finds_the_router(md) -> None:
    args = container_of(router_deployment(md)["spec"]["template"])["args"]
    prefill_labels = pool_pod(md, "prefill")["metadata"]["labels"]
    decode_labels = pool_pod(md, "decode")["metadata"]["labels"]
    prefill_sel, decode_sel = selector_arg(args, "--prefill-selector"), selector_arg(args, "--decode-selector")
    assert selects(prefill_sel, prefill_labels) and not selects(prefill_sel, decode_labels)
    assert selects(decode_sel, decode_labels) and not selects(decode_sel, prefill_labels)
    router_labels = router_deployment(md)["spec"]["template"]["metadata"]["labels"]
    (entry,) = [s for s in by_kind(children(md), "Service") if s["metadata"]["name"] == md.metadata.name]
    assert selects(entry["spec"]["selector"], router_labels)
    assert not selects(entry["spec"]["selector"], prefill_labels) and not selects(entry["spec"]["selector"], decode_labels)
    assert entry["spec"]["ports"] == [{"name": "http", "port": md.spec.engine.port, "targetPort": "http"}]


def test_unified_entry_service_is_the_same_name_and_port_on_the_engines() -> None:
    (entry,) = [s for s in by_kind(children(UNIFIED), "Service") if s["metadata"]["name"] == "llama-8b-chat"]
    assert selects(entry["spec"]["selector"], pool_pod(UNIFIED, "unified")["metadata"]["labels"])
    assert entry["spec"]["ports"][0]["port"] == UNIFIED.spec.engine.port


@pytest.mark.parametrize("md", [DISAGGREGATED, SGLANG_PD], ids=lambda m: m.spec.engine.metrics_dialect)
def test_router_identity_reads_pods_and_nothing_else(md) -> None:
    rendered = children(md)
    (sa,) = by_kind(rendered, "ServiceAccount")
    (role,) = by_kind(rendered, "Role")
    (binding,) = by_kind(rendered, "RoleBinding")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": list(POD_READ_VERBS)}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [s["name"] for s in binding["subjects"]] == [sa["metadata"]["name"]]
    pod = router_deployment(md)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"] and pod["automountServiceAccountToken"] is True
    for obj in (sa, role, binding):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == UID


def test_router_drains_like_the_engines() -> None:
    pod = router_deployment(DISAGGREGATED)["spec"]["template"]["spec"]
    engine = pool_pod(DISAGGREGATED, "decode")["spec"]
    assert pod["terminationGracePeriodSeconds"] == engine["terminationGracePeriodSeconds"]
    assert container_of({"spec": pod})["lifecycle"] == container_of({"spec": engine})["lifecycle"]


def test_router_image_can_be_mirrored() -> None:
    md = with_spec(DISAGGREGATED, disaggregation={"routerImage": "mirror.internal/vllm-router:v0.1.17"})
    assert container_of(router_deployment(md)["spec"]["template"])["image"] == "mirror.internal/vllm-router:v0.1.17"


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
@given(role=st.sampled_from(["prefill", "decode"]), transport=st.sampled_from(["tcp", "rdma"]))
def test_every_kv_transfer_flag_is_accepted(engine, role, transport) -> None:
    assert problems(engine, list(kv_transfer_pod(engine, role, transport).args)) == []


@pytest.mark.parametrize("md", [DISAGGREGATED, SGLANG_PD], ids=lambda m: m.spec.engine.metrics_dialect)
def test_the_scale_selector_counts_engine_pods_never_the_router(md) -> None:
    from tidal.controllers.modeldeployment import label_selector

    key, value = label_selector(md.metadata.name).split("=")
    router_labels = router_deployment(md)["spec"]["template"]["metadata"]["labels"]
    assert router_labels.get(key) != value
    assert pool_pod(md, "prefill")["metadata"]["labels"][key] == value
    # the router's objects are still listed (and pruned) with the ModelDeployment's children
    assert router_deployment(md)["metadata"]["labels"][key] == value
