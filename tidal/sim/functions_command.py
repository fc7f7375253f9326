"""``tidal simulate-functions``: replay Azure Functions invocations under keep-alive policies.

A plain function with typer annotations; tidal/cli.py registers it as the
``simulate-functions`` command. Several ``--policy`` flags replay the same
sampled workload under each policy and print them side by side.

    tidal simulate-functions --policy fixed-keepalive:10m --policy auto --functions 200 --minutes 60
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tidal.api.serverlessfunction import DEFAULT_SLO_PERCENTILE
from tidal.api.types import parse_duration_s
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.baselines.keepalive_fixed import FixedKeepAlive
from tidal.policies.interface import POOL_FUNCTION, Autoscaler
from tidal.policies.utilization import UtilizationTarget
from tidal.sim.serverless.coldstart import DEFAULT_PRESET, PRESETS, parse_cold_start
from tidal.sim.serverless.platform import (DEFAULT_CONCURRENCY, DEFAULT_METRICS_WINDOW_S, ActivatorModel,
                                           DEFAULT_SLO_SLACK_S, DEFAULT_TICK_S,
                                           FunctionSimConfig, FunctionSimulation, FunctionSLO)
from tidal.sim.serverless.report import summary_table, write_functions_report
from tidal.sim.serverless.workload import SELECT_RANDOM, SELECTIONS, FunctionWorkload

TRACE_NAME = "azure-functions"
TRACE_HELP = (f"{TRACE_NAME}[:select=random|top|first][:start=MINUTE][:dir=FOLDER]: the Azure "
              "Functions 2019 sample from ../shared/traces (or TIDAL_SHARED, or dir=FOLDER "
              "holding inv.csv, run.csv, mem.csv); select picks the functions (seeded random "
              "sample, busiest in the window, or first in the file); start is the first minute "
              "of the day (0-based).")
POLICY_HELP = ("fixed-keepalive[:DURATION] (platform idle timeout, default 10m; 0 or inf "
               "allowed), no-keepalive (= fixed-keepalive:0), auto[:no-prewarm] (tidal's "
               "hybrid-histogram keep-alive/pre-warm policy), fixed:N (N instances per "
               "function), utilization[:TARGET[:MIN[:MAX]]] (HPA-like in-flight target per "
               "instance). Repeat --policy to compare on the same workload.")
NEVER = ("inf", "never", "forever")
# Instance cap handed to the auto policy when --max-instances is not set: the
# ServerlessFunction API's upper bound for spec.maxInstances.
AUTO_MAX_INSTANCES = 10_000


def _duration(text: str) -> float:
    if text in NEVER:
        return math.inf
    try:
        value = float(text)
    except ValueError:
        return parse_duration_s(text)
    if value < 0:
        raise ValueError(f"duration must be >= 0, got {text!r}")
    return value


def parse_function_policy(spec: str, config: FunctionSimConfig) -> Autoscaler:
    """Build a policy from its command-line spelling; errors say what is accepted."""
    name, _, arg = spec.partition(":")
    try:
        if name == "fixed-keepalive":
            return FixedKeepAlive(_duration(arg or "10m"), name=spec)
        if name == "no-keepalive" and not arg:
            return FixedKeepAlive(0.0, name=spec)
        if name == "fixed":
            return FixedReplicas({POOL_FUNCTION: int(arg or "1")}, name=spec)
        if name in ("utilization", "util"):
            parts = [float(x) for x in arg.split(":")] if arg else []
            target = parts[0] if parts else float(config.concurrency)
            low = int(parts[1]) if len(parts) > 1 else 0
            high = int(parts[2]) if len(parts) > 2 else AUTO_MAX_INSTANCES
            return UtilizationTarget(target_inflight_per_replica=target, min_replicas=low,
                                     max_replicas=high, name=spec)
        if name == "auto":
            if arg not in ("", "no-prewarm"):
                raise ValueError("the only option of auto is no-prewarm")
            return _auto_policy(spec, config, prewarm=arg != "no-prewarm")
    except ValueError as exc:
        raise typer.BadParameter(f"policy {spec!r}: {exc}; use {POLICY_HELP}",
                                 param_hint="--policy") from None
    raise typer.BadParameter(f"unknown policy {spec!r}; use {POLICY_HELP}", param_hint="--policy")


def _auto_policy(spec: str, config: FunctionSimConfig, *, prewarm: bool) -> Autoscaler:
    try:
        from tidal.core.serverlessfunction import LearningKeepAlive
        from tidal.policies.keepalive import KeepAlivePolicy
    except ImportError as exc:
        raise typer.BadParameter(f"policy {spec!r}: tidal.policies.keepalive is not available "
                                 f"({exc}); use fixed-keepalive or no-keepalive",
                                 param_hint="--policy") from None
    # The operator's decision (tidal/core/serverlessfunction.py): the pre-warm lead is the median
    # of the starts seen (the shared default before the first), and --slo, when an absolute
    # latency the lead exceeds, floors the keep-alive at --slo-percentile of the idle times, as
    # spec.slo does. Behind the guard the operator uses too (a no-op on clean observations).
    return LearningKeepAlive(
        KeepAlivePolicy(
            concurrency_target=float(config.concurrency),
            max_instances=config.max_instances or AUTO_MAX_INSTANCES,
            prewarm=prewarm,
            # Invocations show up in the observation through the windowed rate.
            activity_window_s=config.metrics_window_s,
            name=spec,
        ),
        slo_latency_s=config.slo.latency_s,
        slo_percentile=config.slo.percentile,
    )


def parse_trace(spec: str) -> dict[str, Any]:
    """``azure-functions[:key=value...]`` -> options; errors name the bad part."""
    name, *parts = spec.split(":")
    if name != TRACE_NAME:
        raise typer.BadParameter(f"unknown trace {name!r}; use {TRACE_HELP}", param_hint="--trace")
    options: dict[str, Any] = {"select": SELECT_RANDOM, "start": 0, "dir": None}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in options:
            raise typer.BadParameter(f"trace option {part!r}: expected select=, start= or dir=",
                                     param_hint="--trace")
        if key == "select" and value not in SELECTIONS:
            raise typer.BadParameter(f"select={value!r}: use one of {', '.join(SELECTIONS)}",
                                     param_hint="--trace")
        if key == "start":
            if not value.isdigit():
                raise typer.BadParameter(f"start={value!r}: expected a minute of the day (0-1439)",
                                         param_hint="--trace")
            options[key] = int(value)
        else:
            options[key] = value
    return options


def parse_slo(text: str, percentile: float = DEFAULT_SLO_PERCENTILE) -> FunctionSLO:
    """``+1s``: run time plus a budget; ``2s``: absolute end-to-end latency (as spec.slo.latency),
    at ``percentile`` (spec.slo.percentile)."""
    try:
        if text.startswith("+"):
            return FunctionSLO(slack_s=_duration(text[1:]), percentile=percentile)
        return FunctionSLO(latency_s=_duration(text), percentile=percentile)
    except ValueError as exc:
        raise typer.BadParameter(f"{exc}; use +DURATION (budget over the run time, e.g. +1s) "
                                 "or DURATION (end-to-end, e.g. 2s)", param_hint="--slo") from None


def _load(options: dict[str, Any], *, functions: int, minutes: int, seed: int,
          warmup: int) -> FunctionWorkload:
    from tidal.sim.serverless.workload import load_workload
    from tidal.sim.traces import TraceFormatError, TraceNotFoundError

    folder = options["dir"]
    if folder is not None and not Path(folder).is_dir():
        raise typer.BadParameter(f"dir={folder}: no such folder (it must hold inv.csv, run.csv "
                                 "and optionally mem.csv)", param_hint="--trace")
    try:
        return load_workload(folder, functions=functions, minutes=minutes, seed=seed,
                             start_minute=options["start"], select=options["select"],
                             warmup_minutes=warmup)
    except TraceNotFoundError as exc:
        raise typer.BadParameter(f"{exc} The Azure Functions sample is expected in "
                                 "traces/azure-functions-2019/ there, or name its folder "
                                 "with --trace azure-functions:dir=FOLDER.",
                                 param_hint="--trace") from None
    except FileNotFoundError as exc:
        raise typer.BadParameter(f"Azure Functions trace file missing: {exc.filename}",
                                 param_hint="--trace") from None
    except (TraceFormatError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--trace") from None


def simulate_functions(
    trace: str = typer.Option(TRACE_NAME, help=TRACE_HELP),
    policy: list[str] = typer.Option(["fixed-keepalive:10m"], "--policy", help=POLICY_HELP),
    functions: int = typer.Option(200, min=1, help="Functions to replay."),
    minutes: int = typer.Option(60, min=1, max=1440, help="Minutes of the day to replay."),
    warmup: int = typer.Option(0, min=0, help="Minutes before the trace's start= minute to "
                               "replay first, unmeasured, so policies start with history "
                               "(needs start= at least this)."),
    seed: int = typer.Option(0, help="Seed for function choice, invocation times, run times "
                             "and cold starts."),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, min=1,
                                    help="Invocations one instance runs at once (1: Azure "
                                    "Functions consumption, AWS Lambda)."),
    max_instances: Optional[int] = typer.Option(None, min=1, help="Instances per function at "
                                                "most (default: unlimited); beyond, invocations "
                                                "queue."),
    cold_start: str = typer.Option(DEFAULT_PRESET, help="Cold-start model: "
                                   + ", ".join(PRESETS) + " or fixed:SECONDS."),
    slo: str = typer.Option(f"+{DEFAULT_SLO_SLACK_S:g}s", help="Latency SLO: +DURATION over "
                            "each invocation's run time, or an absolute DURATION (as "
                            "ServerlessFunction spec.slo.latency: the auto policy then keeps "
                            "functions whose cold start exceeds it for --slo-percentile of their "
                            "idle times)."),
    slo_percentile: float = typer.Option(DEFAULT_SLO_PERCENTILE,
                                         help="Percentile of an absolute --slo, strictly "
                                         "between 0 and 100 (spec.slo.percentile)."),
    tick: float = typer.Option(DEFAULT_TICK_S, min=0.1, help="Autoscaler tick interval (s)."),
    activator_queue_limit: int = typer.Option(
        ActivatorModel.queue_limit, min=1, help="Invocations the activator holds per function with no "
        "ready instance before refusing (503); tidal activator --queue-limit."),
    activator_timeout: float = typer.Option(
        ActivatorModel.hold_timeout_s, min=0.001, help="Seconds an invocation is held for a ready "
        "instance before it is refused (503); tidal activator --hold-timeout."),
    activator: bool = typer.Option(True, help="Model the activator (docs/activator.md); "
                                   "--no-activator: invocations wait however long it takes."),
    report: Optional[Path] = typer.Option(None, help="Write an HTML report here."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summaries as JSON."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Replay serverless invocations under keep-alive / pre-warm policies and compare them."""
    console = Console()
    options = parse_trace(trace)
    try:
        model = parse_cold_start(cold_start)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--cold-start") from None
    if options["start"] + minutes > 1440:
        raise typer.BadParameter(f"start={options['start']} plus --minutes {minutes} runs past "
                                 "the day's 1440 minutes", param_hint="--minutes")
    config = FunctionSimConfig(concurrency=concurrency, max_instances=max_instances,
                               tick_s=tick, metrics_window_s=DEFAULT_METRICS_WINDOW_S,
                               cold_start=model, slo=parse_slo(slo, slo_percentile), seed=seed,
                               activator=ActivatorModel(activator_queue_limit, activator_timeout)
                               if activator else None)
    policies = [parse_function_policy(p, config) for p in policy]
    workload = _load(options, functions=functions, minutes=minutes, seed=seed, warmup=warmup)
    results = []
    for autoscaler in policies:
        sim = FunctionSimulation(workload, autoscaler, config)
        if progress:
            with Progress(TextColumn("simulating {task.description}"), BarColumn(),
                          TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                          console=console, transient=True) as bar:
                task = bar.add_task(autoscaler.name, total=1.0)
                results.append(sim.run(progress=lambda t, total: bar.update(
                    task, completed=(t / total) if total else 1.0)))
        else:
            results.append(sim.run())
    setup = (f"{trace} | {len(workload.function_ids)} functions | {minutes} min "
             f"(+{warmup} min warm-up) | {workload.invocations} invocations replayed | "
             f"concurrency {concurrency} | cold start {model.name} | "
             f"SLO {config.slo.describe()} | tick {tick:g} s | seed {seed}")
    table = Table(title=f"tidal simulate-functions: {setup}")
    table.add_column("metric")
    for r in results:
        table.add_column(str(r.summary["policy"]), justify="right")
    for label, values in summary_table(results):
        table.add_row(label, *values)
    console.print(table)
    console.print("simulated in " + ", ".join(f"{r.summary['policy']} {r.wall_s:.2f} s"
                                               for r in results))
    if report is not None:
        path = write_functions_report(results, report, title="tidal simulate-functions",
                                      setup=setup)
        console.print(f"report: {path}")
    if json_out is not None:
        json_out.write_text(json.dumps({str(r.summary["policy"]): r.summary for r in results},
                                       indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return str(value)
