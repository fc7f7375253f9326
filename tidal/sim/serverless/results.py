"""Turn a finished :class:`FunctionSimulation` into per-invocation arrays and a summary.

Cost is what the provider holds: an instance occupies its memory from the
moment its start begins (pod allocation) until it is removed. It is counted
inside the replayed window ``[0, horizon)`` only, for every policy alike: the
run goes on after the window until the last invocation finishes (so every
invocation gets its latency), but idle time after the window is an artefact of
the replay ending. Wasted memory-time is the part during which a ready instance
ran nothing (the "wasted memory time" of Shahrad et al., ATC'20, Section 4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tidal.sim.serverless.platform import FunctionSimResult, FunctionSimulation

MB_PER_GB = 1024.0
S_PER_HOUR = 3600.0
# Shahrad et al. (ATC'20) report the 75th percentile of per-application cold-start
# percentages as the headline of their policy comparison (Figures 15-18).
FUNCTION_COLD_RATIO_PERCENTILE = 0.75


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def build_result(sim: "FunctionSimulation", end_s: float, wall_s: float) -> "FunctionSimResult":
    from tidal.sim.serverless.platform import FunctionSimResult

    wl = sim.workload
    cfg = sim.cfg
    arrival = wl.arrival_s
    duration = wl.duration_s
    start = np.asarray(sim.start_s, dtype=float)
    finish = np.asarray(sim.finish_s, dtype=float)
    cold = np.asarray(sim.cold, dtype=bool)
    wait = start - arrival
    latency = finish - arrival
    target = cfg.slo.targets(duration)
    met = latency <= target + 1e-9
    fidx = wl.function_index
    n_fn = len(wl.function_ids)

    insts = sim.instances
    created = np.array([x.created_s for x in insts], dtype=float)
    ready = np.array([x.ready_s for x in insts], dtype=float)
    removed = np.array([np.nan if x.removed_s is None else x.removed_s for x in insts],
                       dtype=float)
    life_h, idle_h = sim._cost_at_horizon or ([], [])
    in_window = len(life_h)
    lifetime = np.zeros(len(insts))
    lifetime[:in_window] = life_h
    idle = np.zeros(len(insts))
    idle[:in_window] = idle_h
    inst_fn = np.array([x.fn.idx for x in insts], dtype=np.int64)
    memory_gb = wl.memory_mb[inst_fn] / MB_PER_GB if insts else np.empty(0)
    prewarm = np.array([x.prewarm for x in insts], dtype=bool)

    calls = np.bincount(fidx, minlength=n_fn)
    colds = np.bincount(fidx, weights=cold.astype(float), minlength=n_fn)
    invoked = calls > 0
    fn_ratio = colds[invoked] / calls[invoked]
    n = wl.invocations
    summary: dict[str, Any] = {
        "policy": getattr(sim.autoscaler, "name", type(sim.autoscaler).__name__),
        "functions": n_fn,
        "functions_invoked": int(invoked.sum()),
        "invocations": n,
        "horizon_s": wl.horizon_s,
        "simulated_s": end_s,
        "seed": cfg.seed,
        "concurrency": cfg.concurrency,
        "cold_start_model": cfg.cold_start.name,
        "slo": cfg.slo.describe(),
        "cold_starts": int(cold.sum()),
        "cold_start_ratio": float(cold.mean()) if n else None,
        "function_cold_ratio_p75": _pct(fn_ratio, FUNCTION_COLD_RATIO_PERCENTILE),
        "functions_always_cold": int(np.sum(fn_ratio >= 1.0)),
        "latency_p50_s": _pct(latency, 0.5),
        "latency_p99_s": _pct(latency, 0.99),
        "wait_p50_s": _pct(wait, 0.5),
        "wait_p99_s": _pct(wait, 0.99),
        "cold_wait_mean_s": float(wait[cold].mean()) if cold.any() else None,
        "slo_attainment": float(met.mean()) if n else None,
        "instance_starts": len(insts),
        "prewarm_starts": int(prewarm.sum()),
        "cold_start_mean_s": float(np.mean(ready - created)) if insts else None,
        "instance_hours": float(lifetime.sum() / S_PER_HOUR),
        "gb_hours": float((lifetime * memory_gb).sum() / S_PER_HOUR),
        "wasted_gb_hours": float((idle * memory_gb).sum() / S_PER_HOUR),
        "busy_gb_hours": float(((np.clip(finish, 0, wl.horizon_s) - np.clip(start, 0, wl.horizon_s))
                                * wl.memory_mb[fidx] / MB_PER_GB).sum() / S_PER_HOUR),
        "peak_instances": max(sim.timeline["instances"], default=0),
    }
    summary["wasted_ratio"] = (summary["wasted_gb_hours"] / summary["gb_hours"]
                               if summary["gb_hours"] else None)
    invocations = {"arrival_s": arrival, "function_index": fidx, "duration_s": duration,
                   "start_s": start, "finish_s": finish, "wait_s": wait, "latency_s": latency,
                   "cold": cold, "triggered_start": np.asarray(sim.triggered, dtype=bool),
                   "instance": np.asarray(sim.instance_of, dtype=np.int64), "met_slo": met}
    # lifetime_s / idle_s: inside the replayed window [0, horizon) (see the module docstring).
    instances = {"function_index": inst_fn, "created_s": created, "ready_s": ready,
                 "removed_s": removed, "prewarm": prewarm, "idle_s": idle,
                 "lifetime_s": lifetime, "memory_gb": memory_gb}
    per_function = {"invocations": calls, "cold_starts": colds.astype(np.int64)}
    return FunctionSimResult(summary=summary, invocations=invocations, instances=instances,
                             timeline=sim.timeline, per_function=per_function, wall_s=wall_s)
