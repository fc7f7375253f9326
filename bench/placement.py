"""Placement across accelerator classes: tidal's placement on a mixed cluster (H100, A100, L40S, L4
in limited numbers) against H100-only, cheapest-only and the hourly-cost order, on the Azure LLM
2023 conversation and code traces (method: tidal/bench/placement.py, docs/bench.md). ~1 minute.
``tidal bench --suites placement`` runs the default settings; this script also takes other clusters,
rules and copies.
Needs ../shared (says so and exits otherwise).

    .venv/bin/python bench/placement.py [--duration S] [--copies 4] [--seed 0] [--traces-dir DIR] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from tidal.bench.placement import COPIES, RULES, TRACE_NAMES, Row, markdown, run, verdict
from tidal.bench.settings import TARGET_ATTAINMENT
from tidal.sim.traces import TraceNotFoundError
from tidal.bench.suites.placement import figure_png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="replay only each trace's first S seconds")
    parser.add_argument("--copies", type=int, default=COPIES, help="superpose this many copies of each trace")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traces", nargs="*", default=list(TRACE_NAMES))
    parser.add_argument("--rules", nargs="*", default=list(RULES))
    parser.add_argument("--gpus", type=json.loads, default=None,
                        help='GPUs of each class in the mixed cluster, e.g. \'{"h100": 2, "l40s": 4}\'')
    parser.add_argument("--traces-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    parser.add_argument("--plot", type=Path, default=None, help="also write this PNG")
    args = parser.parse_args()
    wall0 = time.perf_counter()
    rows = []
    try:
        for trace in args.traces:
            for rule in args.rules:
                row = run(trace, rule, args.duration, args.seed, args.copies, args.gpus, args.traces_dir)
                rows.append(row)
                print(f"{trace:11s} {rule:14s} ${row.cost_per_hour:7.2f}/h  attainment {row.attainment:7.2%}  "
                      f"GPU-h {row.gpu_hours_by_class}  ({row.wall_s:.0f} s)", flush=True)
            if set(args.rules) >= set(RULES):
                met, lines = verdict(rows, trace)
                print("\n".join("  " + line for line in lines))
                print(f"  target (>= {TARGET_ATTAINMENT:.0%} attainment, cheaper than h100-only and "
                      f"cheapest-only): {'met' if met else 'MISSED'}")
    except (FileNotFoundError, TraceNotFoundError) as exc:
        print(f"placement bench needs the Azure LLM traces: {exc}", file=sys.stderr)
        return 1
    print()
    print(markdown(rows))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    if args.plot is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        args.plot.write_bytes(figure_png(rows))
        print(f"wrote {args.plot}")
    print(f"{time.perf_counter() - wall0:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
