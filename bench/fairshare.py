"""Fair-share bench: ServeGen m-mid clients grouped into weighted tenants on a pool sized to 60 % of
their aggregate peak demand; tidal's allocator against proportional-to-demand and
first-come-first-served (method and metrics: tidal/bench/fairshare.py, docs/bench.md).
Needs ../shared (says so and exits otherwise).

    .venv/bin/python bench/fairshare.py [--days 1] [--seed 0] [--traces-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tidal.bench.fairshare import build_scenario, markdown, run
from tidal.sim.traces import TraceNotFoundError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traces-dir", type=Path, default=None)
    args = parser.parse_args()
    wall0 = time.perf_counter()
    try:
        scenario = build_scenario(args.traces_dir, seed=args.seed, days=args.days)
    except (FileNotFoundError, TraceNotFoundError) as exc:
        print(f"fair-share bench needs the ServeGen traces: {exc}", file=sys.stderr)
        return 1
    print(markdown(scenario, run(scenario)))
    print(f"{time.perf_counter() - wall0:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
