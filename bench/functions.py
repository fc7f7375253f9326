"""Serverless simulator speed and keep-alive policy comparison on the Azure Functions 2019 sample.

Replays the same sampled workload (default: 200 functions, the first hour of the
day) under the fixed 10-minute keep-alive, no keep-alive, tidal's auto
keep-alive/pre-warm policy, and ``auto-paper`` (the same policy with the paper's
99th-percentile tail and 4-hour fallback instead of tidal's cost-chosen end and
10-minute learning period), and prints wall time, invocations simulated per
second, max RSS and the cold-start / memory comparison. Needs ../shared (says so
and exits otherwise).

    .venv/bin/python bench/functions.py [--functions 200] [--minutes 60] [--start 0] [--warmup 0]
        [--seed 0] [--slo +1s|DURATION] [--slo-percentile 99] [--policy SPEC ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time

from tidal.api.serverlessfunction import DEFAULT_SLO_PERCENTILE
from tidal.core.serverlessfunction import LearningKeepAlive
from tidal.policies.interface import Autoscaler
from tidal.sim.functions_command import parse_function_policy, parse_slo
from tidal.sim.serverless import FunctionSimConfig, FunctionSimulation, load_workload
from tidal.sim.traces import TraceNotFoundError

POLICIES = ("fixed-keepalive:10m", "no-keepalive", "auto", "auto-paper")
PAPER = "auto-paper"
"""tidal's auto policy with the windows of Shahrad et al. as published: p99 tail, 4 h fallback."""
ROWS = ("invocations", "cold_starts", "cold_start_ratio", "function_cold_ratio_p75",
        "latency_p99_s", "wait_p99_s", "slo_attainment", "instance_starts", "prewarm_starts",
        "instance_hours", "gb_hours", "wasted_gb_hours", "wasted_ratio")


def build_policy(spec: str, config: FunctionSimConfig) -> Autoscaler:
    """A policy from its command-line spelling, plus ``auto-paper``."""
    if spec != PAPER:
        return parse_function_policy(spec, config)
    auto = parse_function_policy("auto", config)
    assert isinstance(auto, LearningKeepAlive)  # the operator's decision (tidal/core)
    return dataclasses.replace(auto, base=dataclasses.replace(
        auto.base, cold_start_cost_gb_s=None, few_samples_keep_alive_s=None, name=PAPER))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--start", type=int, default=0, help="first measured minute of the day")
    parser.add_argument("--warmup", type=int, default=0, help="unmeasured minutes before it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slo", default=None,
                        help="latency SLO as tidal simulate-functions --slo (+1s: run time plus "
                        "1 s, the default; 0.5s: absolute, as spec.slo.latency)")
    parser.add_argument("--slo-percentile", type=float, default=DEFAULT_SLO_PERCENTILE,
                        help="percentile of an absolute --slo (spec.slo.percentile)")
    parser.add_argument("--policy", action="append", dest="policies",
                        help=f"policy to compare (repeatable; default: {', '.join(POLICIES)})")
    args = parser.parse_args()
    policies = tuple(args.policies or POLICIES)
    t0 = time.perf_counter()
    try:
        workload = load_workload(None, functions=args.functions, minutes=args.minutes,
                                 seed=args.seed, start_minute=args.start,
                                 warmup_minutes=args.warmup)
    except TraceNotFoundError as exc:
        print(f"skipped: {exc}")
        return 0
    print(f"workload: {len(workload.function_ids)} functions, {args.minutes} min from minute "
          f"{args.start} (+{args.warmup} min warm-up), {workload.invocations} invocations "
          f"replayed, sampled in {time.perf_counter() - t0:.2f} s")
    config = FunctionSimConfig(seed=args.seed)
    if args.slo is not None:
        config = dataclasses.replace(config, slo=parse_slo(args.slo, args.slo_percentile))
    print(f"SLO {config.slo.describe()}")
    results = []
    for spec in policies:
        result = FunctionSimulation(workload, build_policy(spec, config), config).run()
        results.append(result)
        print(f"{spec:>22}: {result.wall_s:6.2f} s wall, "
              f"{workload.invocations / result.wall_s:,.0f} invocations/s")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"max RSS {rss_mb:.0f} MB")
    print()
    print(f"{'metric':>26} " + " ".join(f"{p:>20}" for p in policies))
    for key in ROWS:
        cells = []
        for r in results:
            v = r.summary.get(key)
            cells.append(f"{v:>20.4f}" if isinstance(v, float) else f"{str(v):>20}")
        print(f"{key:>26} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
