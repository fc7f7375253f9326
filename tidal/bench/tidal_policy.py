"""``tidal`` in the bench: the ModelDeployment a user of the bench setup would apply, run through the
core's ``decide_workload`` by the simulator shell (tidal/sim/modeldeployment.py), exactly as
``tidal simulate -f`` and the operator's tick run it.

The CR states what a user knows: the model's name, size and weight bytes, the trace's SLO at the
bench's target (99 % of requests, so ``percentile: 99``), the pools' bounds and GPUs per replica, and an AcceleratorClass with the GPU's datasheet figures and price.
Nothing in it comes from the simulator's step times; the planner learns those online.
"""

from __future__ import annotations

from typing import Any

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.bench.settings import TARGET_ATTAINMENT
from tidal.api.modeldeployment import ModelDeployment
from tidal.operator.settings import DEFAULT_INTERVAL_S
from tidal.policies.interface import POOL_DECODE, POOL_PREFILL, POOL_UNIFIED
from tidal.sim.hardware import TFLOPS, get_accelerator, get_model
from tidal.sim.modeldeployment import ModelDeploymentAutoscaler, prepare
from tidal.sim.runner import MODE_DISAGGREGATED, SimConfig

BENCH_CLASS = "bench-gpu"
"""The AcceleratorClass name the bench's CR places on."""
BENCH_NAMESPACE = "bench"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def bench_manifests(config: SimConfig, min_replicas: int, max_replicas: int,
                    autoscaling: dict[str, Any] | None = None) -> tuple[ModelDeployment, AcceleratorClass]:
    """The ModelDeployment and AcceleratorClass a user of ``config``'s cluster would write."""
    model = get_model(config.model)
    gpu = get_accelerator(config.accelerator)
    acc = AcceleratorClass.model_validate({
        "metadata": {"name": BENCH_CLASS},
        "spec": {"memory": str(int(gpu.memory_bytes)), "peakTflops": gpu.peak_bf16_flops / TFLOPS,
                 "memoryBandwidthGbps": gpu.memory_bandwidth_bps / 1e9,
                 "hourlyCost": config.gpu_hour_cost_usd or gpu.gpu_hour_cost_usd},
    })
    roles = (POOL_PREFILL, POOL_DECODE) if config.mode == MODE_DISAGGREGATED else (POOL_UNIFIED,)
    pools = {role: {"minReplicas": min_replicas, "maxReplicas": max_replicas, "gpusPerReplica": config.tp}
             for role in roles}
    slo: dict[str, Any] = {"percentile": TARGET_ATTAINMENT * 100, "attainment": TARGET_ATTAINMENT}
    if config.slo.ttft_s != float("inf"):
        slo["ttft"] = _duration(config.slo.ttft_s)
    if config.slo.tpot_s != float("inf"):
        slo["tpot"] = _duration(config.slo.tpot_s)
    md = ModelDeployment.model_validate({
        "metadata": {"name": "bench", "namespace": BENCH_NAMESPACE},
        "spec": {"model": {"name": model.name, "parametersBillions": model.params / 1e9,
                           "weightsSize": str(int(model.weights_bytes))},
                 "engine": {"image": "vllm/vllm-openai"}, "slo": slo, "mode": config.mode, "pools": pools,
                 "placement": {"acceleratorClasses": [BENCH_CLASS]}, "autoscaling": autoscaling or {}},
    })
    return md, acc


def tidal_autoscaler(config: SimConfig, min_replicas: int, max_replicas: int,
                     **autoscaling: Any) -> ModelDeploymentAutoscaler:
    """The core on the bench's CR; ``autoscaling`` are ``spec.autoscaling`` fields in CRD spelling
    (e.g. ``predictor="holt-winters"``, ``prewarm=False``). It runs at the operator's tick."""
    md, acc = bench_manifests(config, min_replicas, max_replicas, autoscaling)
    wl = prepare(md, {BENCH_CLASS: acc}, hardware=config.accelerator, model=config.model)
    return ModelDeploymentAutoscaler(wl, DEFAULT_INTERVAL_S)
