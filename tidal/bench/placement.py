"""Placement across accelerator classes: cost per hour and SLO attainment of tidal's placement on a
mixed cluster, against H100-only, cheapest-only and the hourly-cost order rule (docs/bench.md).

Every run replays the same Azure LLM 2023 hour (conversation, code) through the same core
(``decide_workload``, the simulator shell) with the same ModelDeployment: Llama-3.1-8B, one GPU per
replica, the trace's SLO at p99 (tidal/bench/workloads.py). Only where replicas may run differs:

- ``tidal``: a mixed cluster with limited numbers of each class (:data:`MIXED_GPUS`); the core ranks
  the classes by cost per goodput, splits each pool by goodput, spills past full classes and moves
  replicas back when that pays;
- ``hourly-order``: the same mixed cluster and core, ranking the feasible classes by ascending
  hourlyCost (the rule before cost-per-goodput ranking; the spec lists them so, so it is also the
  spec order) instead of cost per goodput;
- ``h100-only``: the ModelDeployment allows only the H100 class, with room for any count;
- ``cheapest-only``: only the class with the lowest hourlyCost that can meet the SLO at all (L4 for
  the conversation trace; the L40S for code, whose 50 ms TPOT an L4 misses even idle), with room.

Each replay starts with the trace's first :data:`~tidal.bench.settings.WARMUP_S` seconds, unscored,
as the policy bench does (tidal/bench/warmup.py): cost and attainment count from the end of the
warm-up, over every scored request (unfinished ones miss). Without it the first minute's cold launch
at 4x the load (one replica, no history) held most of every rule's misses.

Classes are the hardware table's (tidal/sim/hardware.py) at its list prices. The L4 has no
calibration rows of its own: the simulator runs it on the A40's measured operator tables scaled by
the datasheet roofline ratio (``profile_proxy``), and tidal's profile uses its datasheet figures.

Run: ``python bench/placement.py`` (``make bench-placement``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment
from tidal.bench.settings import TARGET_ATTAINMENT, WARMUP_S
from tidal.bench.warmup import scored, with_warmup
from tidal.bench.workloads import TRACES
from tidal.core.modeldeployment import accelerator_profile, decide_workload
from tidal.core.placement import class_preference, cost_per_goodput, planner_mix
from tidal.core.state import CoreState
from tidal.policies.interface import Decision, Observation
from tidal.sim.hardware import TFLOPS, get_accelerator, get_model
from tidal.sim.modeldeployment import ModelDeploymentAutoscaler, mixed_config, prepare
from tidal.sim.runner import SimResult, Simulation
from tidal.sim.traces import superpose

CLASSES = {"l4": "L4", "l40s": "L40S", "a100": "A100-80GB", "h100": "H100-80GB"}
"""AcceleratorClass name -> simulator hardware; the spec lists them in this order (ascending price)."""
MIXED_GPUS = {"l4": 8, "l40s": 4, "a100": 8, "h100": 2}
"""The mixed cluster: one node of each class with this many GPUs. Fewer GPUs of the classes that
serve the traces cheapest (H100, L40S) than the replayed peaks need, so placement must spill."""
COPIES = 4
"""Each trace superposed 4 times over its hour, phase-shifted by a quarter (tidal/sim/traces
``superpose``): at the recorded rates (5.5 and 2.6 req/s on average) one or two H100s serve either
trace and no class would run out; compressing time instead (``rate_scale``) would make every cold
start 4x longer against the load's changes."""
UNLIMITED_NODES = 8
"""Nodes of the single class in the one-class baselines: more GPUs than any of them asks for."""
MAX_REPLICAS = 48
"""The pool's maxReplicas: above what any rule asks for, so only the cluster limits it."""
TRACE_NAMES = ("azure-conv", "azure-code")


def accelerator_class(name: str) -> AcceleratorClass:
    hw = get_accelerator(CLASSES[name])
    return AcceleratorClass.model_validate({"metadata": {"name": name}, "spec": {
        "memory": str(int(hw.memory_bytes)), "peakTflops": hw.peak_bf16_flops / TFLOPS,
        "memoryBandwidthGbps": hw.memory_bandwidth_bps / 1e9, "hourlyCost": hw.gpu_hour_cost_usd}})


def manifest(trace: str, allowed: list[str]) -> ModelDeployment:
    """The ModelDeployment a user would apply for ``trace`` on ``allowed`` classes."""
    model, slo = get_model("llama-3.1-8b"), TRACES[trace].slo
    return ModelDeployment.model_validate({"metadata": {"name": "bench", "namespace": "bench"}, "spec": {
        "model": {"name": model.name, "parametersBillions": model.params / 1e9,
                  "weightsSize": str(int(model.weights_bytes))},
        "engine": {"image": "vllm/vllm-openai"},
        "slo": {"ttft": f"{slo.ttft_s * 1000:.0f}ms", "tpot": f"{slo.tpot_s * 1000:.0f}ms",
                "percentile": TARGET_ATTAINMENT * 100},
        "pools": {"unified": {"minReplicas": 1, "maxReplicas": MAX_REPLICAS, "gpusPerReplica": 1}},
        "placement": {"acceleratorClasses": allowed}, "autoscaling": {"predictor": "holt-winters"}}})


class HourlyOrderAutoscaler(ModelDeploymentAutoscaler):
    """The order before cost-per-goodput ranking, through the same core: the feasible classes in
    ascending hourlyCost (the spec lists them so). The core is shown per-class prices that make its
    cost per goodput 1, 2, 3... in that order (each tick, at the planner's current mix); sizing,
    splitting by goodput, spilling and moves are the core's. The bill uses the real prices."""

    name = "hourly-order"

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        seen = self.observation(observation)
        core = state if isinstance(state, CoreState) else CoreState()
        md, mix = self.wl.md, planner_mix(core)
        order = sorted(seen.accelerators, key=lambda c: (seen.accelerators[c].hourly_cost,
                                                         md.spec.placement.accelerator_classes.index(c)))
        shown = dict(seen.accelerators)
        for rank, c in enumerate(order, start=1):
            per_goodput = cost_per_goodput(md, replace(shown[c], hourly_cost=1.0), mix)
            if per_goodput != float("inf"):
                shown[c] = replace(shown[c], hourly_cost=rank / per_goodput)
        wd, core = decide_workload(md, replace(seen, accelerators=shown), core)
        placement: dict[str, dict[str, int]] = {}
        for key, n in wd.by_child.items():
            placement.setdefault(key.pool, {})[key.accelerator] = n
        return replace(wd.decision, details={"workload": wd, "placement": placement}), core


RULES = ("tidal", "h100-only", "cheapest-only", "hourly-order")


@dataclass(frozen=True)
class Row:
    """One replay: the rule, the classes it could use, cost per hour, SLO attainment, GPU-hours per class."""

    trace: str
    rule: str
    classes: str
    cost_per_hour: float
    attainment: float
    gpu_hours_by_class: dict[str, float]
    wall_s: float


def run(trace: str, rule: str, duration_s: float | None = None, seed: int = 0, copies: int = COPIES,
        mixed_gpus: dict[str, int] | None = None, traces_dir: Path | None = None) -> Row:
    """Replay ``trace`` (``copies`` superposed, the first ``duration_s`` seconds) under ``rule``."""
    trace_requests = superpose(TRACES[trace].load(traces_dir, seed, duration_s), copies)
    requests = with_warmup(trace_requests, WARMUP_S)
    classes = {n: accelerator_class(n) for n in CLASSES}
    if rule in ("tidal", "hourly-order"):
        allowed, nodes, per_node = list(CLASSES), {c: 1 for c in CLASSES}, mixed_gpus or MIXED_GPUS
    elif rule == "h100-only":
        allowed, nodes, per_node = ["h100"], {"h100": UNLIMITED_NODES}, {}
    else:
        md = manifest(trace, list(CLASSES))
        prefs = class_preference(md, {n: accelerator_profile(a) for n, a in classes.items()}, planner_mix(None))
        cheapest = next(c for c in prefs.ordered if c in prefs.preference)
        allowed, nodes, per_node = [cheapest], {cheapest: UNLIMITED_NODES}, {}
    md = manifest(trace, allowed)
    wl = prepare(md, {n: classes[n] for n in allowed})
    cfg = mixed_config(wl, classes, nodes, per_node, seed=seed)
    shell = HourlyOrderAutoscaler(wl) if rule == "hourly-order" else ModelDeploymentAutoscaler(wl)
    started = time.perf_counter()
    result = Simulation(requests, shell, cfg).run()
    hours = (result.summary["simulated_s"] - WARMUP_S) / 3600.0
    gpu_hours = {c: 0.0 for c in allowed} | gpu_hours_by_class(result, WARMUP_S, 1)
    cost = sum(h * classes[c].spec.hourly_cost for c, h in gpu_hours.items())
    attainment = scored(result, WARMUP_S, len(trace_requests), 1)["slo_attainment"]
    return Row(trace, rule, "+".join(allowed), cost / hours if hours > 0 else 0.0, attainment,
               {c: round(h, 2) for c, h in gpu_hours.items()}, time.perf_counter() - started)


def gpu_hours_by_class(result: SimResult, from_s: float, gpus_per_pod: int) -> dict[str, float]:
    """GPU-hours per class from ``from_s`` on (a GPU counts from its pod's scheduling to its
    termination, as ``tidal.bench.warmup.scored`` counts it), for every class pods ran on."""
    end = float(result.summary["simulated_s"])
    hours: dict[str, float] = {}
    for pod in result.pods:
        if pod["scheduled_s"] is None:
            continue
        stop = pod["terminated_s"] if pod["terminated_s"] is not None else end
        seconds = max(0.0, stop - max(pod["scheduled_s"], from_s)) * gpus_per_pod
        hours[pod["class"]] = hours.get(pod["class"], 0.0) + seconds / 3600.0
    return hours


def verdict(rows: list[Row], trace: str) -> tuple[bool, list[str]]:
    """Whether tidal met the target on ``trace`` (>= TARGET_ATTAINMENT, cheaper per hour than
    h100-only and cheapest-only), and one line per baseline."""
    by = {r.rule: r for r in rows if r.trace == trace}
    t = by["tidal"]
    lines = [f"tidal vs {o}: cost x{t.cost_per_hour / by[o].cost_per_hour:.3f}, attainment "
             f"{t.attainment:.2%} vs {by[o].attainment:.2%}" for o in RULES[1:] if o in by]
    met = t.attainment >= TARGET_ATTAINMENT and all(
        t.cost_per_hour < by[o].cost_per_hour for o in ("h100-only", "cheapest-only") if o in by)
    return met, lines


def markdown(rows: list[Row]) -> str:
    """The rows as the table in docs/bench.md."""
    out = ["| trace | rule | classes | cost/hour | attainment | GPU-hours by class |",
           "|---|---|---|---:|---:|---|"]
    for r in rows:
        hours = ", ".join(f"{c} {h:g}" for c, h in r.gpu_hours_by_class.items() if h)
        out.append(f"| {r.trace} | {r.rule} | {r.classes} | ${r.cost_per_hour:.2f} | {r.attainment:.2%} | {hours} |")
    return "\n".join(out)



