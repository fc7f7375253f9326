"""What prefill/decode disaggregation adds to each engine's pods, and the router in front of them.

The smallest correct set (docs/serving.md says why, with sources):

- vLLM: the NixlConnector on both pools (``--kv-transfer-config``); a decode replica pulls the KV
  blocks from the prefill replica named in the ``kv_transfer_params`` the router copies from the
  prefill answer into the decode request. NIXL's handshake listens on the side-channel port of the
  pod IP, and UCX moves the blocks (RDMA when present, or TCP when restricted to it).
  Router: vLLM's own router (vllm-project/router, ``--vllm-pd-disaggregation``), prefill first
  with ``max_tokens=1``, then decode.
- SGLang: ``--disaggregation-mode prefill|decode`` with the Mooncake transfer engine (SGLang's
  default backend; ``mooncake_tcp`` forces TCP); the prefill replica serves the KV handshake on its
  bootstrap port. Router: the SGLang Model Gateway (``smg``, formerly sgl-router) in
  ``--pd-disaggregation`` mode, which sends each request to a prefill and a decode replica at once
  with the prefill's bootstrap host, port and room.

Both routers find the replicas themselves with Kubernetes service discovery (pod label selectors),
so they follow tidal's scaling without a restart, and address single pods (SGLang's handshake needs
the very prefill pod that serves the request; a Service would pick another one). Pure data and pure
functions: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from tidal.controllers.engines import BIND_ALL_INTERFACES

Role = Literal["prefill", "decode"]
KvTransport = Literal["tcp", "rdma"]

NIXL_SIDE_CHANNEL_PORT = 5600
"""vLLM's default ``VLLM_NIXL_SIDE_CHANNEL_PORT`` (vllm/envs.py): where a prefill replica answers the
NIXL metadata handshake of the decode replicas."""
NIXL_KV_TRANSFER_CONFIG = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
"""The connector the vLLM docs use for NIXL disaggregation (docs/features/nixl_connector_usage.md):
the same config on prefill and decode; the request's ``kv_transfer_params`` decide who sends."""
UCX_TCP_TRANSPORTS = "cuda_ipc,cuda_copy,tcp"
"""``UCX_TLS`` that keeps UCX (NIXL's default backend) off RDMA: GPU blocks staged through cuda_copy and
sent over TCP, cuda_ipc between GPUs of one node. The vLLM NIXL guide configures transports with
``UCX_TLS`` (docs/features/nixl_connector_usage.md); a UCX transport list must name a CUDA transport for
GPU-resident KV blocks."""
SGLANG_BOOTSTRAP_PORT = 8998
"""SGLang's default ``--disaggregation-bootstrap-port``, rendered explicitly because the router learns
it from the pod annotation below."""
SGLANG_BOOTSTRAP_ANNOTATION = "sglang.ai/bootstrap-port"
"""The pod annotation smg's service discovery reads a prefill pod's bootstrap port from (fixed in smg
1.13.0: RouterArgs.bootstrap_port_annotation)."""
SGLANG_TRANSFER_BACKEND: dict[str, str] = {"tcp": "mooncake_tcp", "rdma": "mooncake"}
"""``--disaggregation-transfer-backend`` per transport: Mooncake is SGLang's default backend;
``mooncake_tcp`` is Mooncake with MC_FORCE_TCP (srt/arg_groups/pd_disaggregation_hook.py)."""
RDMA_CAPABILITY = "IPC_LOCK"
"""RDMA memory registration pins pages (ibv_reg_mr), which needs CAP_IPC_LOCK in a container, as
llm-d's RDMA P/D guides grant."""


@dataclass(frozen=True)
class KvTransferPod:
    """What one role of one engine adds to its pod for KV transfer."""

    args: tuple[str, ...]
    env: tuple[dict[str, Any], ...]
    ports: tuple[dict[str, Any], ...]
    annotations: dict[str, str]


def _pod_ip_env(name: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def kv_transfer_pod(engine: str, role: Role, transport: KvTransport) -> KvTransferPod:
    """Engine flags, environment, ports and annotations of a prefill or decode replica."""
    if engine == "vllm":
        env = [_pod_ip_env("VLLM_NIXL_SIDE_CHANNEL_HOST"),
               {"name": "VLLM_NIXL_SIDE_CHANNEL_PORT", "value": str(NIXL_SIDE_CHANNEL_PORT)}]
        if transport == "tcp":
            env.append({"name": "UCX_TLS", "value": UCX_TCP_TRANSPORTS})
        return KvTransferPod(
            args=("--kv-transfer-config", json.dumps(NIXL_KV_TRANSFER_CONFIG, separators=(",", ":"))),
            env=tuple(env),
            ports=({"name": "nixl", "containerPort": NIXL_SIDE_CHANNEL_PORT, "protocol": "TCP"},),
            annotations={},
        )
    if engine == "sglang":
        args = ["--disaggregation-mode", role, "--disaggregation-transfer-backend", SGLANG_TRANSFER_BACKEND[transport]]
        if role == "prefill":
            args += ["--disaggregation-bootstrap-port", str(SGLANG_BOOTSTRAP_PORT)]
            return KvTransferPod(
                args=tuple(args), env=(),
                ports=({"name": "bootstrap", "containerPort": SGLANG_BOOTSTRAP_PORT, "protocol": "TCP"},),
                annotations={SGLANG_BOOTSTRAP_ANNOTATION: str(SGLANG_BOOTSTRAP_PORT)},
            )
        return KvTransferPod(args=tuple(args), env=(), ports=(), annotations={})
    raise ValueError(f"no disaggregation for engine {engine!r}")


@dataclass(frozen=True)
class RouterCli:
    """One P/D router's image and command line, as its pinned release defines them."""

    name: str
    pinned_version: str
    """Release whose argument parser the flags were checked against (tests/controllers/data/engine_flags.json)."""
    image: str
    command: tuple[str, ...]
    """Explicit command, so the image's entrypoint or CMD never doubles it."""
    pd_flags: tuple[str, ...]
    """Flags that switch the router to prefill/decode routing."""
    liveness_path: str
    readiness_path: str
    """200 once the router has at least one healthy prefill and one healthy decode worker."""


VLLM_ROUTER = RouterCli(
    name="vllm-router",
    # vllm-project/router v0.1.17 (py_src/vllm_router/router_args.py; the image's Rust binary takes the
    # same option names, docs/cli_reference.md). Image published by .buildkite/scripts/publish-release-images.sh.
    pinned_version="0.1.17",
    image="vllm/vllm-router:v0.1.17",
    command=("vllm-router",),
    pd_flags=("--vllm-pd-disaggregation", "--kv-connector", "nixl"),
    liveness_path="/liveness",
    readiness_path="/readiness",
)

SMG = RouterCli(
    name="smg",
    # lightseekorg/smg 1.13.0 (bindings/python/src/smg/router_args.py); docker/Dockerfile runs the same
    # launcher (ENTRYPOINT python3 -m smg.launch_router).
    pinned_version="1.13.0",
    image="lightseekorg/smg:1.13.0",
    command=("python3", "-m", "smg.launch_router"),
    pd_flags=("--pd-disaggregation",),
    liveness_path="/liveness",
    readiness_path="/readiness",
)

ROUTERS: dict[str, RouterCli] = {"vllm": VLLM_ROUTER, "sglang": SMG}
"""The P/D router for each engine."""

PREFILL_POLICY = "cache_aware"
DECODE_POLICY = "power_of_two"
"""Both routers' documentation recommends cache-aware routing for prefill (reuses prefix caches) and
power-of-two-choices for decode (balances running sequences)."""
ROUTER_METRICS_PORT = 29000
"""Both routers' default Prometheus port, bound to all interfaces so it can be scraped."""
NAMESPACE_ENV = "POD_NAMESPACE"
"""The router's own namespace from the downward API: it watches engine pods only there."""


def router_args(router: RouterCli, port: int, engine_port: int, prefill_selector: dict[str, str],
                decode_selector: dict[str, str]) -> list[str]:
    """Container args of the router (its command is ``router.command``)."""
    def selector(labels: dict[str, str]) -> list[str]:
        return [f"{k}={v}" for k, v in sorted(labels.items())]

    return [
        "--host", BIND_ALL_INTERFACES, "--port", str(port), *router.pd_flags,
        "--service-discovery", "--service-discovery-namespace", f"$({NAMESPACE_ENV})",
        "--service-discovery-port", str(engine_port),
        "--prefill-selector", *selector(prefill_selector),
        "--decode-selector", *selector(decode_selector),
        "--prefill-policy", PREFILL_POLICY, "--decode-policy", DECODE_POLICY,
        "--prometheus-host", BIND_ALL_INTERFACES, "--prometheus-port", str(ROUTER_METRICS_PORT),
    ]
