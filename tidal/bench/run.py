"""Run the bench matrix: setups x traces x modes x policies x seeds, on a process pool.

Each cell is independent and deterministic (the simulator is seeded; searched references
search deterministically), so results do not depend on the pool size or on completion
order: they are sorted into the matrix order before anything is reported. Cells are
submitted longest first (the searched references) so two workers finish together.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from tidal.bench.policies import (ORACLE, POLICIES, STATIC_PEAK, PolicyContext, PolicySpec,
                                  build_policy)
from tidal.bench.probe import feasibility
from tidal.bench.settings import DEFAULT_SEEDS, DEFAULT_WORKERS, MIN_REPLICAS_PER_POOL, WARMUP_S
from tidal.bench.warmup import scored, with_warmup
from tidal.bench.workloads import TRACES, setup_named
from tidal.sim.engine import EngineConfig
from tidal.sim.runner import MODE_DISAGGREGATED, MODE_UNIFIED, SLO, SimConfig, Simulation
from tidal.sim.traces import LLMRequest

MODES = (MODE_UNIFIED, MODE_DISAGGREGATED)


@dataclass(frozen=True)
class BenchPlan:
    """What to run. ``traces_dir`` None: ``../shared/traces``; ``duration_s`` None: whole traces."""

    setups: tuple[str, ...] = ("8b-h100",)
    traces: tuple[str, ...] = tuple(TRACES)
    modes: tuple[str, ...] = MODES
    policies: tuple[PolicySpec, ...] = tuple(PolicySpec(name) for name in POLICIES)
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    traces_dir: Path | None = None
    duration_s: float | None = None
    workers: int = DEFAULT_WORKERS
    warmup_s: float = WARMUP_S

    def cells(self) -> list["Cell"]:
        """Every (setup, trace, mode, policy, seed), leaving out a policy in a mode it is not
        defined for (HeteroScale scales a disaggregated deployment only)."""
        return [Cell(setup, trace, mode, policy, seed, self.traces_dir, self.duration_s, self.warmup_s)
                for setup in self.setups for trace in self.traces for mode in self.modes
                for policy in self.policies if POLICIES[policy.name].runs_in(mode)
                for seed in self.seeds]


@dataclass(frozen=True)
class Cell:
    setup: str
    trace: str
    mode: str
    policy: PolicySpec
    seed: int
    traces_dir: Path | None
    duration_s: float | None
    warmup_s: float = WARMUP_S

    @property
    def searched(self) -> bool:
        return self.policy.name in (ORACLE, STATIC_PEAK)


@lru_cache(maxsize=8)
def _requests(trace: str, traces_dir: Path | None, seed: int,
              duration_s: float | None) -> tuple[LLMRequest, ...]:
    return tuple(TRACES[trace].load(traces_dir, seed, duration_s))


@lru_cache(maxsize=8)
def _with_warmup(trace: str, traces_dir: Path | None, seed: int, duration_s: float | None,
                 warmup_s: float) -> tuple[LLMRequest, ...]:
    return with_warmup(_requests(trace, traces_dir, seed, duration_s), warmup_s)


def sim_config(setup_name: str, trace_name: str, mode: str, seed: int) -> SimConfig:
    """The simulator configuration of one cell (the trace's SLO, the setup's cluster)."""
    setup = setup_named(setup_name)
    slo = TRACES[trace_name].slo
    return SimConfig(model=setup.model, accelerator=setup.accelerator, tp=setup.tp, mode=mode,
                     nodes=setup.nodes, slo=SLO(ttft_s=slo.ttft_s, tpot_s=slo.tpot_s),
                     seed=seed, engine=EngineConfig(engine_speed=setup.engine_speed))


def run_cell(cell: Cell) -> dict[str, Any]:
    """Build the cell's policy, replay the trace, and return one row of plain values."""
    wall0 = time.perf_counter()
    trace_requests = _requests(cell.trace, cell.traces_dir, cell.seed, cell.duration_s)
    if not trace_requests:
        raise ValueError(f"trace {cell.trace!r} has no requests in the chosen window")
    requests = _with_warmup(cell.trace, cell.traces_dir, cell.seed, cell.duration_s, cell.warmup_s)
    trace = TRACES[cell.trace]
    setup = setup_named(cell.setup)
    config = sim_config(cell.setup, cell.trace, cell.mode, cell.seed)
    limits = feasibility(config, trace.slo, max(r.prompt_tokens for r in trace_requests))
    ctx = PolicyContext(requests=requests, config=config, slo=trace.slo, limits=limits,
                        min_replicas=MIN_REPLICAS_PER_POOL,
                        max_replicas=setup.max_replicas_per_pool,
                        params=dict(cell.policy.params))
    prepared = build_policy(cell.policy, ctx)
    # A rival runs at its own control period (Knative ticks every 2 s, KEDA polls every 30 s).
    if prepared.latency_percentile is not None:
        config = replace(config, slo=replace(config.slo, percentile=prepared.latency_percentile))
    own_tick = getattr(prepared.autoscaler, "tick_s", None)
    if prepared.result is None and isinstance(own_tick, (int, float)) and own_tick > 0:
        config = replace(config, tick_s=float(own_tick))
    result = (prepared.result if prepared.result is not None
              else Simulation(requests, prepared.autoscaler, config).run())
    total = len(trace_requests)
    slow, too_long = limits.count_infeasible(trace_requests)
    return {
        "setup": cell.setup, "trace": cell.trace, "mode": cell.mode,
        "policy": cell.policy.label, "seed": cell.seed, "requests": total,
        # over every scored request: rejected and unfinished ones miss
        **scored(result, cell.warmup_s, total, config.tp),
        "ttft_infeasible": slow, "kv_infeasible": too_long,
        "max_feasible_prompt_tokens": limits.max_prompt_tokens,
        "notes": dict(prepared.notes),
        "wall_s": time.perf_counter() - wall0,
    }


def _order_key(plan: BenchPlan) -> Callable[[dict[str, Any]], tuple]:
    index = {(c.setup, c.trace, c.mode, c.policy.label, c.seed): i
             for i, c in enumerate(plan.cells())}
    return lambda row: (index[(row["setup"], row["trace"], row["mode"], row["policy"],
                               row["seed"])],)


def check_traces(plan: BenchPlan) -> None:
    """Load every trace of the plan once (first seed) so a missing folder, a malformed file
    or an empty window is reported before the matrix starts."""
    for trace in plan.traces:
        if not _requests(trace, plan.traces_dir, plan.seeds[0], plan.duration_s):
            raise ValueError(f"trace {trace!r} has no requests in the chosen window")


def run_plan(plan: BenchPlan,
             progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Every cell's row, in matrix order. ``progress(done, total)`` after each cell."""
    cells = plan.cells()
    # longest first: searched references, then by trace as listed
    ordered = sorted(cells, key=lambda c: (not c.searched,))
    rows: list[dict[str, Any]] = []
    if plan.workers <= 1:
        for cell in ordered:
            rows.append(run_cell(cell))
            if progress is not None:
                progress(len(rows), len(cells))
    else:
        # spawn: workers must not inherit the parent's threads (the progress bar's refresher)
        with ProcessPoolExecutor(max_workers=plan.workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_cell, cell) for cell in ordered]
            try:
                for future in as_completed(futures):
                    rows.append(future.result())
                    if progress is not None:
                        progress(len(rows), len(cells))
            except BaseException:
                for future in futures:      # do not run the rest of the matrix after a failure
                    future.cancel()
                raise
    return sorted(rows, key=_order_key(plan))


def with_oracle_ratio(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row plus ``gpu_hours_vs_oracle``: its GPU-hours over the oracle's, same cell."""
    oracle = {(r["setup"], r["trace"], r["mode"], r["seed"]): r["gpu_hours"]
              for r in rows if r["policy"] == ORACLE}
    out = []
    for r in rows:
        base = oracle.get((r["setup"], r["trace"], r["mode"], r["seed"]))
        ratio = r["gpu_hours"] / base if base else None
        out.append({**r, "gpu_hours_vs_oracle": ratio})
    return out
