"""``tidal bench``: the policy comparison on real traces and the suites of tidal/bench/suites (KV-cache
TTL, placement, fair share, keep-alive). Registered on the CLI by tidal/cli.py.

Option values are checked before anything runs; a bad value is reported with the option's
name and the accepted values.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tidal.bench.policies import POLICIES, PolicyBuildError, PolicySpec, parse_policy_spec
from tidal.bench.report import write_reports
from tidal.bench.run import MODES, BenchPlan, check_traces, run_plan, with_oracle_ratio
from tidal.bench.suites import (POLICIES_SUITE, SUITE_NAMES, SUITES, SuiteInputError, SuiteOptions,
                                SuiteResult, check_inputs)
from tidal.bench.suites.output import suite_markdown, write_suite, write_summary
from tidal.bench.settings import (DEFAULT_OUT_DIR, DEFAULT_WORKERS, QUICK_DURATION_S,
                                  QUICK_SETUPS)
from tidal.bench.workloads import SETUPS, TRACES, perturbed
from tidal.sim.traces import TraceFormatError, TraceNotFoundError, UnknownTraceError


def _items(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _choose(text: str, accepted: tuple[str, ...] | list[str], option: str) -> tuple[str, ...]:
    items = _items(text)
    if not items:
        raise typer.BadParameter(f"empty; accepted: {', '.join(accepted)}", param_hint=option)
    bad = [x for x in items if x not in accepted]
    if bad:
        raise typer.BadParameter(f"unknown {', '.join(map(repr, bad))}; accepted: "
                                 f"{', '.join(accepted)}", param_hint=option)
    return tuple(dict.fromkeys(items))


def _policies(text: str) -> tuple[PolicySpec, ...]:
    items = _items(text)
    if not items:
        raise typer.BadParameter(f"empty; accepted: {', '.join(POLICIES)}",
                                 param_hint="--policies")
    try:
        return tuple(dict.fromkeys(parse_policy_spec(x) for x in items))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policies") from None


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(dict.fromkeys(int(x) for x in _items(text)))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected integers separated by commas, e.g. 0,1,2",
                                 param_hint="--seeds") from None
    if not seeds or any(s < 0 for s in seeds):
        raise typer.BadParameter(f"{text!r}: expected integers >= 0 separated by commas",
                                 param_hint="--seeds")
    return seeds


def bench(
    suites: str = typer.Option(",".join(SUITE_NAMES), help="Comma-separated suites to run: "
                               + ", ".join(SUITE_NAMES) + f" ({POLICIES_SUITE}: the policy comparison "
                               "the options below shape; the others run on the first of --seeds)."),
    traces_dir: Optional[Path] = typer.Option(
        None, "--traces-dir", help="Folder laid out like ../shared/traces (default: that one)."),
    traces: str = typer.Option(",".join(TRACES), help="Comma-separated: " + ", ".join(TRACES)),
    policies: str = typer.Option(",".join(POLICIES), help="Comma-separated names, each "
                                 "optionally name:key=value,...; names: " + ", ".join(POLICIES)),
    modes: str = typer.Option(",".join(MODES), help="Comma-separated: " + ", ".join(MODES)),
    models: Optional[str] = typer.Option(
        None, help="Comma-separated setups: " + ", ".join(SETUPS) + " (default: all; with "
        "--quick: " + ", ".join(QUICK_SETUPS) + ")."),
    seeds: str = typer.Option("0", help="Comma-separated seeds (cold-start jitter, sampled "
                              "traces)."),
    quick: bool = typer.Option(False, "--quick", help=f"First {QUICK_DURATION_S:g} s of each "
                               "trace, the quick setups unless --models is given (<= 2 min)."),
    workers: int = typer.Option(DEFAULT_WORKERS, min=1, help="Processes running cells."),
    out: Path = typer.Option(Path(DEFAULT_OUT_DIR),
                             help="Folder for the tables, CSVs and bench.html."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    perturb: Optional[float] = typer.Option(
        None, help="Also run every setup on an engine 1+F times slower and 1-F times as slow as the "
        "simulator's model (e.g. 0.4): a profile-based policy starts out wrong by +-F and must "
        "correct itself online; every other policy meets the same engine."),
) -> None:
    """Compare autoscaling policies on real traces against static-peak and a clairvoyant oracle, and run
    the KV-cache TTL, placement, fair-share and keep-alive suites."""
    chosen = _choose(suites, list(SUITE_NAMES), "--suites")
    if traces_dir is not None and not traces_dir.is_dir():
        raise typer.BadParameter(f"{traces_dir} is not a folder; give a folder laid out like "
                                 "../shared/traces", param_hint="--traces-dir")
    if models is None:
        setups = QUICK_SETUPS if quick else tuple(SETUPS)
    else:
        setups = _choose(models, list(SETUPS), "--models")
    if perturb is not None:
        try:
            setups = tuple(setups) + tuple(v for name in setups for v in perturbed(name, perturb))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--perturb") from None
    plan = BenchPlan(setups=setups, traces=_choose(traces, list(TRACES), "--traces"),
                     modes=_choose(modes, list(MODES), "--modes"), policies=_policies(policies),
                     seeds=_seeds(seeds), traces_dir=traces_dir,
                     duration_s=QUICK_DURATION_S if quick else None, workers=workers)
    if not plan.cells():
        only = ", ".join(f"{p.name} runs only in {', '.join(sorted(POLICIES[p.name].modes or ()))} "
                         "mode" for p in plan.policies if POLICIES[p.name].modes is not None)
        raise typer.BadParameter(f"no policy of --policies runs in the chosen modes ({only})",
                                 param_hint="--modes")
    try:
        check_inputs(chosen, traces_dir)
    except SuiteInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--traces-dir") from None
    console = Console()
    wall0 = time.perf_counter()
    if POLICIES_SUITE in chosen:
        _run_policies(plan, out, quick=quick, workers=workers, progress=progress, console=console)
    options = SuiteOptions(traces_dir=traces_dir, seed=plan.seeds[0], quick=quick, workers=workers)
    results = [_run_suite(name, options, out) for name in chosen if name != POLICIES_SUITE]
    if results:
        written = write_summary(results, out)
        typer.echo(f"suite targets: {written}")
    typer.echo(f"{', '.join(chosen)} in {time.perf_counter() - wall0:.1f} s wall ({workers} workers); "
               f"wrote under {out}")


def _run_suite(name: str, options: SuiteOptions, out: Path) -> SuiteResult:
    """Run one suite, print its section and write its files; a missing trace names --traces-dir."""
    started = time.perf_counter()
    try:
        result = SUITES[name](options)
    except SuiteInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--traces-dir") from None
    write_suite(result, out)
    typer.echo(suite_markdown(result))
    typer.echo(f"{name}: {time.perf_counter() - started:.1f} s wall\n")
    return result


def _run_policies(plan: BenchPlan, out: Path, *, quick: bool, workers: int, progress: bool,
                  console: Console) -> None:
    """The policy comparison: every (setup, trace, mode, policy, seed) cell, tables and bench.html."""
    try:
        check_traces(plan)
    except (TraceNotFoundError, TraceFormatError, UnknownTraceError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--traces-dir") from None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--traces") from None
    wall0 = time.perf_counter()
    try:
        if progress:
            with Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                task = bar.add_task("cells", total=len(plan.cells()))
                rows = run_plan(plan, lambda done, total: bar.update(task, completed=done))
        else:
            rows = run_plan(plan)
    except PolicyBuildError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policies") from None
    rows = with_oracle_ratio(rows)
    window = (f"the first {QUICK_DURATION_S:g} s of each trace (--quick)" if quick
              else "whole traces (ServeGen: the busiest hour of day 1)")
    written = write_reports(rows, out, window=window)
    typer.echo((out / "bench.md").read_text())
    typer.echo(f"{len(rows)} runs in {time.perf_counter() - wall0:.1f} s wall "
               f"({workers} workers); wrote {len(written)} files under {out}")
