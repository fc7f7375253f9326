"""Benchmark: the cost of one ``decide_workload`` call, per policy, measured in the same run.

    .venv/bin/python bench/decision.py                 # 2,000 ticks per policy
    .venv/bin/python bench/decision.py --ticks 500

One ModelDeployment (unified, and disaggregated) is fed a day-shaped request rate at the operator's
15 s tick, with every metric the operator reads (rates, token rates, in-flight counts, TTFT/TPOT),
through the core's entry point, as the operator's tick calls it. Printed: p50/p99 CPU time of the
calling thread per call (``time.thread_time``: on a busy machine wall time measures the scheduler)
for ``tidal`` (the SLO planner) with no forecaster (the decision alone: issue 11 excludes forecaster
training) and with the ``holt-winters`` forecaster, and for the ``hpa`` and ``static`` policies as
baselines, with tidal's ratio to each. Target: tidal's decision <= 2 ms p99.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tidal.api.modeldeployment import ModelDeployment  # noqa: E402
from tidal.core.modeldeployment import decide_workload  # noqa: E402
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation  # noqa: E402

TARGET_P99_MS = 2.0
"""Issue 11: one decision for one workload <= 2 ms p99, forecaster training excluded."""
TICK_S = 15.0
"""The operator's default interval (tidal/operator/settings.py DEFAULT_INTERVAL_S)."""
H100 = AcceleratorProfile("h100", 4.0, 989.0, 3350.0, 80e9)


def _md(policy: str, predictor: str, mode: str) -> ModelDeployment:
    pools = ({"unified": {"minReplicas": 1, "maxReplicas": 16}} if mode == "unified"
             else {"prefill": {"minReplicas": 1, "maxReplicas": 16}, "decode": {"minReplicas": 1, "maxReplicas": 16}})
    return ModelDeployment.model_validate({"metadata": {"name": "b", "namespace": "n"}, "spec": {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
        "engine": {"image": "img"}, "slo": {"ttft": "1s", "tpot": "100ms"}, "mode": mode, "pools": pools,
        "placement": {"acceleratorClasses": ["h100"]}, "autoscaling": {"policy": policy, "predictor": predictor}}})


def _observation(i: int, pools: list[str], replicas: dict[str, int]) -> Observation:
    now = i * TICK_S
    rate = 20.0 + 15.0 * math.sin(2 * math.pi * now / 86_400.0) + 3.0 * math.sin(i / 7.0)
    obs = {p: PoolObservation(ready_replicas=replicas[p], request_rate_rps=rate, prompt_tokens_rps=rate * 900,
                              output_tokens_rps=rate * 200, running_requests=rate * 2.0, waiting_requests=1.0,
                              kv_cache_usage_ratio=0.4, ttft_s=0.4, tpot_s=0.04) for p in pools}
    return Observation(now, obs, accelerators={"h100": H100}, placement={p: {"h100": n} for p, n in replicas.items()},
                       interval_s=TICK_S)


def measure(policy: str, predictor: str, mode: str, ticks: int) -> dict[str, Any]:
    md = _md(policy, predictor, mode)
    pools = ["unified"] if mode == "unified" else ["prefill", "decode"]
    replicas = {p: 2 for p in pools}
    state, times = None, []
    for i in range(ticks):
        obs = _observation(i, pools, replicas)
        t0 = time.thread_time()
        wd, state = decide_workload(md, obs, state)
        times.append(time.thread_time() - t0)
        replicas = {p: max(1, n) for p, n in wd.decision.desired_replicas.items()}
    times.sort()
    return {"p50_ms": 1000 * times[len(times) // 2], "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=2000)
    args = parser.parse_args(argv)
    ok = True
    for mode in ("unified", "disaggregated"):
        rows = {name: measure(policy, predictor, mode, args.ticks) for name, policy, predictor in (
            ("tidal", "tidal", "none"), ("tidal+holt-winters", "tidal", "holt-winters"),
            ("hpa", "hpa", "none"), ("static", "static", "none"))}
        print(f"{mode}: {args.ticks} ticks per policy")
        for name, row in rows.items():
            print(f"  {name:<20} p50 {row['p50_ms']:.3f} ms  p99 {row['p99_ms']:.3f} ms")
        tidal = rows["tidal"]["p99_ms"]
        met = tidal <= TARGET_P99_MS
        ok &= met
        print(f"  tidal p99 / hpa p99 = {tidal / rows['hpa']['p99_ms']:.1f}x, / static p99 = "
              f"{tidal / rows['static']['p99_ms']:.1f}x; target tidal p99 <= {TARGET_P99_MS} ms: "
              f"{'met' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
