"""What tidal knows about each serving engine's image and command line: the command that starts the
OpenAI-compatible server, the flag for each setting tidal renders, and the health endpoints.

Each engine is pinned to one release whose argument parser the flags were checked against
(``tests/controllers/data/engine_flags.json`` holds that parser's full flag list with its source, and a
test fails when a rendered flag is not in it). Newer releases usually keep these flags; an older vLLM
image may lack ``--shutdown-timeout`` and then refuses to start, so use the pinned release or newer.
Pure data and pure functions: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tidal.policies.defaults import KV_METRICS_SAMPLE_RATE

EngineName = Literal["vllm", "sglang"]

BIND_ALL_INTERFACES = "0.0.0.0"
"""Both engines bind to loopback unless told otherwise (SGLang's ``--host`` defaults to 127.0.0.1), which
the kubelet's probes and the Service cannot reach."""

SHM_MOUNT_PATH = "/dev/shm"
"""PyTorch/NCCL exchange tensors between tensor-parallel workers through shared memory; the container
runtime's default /dev/shm is 64 MiB, so the engines' deployment guides mount a memory-backed emptyDir."""


@dataclass(frozen=True)
class EngineCli:
    """One engine's command line and endpoints, as its pinned release defines them."""

    name: EngineName
    pinned_version: str
    """Release whose argument parser the flags below were checked against."""
    image: str
    """Official image of the pinned release (what docs/install.md's examples assume)."""
    command: tuple[str, ...]
    """Explicit container command, so the image's ENTRYPOINT can never prefix a second copy of it."""
    model_flag: str | None
    """Flag that names the model, or None when the model is the first positional argument."""
    tensor_parallel_flag: str
    context_length_flag: str
    extra_flags: tuple[str, ...]
    """Flags every replica needs (SGLang exports Prometheus metrics only with ``--enable-metrics``)."""
    kv_residency_flags: tuple[str, ...] | None
    """Flags that make the engine export its sampled KV-block residency histograms, which
    ``kvCache.ttl: auto`` learns session pauses from (docs/kv-ttl.md); None when the engine has no
    such metrics."""
    shutdown_timeout_flag: str | None
    """Flag that makes the engine finish in-flight requests on SIGTERM for up to N seconds, or None
    when the engine always drains on SIGTERM and only the pod's grace period bounds it."""
    startup_path: str
    """Answers 200 once the model is loaded (the startup probe's target)."""
    readiness_path: str
    """Answers 200 while the replica accepts new requests; non-200 while starting or draining."""
    liveness_path: str
    """Answers non-200 when the engine is dead or hung. The kubelet stops liveness and startup probes
    once a pod is being deleted (prober worker, "Pod deletion requested"), so a drain never restarts it."""


VLLM = EngineCli(
    name="vllm",
    # vllm 0.33.0 (released wheel; upstream commit 4ba787ec9): vllm/engine/arg_utils.py and
    # vllm/entrypoints/common/cli_args.py. `--shutdown-timeout` (int seconds, 0 = abort in-flight
    # requests on SIGTERM, >0 = wait up to that long) is defined in arg_utils.py.
    pinned_version="0.33.0",
    image="vllm/vllm-openai:v0.33.0",
    command=("vllm", "serve"),
    model_flag=None,
    tensor_parallel_flag="--tensor-parallel-size",
    context_length_flag="--max-model-len",
    extra_flags=(),
    # vllm/config/observability.py: --kv-cache-metrics (off by default) turns on
    # vllm/v1/core/kv_cache_metrics.py, following a --kv-cache-metrics-sample fraction of blocks
    # (default 0.01, rendered explicitly so the simulator's rate is the engine's).
    kv_residency_flags=("--kv-cache-metrics", "--kv-cache-metrics-sample", f"{KV_METRICS_SAMPLE_RATE:g}"),
    shutdown_timeout_flag="--shutdown-timeout",
    # vllm/entrypoints/serve/instrumentator/health.py: /health is 200 unless the engine is dead; the
    # HTTP server starts listening only after the weights are loaded, so it doubles as the startup
    # and readiness check. On SIGTERM the API server drains the engine for --shutdown-timeout seconds
    # and only then stops HTTP (entrypoints/launchers/launcher.py); the Service has already dropped
    # the pod, because Kubernetes marks a deleted pod's endpoints terminating whatever its probes say.
    startup_path="/health",
    readiness_path="/health",
    liveness_path="/health",
)

SGLANG = EngineCli(
    name="sglang",
    # sglang 0.5.23 (released wheel): python/sglang/srt/server_args.py (ServerArgs.add_cli_args) and
    # python/sglang/launch_server.py.
    pinned_version="0.5.23",
    image="lmsysorg/sglang:v0.5.23",
    command=("python3", "-m", "sglang.launch_server"),
    model_flag="--model-path",
    tensor_parallel_flag="--tp-size",
    context_length_flag="--context-length",
    extra_flags=("--enable-metrics",),
    # SGLang exports cache hit rates (sglang:cache_hit_rate), with no time in them: no residency flags.
    kv_residency_flags=None,
    # SGLang has no drain flag: on SIGTERM its tokenizer manager stops accepting requests and waits
    # for the running ones to finish (srt/managers/tokenizer_manager.py sigterm_watchdog), bounded only
    # by the pod's termination grace period.
    shutdown_timeout_flag=None,
    # srt/entrypoints/http_server.py: /ready is 200 only once the warm-up request succeeded and until
    # SIGTERM; /health runs a one-token generation and answers after at least a second (up to
    # SGLANG_HEALTH_CHECK_TIMEOUT, 20 s), too slow for the frequent startup and readiness probes.
    startup_path="/ready",
    readiness_path="/ready",
    liveness_path="/health",
)

ENGINES: dict[str, EngineCli] = {VLLM.name: VLLM, SGLANG.name: SGLANG}

ENGINE_DTYPES: dict[str, str] = {
    "float16": "float16",
    "bfloat16": "bfloat16",
    # Quantised checkpoints carry their quantisation in the model config, which both engines read;
    # activations then use the checkpoint's dtype, which is what `--dtype auto` selects.
    "fp8": "auto",
    "int8": "auto",
    "int4": "auto",
}
"""ModelSpec.dtype -> the engines' ``--dtype`` value (both accept auto, half, float16, bfloat16, float,
float32 in the pinned releases)."""


def engine_args(
    engine: EngineCli,
    model: str,
    port: int,
    dtype: str,
    tensor_parallel: int,
    context_tokens: int,
    shutdown_timeout_s: int,
    kv_residency: bool = False,
) -> list[str]:
    """The container args for one replica (the command is ``engine.command``). User-supplied extra
    arguments go after these, so a user flag given twice wins where the engine's parser lets the last
    occurrence win (argparse does). ``kv_residency``: export the KV-block residency histograms
    (``kvCache.ttl: auto``), where the engine has them."""
    args = [model] if engine.model_flag is None else [engine.model_flag, model]
    args += ["--host", BIND_ALL_INTERFACES, "--port", str(port), "--dtype", ENGINE_DTYPES[dtype]]
    args += [engine.tensor_parallel_flag, str(tensor_parallel)]
    args += [engine.context_length_flag, str(context_tokens)]
    args += list(engine.extra_flags)
    if kv_residency and engine.kv_residency_flags is not None:
        args += list(engine.kv_residency_flags)
    if engine.shutdown_timeout_flag is not None:
        args += [engine.shutdown_timeout_flag, str(shutdown_timeout_s)]
    return args
