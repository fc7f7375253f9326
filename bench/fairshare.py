"""Fair-share bench: ServeGen m-mid clients grouped into weighted tenants on a pool sized to 60 % of
their aggregate peak demand; tidal's allocator against proportional-to-demand and
first-come-first-served.

The suite ``tidal bench --suites fair-share`` runs (method and metrics: tidal/bench/fairshare.py,
docs/bench.md). Needs ../shared (says so and exits otherwise).

    .venv/bin/python bench/fairshare.py [--seed 0] [--quick | --days D] [--traces-dir DIR] [--plot docs/img/fairshare.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tidal.bench.suites import SuiteInputError, SuiteOptions
from tidal.bench.suites.fair_share import run
from tidal.bench.suites.output import suite_markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the first six hours instead of the day")
    parser.add_argument("--days", type=float, default=None, help="days of ServeGen to replay (default 1)")
    parser.add_argument("--traces-dir", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="also write this PNG")
    args = parser.parse_args()
    wall0 = time.perf_counter()
    try:
        result = run(SuiteOptions(traces_dir=args.traces_dir, seed=args.seed, quick=args.quick), days=args.days)
    except SuiteInputError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(suite_markdown(result))
    if args.plot is not None and result.figure_png is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        args.plot.write_bytes(result.figure_png)
        print(f"wrote {args.plot}")
    print(f"{time.perf_counter() - wall0:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
