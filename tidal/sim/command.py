"""``tidal simulate``: replay a trace through the simulator under a policy, or under a
ModelDeployment manifest (``-f``: tidal's own decision core, tidal/sim/modeldeployment.py), and report.

Registered on the main CLI by tidal/cli.py; kept here as a plain function with
typer annotations so the simulator owns its options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tidal.operator.settings import DEFAULT_INTERVAL_S
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.interface import POOL_DECODE, POOL_PREFILL, POOL_UNIFIED, Autoscaler
from tidal.policies.utilization import UtilizationTarget
from tidal.sim.engine import DEFAULT_ENGINE_VERSION, ENGINE_VERSIONS, EngineConfig
from tidal.sim.hardware import ACCELERATORS, MODELS, QUANT_SUFFIXES, get_accelerator
from tidal.sim.modeldeployment import (ManifestError, ModelDeploymentAutoscaler, load_manifests, mixed_config,
                                       prepare, sim_config)
from tidal.sim.report import summary_rows, write_html_report
from tidal.sim.serverless.platform import ActivatorModel
from tidal.sim.runner import MODE_DISAGGREGATED, MODE_UNIFIED, SLO, SimConfig, Simulation

DEFAULT_POLICY = "fixed:4"
DEFAULT_ACCELERATOR = "H100-80GB"
DEFAULT_MODEL = "llama-3.1-8b"
POLICY_HELP = ("fixed:N (unified), fixed:P/D (disaggregated prefill/decode), or "
               "utilization[:TARGET[:MIN[:MAX]]] (in-flight requests per replica)")


def parse_policy(spec: str, mode: str) -> Autoscaler:
    """Build a policy from its command-line spelling; errors say what is accepted."""
    name, _, arg = spec.partition(":")
    pools = ((POOL_UNIFIED,) if mode == MODE_UNIFIED else (POOL_PREFILL, POOL_DECODE))
    try:
        if name == "fixed":
            counts = [int(x) for x in arg.split("/")] if arg else [1]
            if len(counts) == 1:
                counts = counts * len(pools)
            if len(counts) != len(pools):
                raise ValueError(f"expected {len(pools)} counts separated by '/'")
            return FixedReplicas(dict(zip(pools, counts)))
        if name in ("utilization", "util"):
            parts = [p for p in arg.split(":") if p] if arg else []
            kwargs: dict[str, Any] = {}
            if parts:
                kwargs["target_inflight_per_replica"] = float(parts[0])
            if len(parts) > 1:
                kwargs["min_replicas"] = int(parts[1])
            if len(parts) > 2:
                kwargs["max_replicas"] = int(parts[2])
            return UtilizationTarget(**kwargs)
    except ValueError as exc:
        raise typer.BadParameter(f"policy {spec!r}: {exc}; use {POLICY_HELP}") from None
    raise typer.BadParameter(f"unknown policy {spec!r}; use {POLICY_HELP}")


def _load(trace: str, seed: int, duration: Optional[float], rate_scale: float):
    from tidal.sim.traces import load_trace, rate_scale as scale
    if duration is not None and duration <= 0:
        raise typer.BadParameter(f"{duration:g}: replay at least some seconds of the trace, e.g. "
                                 "--duration 600, or leave it out for the whole trace",
                                 param_hint="--duration")
    try:
        requests = load_trace(trace, seed=seed, duration_s=duration)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--trace") from None
    if rate_scale != 1.0:
        requests = scale(requests, rate_scale)
    if not requests:
        if duration is not None:
            raise typer.BadParameter(f"trace {trace!r} has no requests in its first {duration:g} s; "
                                     "raise --duration", param_hint="--duration")
        raise typer.BadParameter(f"trace {trace!r} has no requests", param_hint="--trace")
    return requests


def _engine_config(version: str, max_num_batched_tokens: Optional[int],
                   max_num_seqs: Optional[int], accelerator: str, speed: float = 1.0) -> EngineConfig:
    """The engine settings the flags ask for, checked against the GPU's defaults."""
    if version not in ENGINE_VERSIONS:
        raise typer.BadParameter(f"unknown engine version {version!r}; use one of: "
                                 + ", ".join(ENGINE_VERSIONS), param_hint="--engine-version")
    try:
        config = EngineConfig(max_num_batched_tokens=max_num_batched_tokens,
                              max_num_seqs=max_num_seqs, engine_version=version, engine_speed=speed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--engine-speed") from None
    try:
        config.limits(get_accelerator(accelerator))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return config


def _class_nodes(values: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """``CLASS=NODES`` or ``CLASS=NODESxGPUS`` -> nodes and GPUs per node by class."""
    nodes, gpus = {}, {}
    for value in values:
        name, _, count = value.partition("=")
        n, _, g = count.partition("x")
        try:
            nodes[name] = int(n)
            if g:
                gpus[name] = int(g)
        except ValueError:
            raise typer.BadParameter(f"{value!r}: expected CLASS=NODES or CLASS=NODESxGPUS, e.g. h100-80gb=1x2",
                                     param_hint="--class-nodes") from None
        if not name or nodes[name] < 0 or gpus.get(name, 1) < 1:
            raise typer.BadParameter(f"{value!r}: expected CLASS=NODES or CLASS=NODESxGPUS with NODES >= 0 and "
                                     "GPUS >= 1", param_hint="--class-nodes")
    return nodes, gpus


def simulate(
    files: list[Path] = typer.Option([], "--filename", "-f",
                                     help="ModelDeployment manifest, plus AcceleratorClass manifests (repeat -f): "
                                          "runs that spec through tidal's decision core, as the operator does."),
    trace: str = typer.Option("demo", help="Trace name: demo (bundled excerpt), azure-conv, "
                              "azure-code, mooncake, servegen-..., agent."),
    policy: Optional[str] = typer.Option(None, help=POLICY_HELP + " (default fixed:4; not with -f, "
                                         "where the spec's autoscaling decides)"),
    accelerator: Optional[str] = typer.Option(None, help="Simulated hardware, one of: " + ", ".join(ACCELERATORS)
                                              + " (default H100-80GB; with -f, the nearest to the preferred class)"),
    model: Optional[str] = typer.Option(None, help="One of: " + ", ".join(MODELS)
                                        + " (default llama-3.1-8b; with -f, matched from spec.model); append "
                                        + " and/or ".join(QUANT_SUFFIXES) + " for FP8 weights / FP8 KV cache."),
    tp: int = typer.Option(1, min=1, help="Tensor-parallel GPUs per replica (with -f: gpusPerReplica)."),
    mode: str = typer.Option(MODE_UNIFIED, help="unified or disaggregated (with -f: spec.mode)."),
    seed: int = typer.Option(0, help="Seed for sampled traces and cold-start jitter."),
    duration: Optional[float] = typer.Option(None, min=0.0,
                                             help="Replay only the first DURATION seconds."),
    rate_scale: float = typer.Option(1.0, min=1e-6, help="Compress inter-arrival times by this."),
    nodes: int = typer.Option(4, min=1, help="GPU nodes in the simulated cluster."),
    tick: float = typer.Option(DEFAULT_INTERVAL_S, min=0.1,
                               help="Autoscaler tick interval (s); the operator's default."),
    ttft_slo: float = typer.Option(2.0, min=0.0, help="TTFT SLO (s) (with -f: spec.slo.ttft)."),
    tpot_slo: float = typer.Option(0.1, min=0.0, help="TPOT SLO (s) (with -f: spec.slo.tpot)."),
    image_cached: bool = typer.Option(False, help="Serving image pre-pulled on every node."),
    weights_cached: bool = typer.Option(False, help="Model weights pre-cached on every node."),
    gpu_hour_cost: Optional[float] = typer.Option(None, min=0.0,
                                                  help="Override USD per GPU-hour."),
    report: Path = typer.Option(Path("tidal-sim-report.html"), help="HTML report path."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary as JSON."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    engine_version: str = typer.Option(DEFAULT_ENGINE_VERSION,
                                       help="Engine whose scheduler and defaults are simulated: "
                                       + ", ".join(ENGINE_VERSIONS) + "."),
    max_num_batched_tokens: Optional[int] = typer.Option(
        None, min=1, help="Engine token budget per iteration (vLLM --max-num-batched-tokens); "
        "default: the engine version's default for the GPU (vLLM V1: 8192 on GPUs with >= 70 "
        "GiB that are not A100s, else 2048)."),
    max_num_seqs: Optional[int] = typer.Option(
        None, min=1, help="Engine limit on running sequences (vLLM --max-num-seqs); default: "
        "the engine version's default for the GPU (vLLM V1: 1024 / 256 as above)."),
    activator_queue_limit: int = typer.Option(
        ActivatorModel.queue_limit, min=1, help="With -f: requests the activator holds while the entry "
        "has no ready replica path before refusing (503); tidal activator --queue-limit."),
    activator_timeout: float = typer.Option(
        ActivatorModel.hold_timeout_s, min=0.001, help="With -f: seconds a request is held for the entry "
        "to become ready before it is refused (503); tidal activator --hold-timeout."),
    activator: bool = typer.Option(True, help="With -f: model the activator in front of the entry "
                                   "(docs/activator.md); --no-activator: requests wait however long it takes."),
    engine_speed: float = typer.Option(
        1.0, help="Simulated engine speed relative to its performance model: 0.7 makes every "
        "iteration 1/0.7 as long (an engine slower than the profile a policy was given)."),
    class_nodes: list[str] = typer.Option(
        [], "--class-nodes", help="With -f: simulate a mixed cluster, CLASS=NODES or CLASS=NODESxGPUS per "
        "AcceleratorClass (repeat), e.g. --class-nodes h100-80gb=1x2 --class-nodes l4=2; each class on its "
        "nearest hardware at its hourlyCost, the core placing per class from their free GPUs."),
) -> None:
    """Replay a trace on a simulated cluster under an autoscaling policy, or under a ModelDeployment (-f)."""
    console = Console()
    common = dict(nodes=nodes, tick_s=tick, image_cached=image_cached, weights_cached=weights_cached,
                  gpu_hour_cost_usd=gpu_hour_cost, seed=seed)
    autoscaler: Autoscaler
    if files:
        if policy is not None:
            raise typer.BadParameter("with -f the spec's autoscaling decides; drop --policy (or drop -f to "
                                     "compare a baseline)", param_hint="--policy")
        try:
            md, classes = load_manifests(files)
            workload = prepare(md, classes, hardware=accelerator, model=model)
        except ManifestError as exc:
            raise typer.BadParameter(str(exc), param_hint="-f") from None
        engine = _engine_config(engine_version, max_num_batched_tokens, max_num_seqs, workload.hardware,
                                    engine_speed)
        held = ActivatorModel(activator_queue_limit, activator_timeout) if activator else False
        if class_nodes:
            nodes_by, gpus_by = _class_nodes(class_nodes)
            try:
                config = mixed_config(workload, classes, nodes_by, gpus_by, engine=engine, activator=held,
                                      **{k: v for k, v in common.items() if k != "nodes"})
            except ManifestError as exc:
                raise typer.BadParameter(str(exc), param_hint="--class-nodes") from None
        else:
            config = sim_config(workload, engine=engine, activator=held, **common)
        autoscaler = ModelDeploymentAutoscaler(workload, interval_s=tick)
        console.print(f"ModelDeployment {md.metadata.name}: class {workload.accelerator_class} simulated as "
                      f"{workload.hardware}, model {md.spec.model.name} as {workload.model}, TP{workload.tp}")
    else:
        if class_nodes:
            raise typer.BadParameter("a mixed cluster needs the ModelDeployment and its AcceleratorClasses (-f)",
                                     param_hint="--class-nodes")
        if mode not in (MODE_UNIFIED, MODE_DISAGGREGATED):
            raise typer.BadParameter(f"mode must be {MODE_UNIFIED} or {MODE_DISAGGREGATED}",
                                     param_hint="--mode")
        autoscaler = parse_policy(policy or DEFAULT_POLICY, mode)
        hardware = accelerator or DEFAULT_ACCELERATOR
        engine = _engine_config(engine_version, max_num_batched_tokens, max_num_seqs, hardware, engine_speed)
        config = SimConfig(model=model or DEFAULT_MODEL, accelerator=hardware, tp=tp, mode=mode,
                           slo=SLO(ttft_s=ttft_slo, tpot_s=tpot_slo), engine=engine, **common)
    requests = _load(trace, seed, duration, rate_scale)
    try:
        sim = Simulation(requests, autoscaler, config)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if progress:
        with Progress(TextColumn("simulating {task.description}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                      console=console, transient=True) as bar:
            task = bar.add_task(trace, total=1.0)
            result = sim.run(progress=lambda t, total: bar.update(
                task, completed=(t / total) if total else 1.0))
    else:
        result = sim.run()
    table = Table(title=f"tidal simulate: {trace} | {result.summary['policy']} | "
                        f"{config.model} on {config.accelerator} x TP{config.tp} | {config.mode}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, value in summary_rows(result):
        table.add_row(label, value)
    console.print(table)
    limits = engine.limits(get_accelerator(config.accelerator))
    console.print(f"engine: {engine.engine_version}, max_num_batched_tokens "
                  f"{limits.max_num_batched_tokens}, max_num_seqs {limits.max_num_seqs}")
    path = write_html_report(result, report, title=f"tidal simulate --trace {trace}")
    console.print(f"report: {path}  (simulated {len(requests)} requests in {result.wall_s:.2f} s)")
    if json_out is not None:
        json_out.write_text(json.dumps(result.summary, indent=2))
