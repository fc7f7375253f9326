"""Turn a finished :class:`FunctionSimulation` into per-invocation arrays and a summary.

Cost is what the provider holds: an instance occupies its memory from the
moment its start begins (pod allocation) until it is removed. It is counted
inside the measured window ``[measure_from_s, horizon_s)`` only, for every
policy alike: the run goes on after the window until the last invocation
finishes (so every invocation gets its latency), but idle time after the window
is an artefact of the replay ending, and the warm-up before it is not measured.
Invocation metrics cover the invocations that arrive inside the window.
Wasted memory-time is the part during which a ready instance ran nothing (the
"wasted memory time" of Shahrad et al., ATC'20, Section 4).
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


def _window_cost(sim: "FunctionSimulation", n_instances: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-instance life and idle seconds inside ``[measure_from_s, horizon_s)``."""
    wl = sim.workload
    out = []
    for part in (0, 1):
        at_end = np.zeros(n_instances)
        at_start = np.zeros(n_instances)
        values = sim._cost_at.get(wl.horizon_s, ([], []))[part]
        at_end[:len(values)] = values
        values = sim._cost_at.get(wl.measure_from_s, ([], []))[part]
        at_start[:len(values)] = values
        out.append(np.maximum(at_end - at_start, 0.0))
    return out[0], out[1]


def build_result(sim: "FunctionSimulation", end_s: float, wall_s: float) -> "FunctionSimResult":
    from tidal.sim.serverless.platform import FunctionSimResult

    wl = sim.workload
    cfg = sim.cfg
    arrival = wl.arrival_s
    duration = wl.duration_s
    start = np.asarray(sim.start_s, dtype=float)
    finish = np.asarray(sim.finish_s, dtype=float)
    cold = np.asarray(sim.cold, dtype=bool)
    rejected = np.asarray(sim.rejected, dtype=np.int64)
    held = np.asarray(sim.held, dtype=bool)
    served = rejected == 0
    wait = start - arrival
    latency = finish - arrival
    met = latency <= cfg.slo.targets(duration) + 1e-9
    fidx = wl.function_index
    n_fn = len(wl.function_ids)
    measured = arrival >= wl.measure_from_s
    window_s = wl.horizon_s - wl.measure_from_s

    insts = sim.instances
    created = np.array([x.created_s for x in insts], dtype=float)
    ready = np.array([x.ready_s for x in insts], dtype=float)
    removed = np.array([np.nan if x.removed_s is None else x.removed_s for x in insts],
                       dtype=float)
    lifetime, idle = _window_cost(sim, len(insts))
    inst_fn = np.array([x.fn.idx for x in insts], dtype=np.int64)
    memory_gb = wl.memory_mb[inst_fn] / MB_PER_GB if insts else np.empty(0)
    prewarm = np.array([x.prewarm for x in insts], dtype=bool)
    started_in_window = created >= wl.measure_from_s

    m_fidx, m_cold = fidx[measured], cold[measured]
    calls = np.bincount(m_fidx, minlength=n_fn)
    colds = np.bincount(m_fidx, weights=m_cold.astype(float), minlength=n_fn)
    invoked = calls > 0
    fn_ratio = colds[invoked] / calls[invoked]
    m_served = served[measured]
    m_wait, m_latency = wait[measured][m_served], latency[measured][m_served]
    m_held_wait = wait[measured & held & served]
    n = int(measured.sum())
    busy_s = (np.clip(finish, wl.measure_from_s, wl.horizon_s)
              - np.clip(start, wl.measure_from_s, wl.horizon_s))
    summary: dict[str, Any] = {
        "policy": getattr(sim.autoscaler, "name", type(sim.autoscaler).__name__),
        "functions": n_fn,
        "functions_invoked": int(invoked.sum()),
        "invocations": n,
        "warmup_invocations": int(wl.invocations - n),
        "measure_from_s": wl.measure_from_s,
        "measured_window_s": window_s,
        "simulated_s": end_s,
        "seed": cfg.seed,
        "concurrency": cfg.concurrency,
        "cold_start_model": cfg.cold_start.name,
        "slo": cfg.slo.describe(),
        "cold_starts": int(m_cold.sum()),
        "cold_start_ratio": float(m_cold.mean()) if n else None,
        "function_cold_ratio_p75": _pct(fn_ratio, FUNCTION_COLD_RATIO_PERCENTILE),
        "functions_always_cold": int(np.sum(fn_ratio >= 1.0)),
        "latency_p50_s": _pct(m_latency, 0.5),
        "latency_p99_s": _pct(m_latency, 0.99),
        "wait_p50_s": _pct(m_wait, 0.5),
        "wait_p99_s": _pct(m_wait, 0.99),
        "cold_wait_mean_s": (float(wait[measured & cold & served].mean())
                             if (cold & measured & served).any() else None),
        "activator_held": int((held & measured).sum()),
        "activator_wait_p50_s": _pct(m_held_wait, 0.5),
        "activator_wait_p99_s": _pct(m_held_wait, 0.99),
        "rejected_queue_full": int(np.sum(measured & (rejected == 1))),
        "rejected_timeout": int(np.sum(measured & (rejected == 2))),
        "slo_attainment": float(met[measured].mean()) if n else None,
        "instance_starts": int(started_in_window.sum()),
        "prewarm_starts": int((prewarm & started_in_window).sum()),
        "cold_start_mean_s": (float(np.mean((ready - created)[started_in_window]))
                              if started_in_window.any() else None),
        "instance_hours": float(lifetime.sum() / S_PER_HOUR),
        "gb_hours": float((lifetime * memory_gb).sum() / S_PER_HOUR),
        "wasted_gb_hours": float((idle * memory_gb).sum() / S_PER_HOUR),
        "busy_gb_hours": float((busy_s * wl.memory_mb[fidx] / MB_PER_GB).sum() / S_PER_HOUR),
        "peak_instances": max((c for t, c in zip(sim.timeline["t_s"], sim.timeline["instances"])
                               if t >= wl.measure_from_s), default=0),
    }
    summary["wasted_ratio"] = (summary["wasted_gb_hours"] / summary["gb_hours"]
                               if summary["gb_hours"] else None)
    invocations = {"arrival_s": arrival, "function_index": fidx, "duration_s": duration,
                   "start_s": start, "finish_s": finish, "wait_s": wait, "latency_s": latency,
                   "cold": cold, "triggered_start": np.asarray(sim.triggered, dtype=bool),
                   "instance": np.asarray(sim.instance_of, dtype=np.int64), "met_slo": met,
                   "held": held, "rejected": rejected,
                   "measured": measured}
    # lifetime_s / idle_s: inside the measured window (see the module docstring).
    instances = {"function_index": inst_fn, "created_s": created, "ready_s": ready,
                 "removed_s": removed, "prewarm": prewarm, "idle_s": idle,
                 "lifetime_s": lifetime, "memory_gb": memory_gb}
    per_function = {"invocations": calls, "cold_starts": colds.astype(np.int64)}
    return FunctionSimResult(summary=summary, invocations=invocations, instances=instances,
                             timeline=sim.timeline, per_function=per_function, wall_s=wall_s)
