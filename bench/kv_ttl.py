"""KV-cache TTL bench: tidal's ``ttl: auto`` against LRU, fixed TTLs (10 s, 60 s, 300 s), the best TTL per
category in hindsight and the oracle, on the synthetic agent sessions and the Mooncake trace's sessions.

The suite ``tidal bench --suites kv-ttl`` runs (method: tidal/bench/suites/kv_ttl.py,
tidal/bench/kv_ttl.py, docs/bench.md): the accounting replay of each workload and, unless
``--quick``, the same policies pinning in the simulated engine's prefix cache. Prints the tables
and the issue's targets (net >= 90 % of the oracle's, above every fixed TTL). Needs ../shared/traces
for Mooncake.

    .venv/bin/python bench/kv_ttl.py [--seed 0] [--quick] [--json out.json] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tidal.bench.suites import SuiteInputError, SuiteOptions
from tidal.bench.suites.kv_ttl import run
from tidal.bench.suites.output import suite_markdown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="fewer agent sessions, no engine replay")
    parser.add_argument("--json", type=Path, default=None, help="write every row here")
    parser.add_argument("--plot", type=Path, default=None, help="also write this PNG (accounting replay)")
    args = parser.parse_args()
    try:
        result = run(SuiteOptions(seed=args.seed, quick=args.quick))
    except SuiteInputError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(suite_markdown(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result.data, indent=1, default=str), encoding="utf-8")
    if args.plot is not None and result.figure_png is not None:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        args.plot.write_bytes(result.figure_png)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
