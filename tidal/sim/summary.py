"""Turn a finished :class:`~tidal.sim.runner.Simulation` into a :class:`SimResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tidal.sim.runner import SimResult, Simulation


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def build_result(sim: "Simulation", wall_s: float) -> "SimResult":
    from tidal.sim.runner import SimResult

    cfg = sim.cfg
    fin = sim._finished
    n_fin = len(fin)
    arrival = np.fromiter((s.arrival_s for s in fin), float, n_fin)
    first = np.fromiter((s.first_token_s for s in fin), float, n_fin)
    finish = np.fromiter((s.finish_s for s in fin), float, n_fin)
    out = np.fromiter((s.output_tokens for s in fin), float, n_fin)
    prompt = np.fromiter((s.prompt_tokens for s in fin), float, n_fin)
    cached = np.fromiter((s.cached_tokens for s in fin), float, n_fin)
    preempt = np.fromiter((s.preemptions for s in fin), float, n_fin)
    rid = np.fromiter((getattr(s.req, "request_id", 0) for s in fin), np.int64, n_fin)
    ttft = first - arrival
    multi = out > 1
    tpot = np.where(multi, (finish - first) / np.maximum(out - 1, 1), 0.0)
    e2e = finish - arrival
    met_ttft = ttft <= cfg.slo.ttft_s
    met_tpot = tpot <= cfg.slo.tpot_s
    now = sim.now_s
    pods = list(sim.cluster.pods.values())
    gpu_hours = sim.cluster.gpu_seconds(now) / 3600.0
    price = (cfg.gpu_hour_cost_usd if cfg.gpu_hour_cost_usd is not None
             else sim.accelerator.gpu_hour_cost_usd)
    by_class: dict[str, dict[str, float]] = {}
    if sim.mixed:  # each class at its own price
        for c in sim.classes:
            hours = sum(p.gpu_seconds(now) for p in pods if p.klass == c.name) / 3600.0
            rate = c.gpu_hour_cost_usd if c.gpu_hour_cost_usd is not None else sim._hardware[c.name].gpu_hour_cost_usd
            by_class[c.name] = {"gpu_hours": hours, "cost_usd": hours * rate,
                                "pods_created": sum(1 for p in pods if p.klass == c.name)}
    cold = [p for p in pods if p.cold_start is not None and p.ready_s is not None]
    engines = [p.engine for p in pods if p.engine is not None]
    lookups = sum(e.prefix_cache.lookups_blocks for e in engines if e.prefix_cache)
    hits = sum(e.prefix_cache.hits_blocks for e in engines if e.prefix_cache)
    n_total = len(sim.requests)
    summary: dict[str, Any] = {
        "policy": getattr(sim.autoscaler, "name", type(sim.autoscaler).__name__),
        "model": sim.model.name, "accelerator": sim.accelerator.name, "tp": cfg.tp,
        "mode": cfg.mode, "seed": cfg.seed,
        "requests": n_total, "finished": n_fin, "rejected": len(sim._rejected),
        # Lost when a scale-down's drain window (SimConfig.drain_window_s) ended before they finished.
        "dropped": len(sim._dropped),
        "unfinished": (n_total - n_fin - len(sim._rejected) - len(sim._dropped) - len(sim.refused_queue_full)
                       - len(sim.refused_timeout)),
        # The activator (SimConfig.activator): requests that found the entry unable to serve.
        "activator_held": len(sim.activator_waits) + len(sim.refused_timeout),
        "activator_wait_p50_s": _pct(np.asarray(sim.activator_waits), 0.5),
        "activator_wait_p99_s": _pct(np.asarray(sim.activator_waits), 0.99),
        "rejected_queue_full": len(sim.refused_queue_full),
        "rejected_timeout": len(sim.refused_timeout),
        "simulated_s": now,
        "ttft_slo_s": cfg.slo.ttft_s, "tpot_slo_s": cfg.slo.tpot_s,
        "ttft_attainment": float(met_ttft.mean()) if n_fin else None,
        "tpot_attainment": float(met_tpot.mean()) if n_fin else None,
        "slo_attainment": float((met_ttft & met_tpot).mean()) if n_fin else None,
        "ttft_p50_s": _pct(ttft, 0.5), "ttft_p99_s": _pct(ttft, 0.99),
        "tpot_p50_s": _pct(tpot[multi], 0.5), "tpot_p99_s": _pct(tpot[multi], 0.99),
        "e2e_p50_s": _pct(e2e, 0.5), "e2e_p99_s": _pct(e2e, 0.99),
        "output_tokens": int(out.sum()), "prompt_tokens": int(prompt.sum()),
        "gpu_hours": gpu_hours,
        "cost_usd": sum(v["cost_usd"] for v in by_class.values()) if by_class else gpu_hours * price,
        "cold_starts": len(cold),
        "cold_start_mean_s": (float(np.mean([p.cold_start.total_s for p in cold]))
                              if cold else None),
        "pods_created": max((sum(1 for p in pods if p.pool == pool) for pool in sim.pools),
                            default=0),
        # Scale-downs that hit a pod still pending or starting: it cost GPU time, served nothing.
        "pods_cancelled": sum(1 for p in pods if p.ready_s is None and p.terminated_s is not None),
        "preemptions": int(preempt.sum()),
        "prefix_cache_hit_ratio": (hits / lookups) if lookups else None,
        "cached_prompt_tokens": int(cached.sum()),
        "kv_capacity_tokens": sim.kv_tokens,
        "perf_source": sim.perf.source,
    }
    if by_class:
        summary["by_class"] = by_class
    requests = {"request_id": rid, "arrival_s": arrival, "first_token_s": first,
                "finish_s": finish, "ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e,
                "prompt_tokens": prompt, "output_tokens": out, "cached_tokens": cached,
                "preemptions": preempt, "met_ttft": met_ttft, "met_tpot": met_tpot}
    pod_rows = [{"id": p.id, "pool": p.pool, "phase": p.phase, "created_s": p.created_s,
                 "scheduled_s": p.scheduled_s, "ready_s": p.ready_s, "drain_s": p.drain_s,
                 "terminated_s": p.terminated_s, "dropped_requests": p.dropped_requests, "prewarmed": p.prewarmed,
                 "image_cached": p.image_cached, "weights_cached": p.weights_cached, "class": p.klass,
                 "cold_start_s": p.cold_start.total_s if p.cold_start else None}
                for p in pods]
    return SimResult(summary=summary, timeline=sim.timeline, decisions=sim.decisions,
                     requests=requests, pods=pod_rows, wall_s=wall_s)
