"""Keep-alive Pareto fronts: tidal's ``auto`` against the hybrid histogram policy, knobs swept.

Replays the Azure Functions 2019 sample (../shared/traces, default: all 500 functions, 1 h from
minute 240 after a 4 h warm-up, seed 0) on the serverless simulator under each knob setting of

* ``hybrid``: the hybrid histogram policy of Shahrad et al. (ATC'20) as published, per instance
  rank (``KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None)``), sweeping
  its keep-alive (tail) percentile; the head percentile stays the paper's 5;
* ``tidal``: tidal's ``auto`` (the same class with its defaults), sweeping the price of a cold
  start in GB-seconds of idle memory (``cold_start_cost_gb_s``, default 750) and nothing else: the
  keep-alive while learning follows the price (``learning_follows_cost``) for a function's first
  instance, and for its extra instances up to the platforms' 10 minutes
  (``extra_ranks_learning_cap_s``), all defaults;

and, with ``--variants``, tidal with other knobs than its defaults (earlier rounds' families):

* ``tidal-fixed-floor``: the same with the keep-alive while learning held at 10 minutes
  (``learning_follows_cost=False``), and ``tidal-floor-4h`` with it at the hybrid's 4 h range
  (``few_samples_keep_alive_s``): tidal's second knob;
* ``tidal-trust5``: the learned windows trusted after the paper's 5 idle times instead of 20
  (``trust_samples``), and ``tidal-trust5-paperhead`` with, besides, the paper's pre-warm head
  (``prewarm_by_cost=False``), and ``tidal-floor-rank1``: the keep-alive while learning for a
  function's first instance only (``learning_floor_all_ranks=False``; a one-off burst's other
  instances follow the learned window) with the paper's head;

each behind the ObservationGuard both shells use (families and replays: tidal/bench/keepalive_sweep.py,
which ``tidal bench --suites keep-alive`` runs too), and writes every point (cold-start fraction of
invocations, idle GB-seconds = wasted GB-hours x 3600, total GB-hours), the Pareto front of each
family and of tidal over all its settings, and whether the front of ``tidal`` (its defaults, the
price swept) lies below the hybrid's at every idle-memory budget on the hybrid's front (tidal's
fewest cold starts within that budget < the hybrid's), as JSON and an HTML report with a PNG plot.

    .venv/bin/python bench/keepalive_pareto.py [--functions 500] [--minutes 60] [--start 240]
        [--warmup 240] [--seed 0] [--workers 2] [--out reports/keepalive-pareto] [--variants]
        [--only FAMILY:KNOB,...] [--render]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from tidal.bench.keepalive_sweep import SweepOptions, dominance, figure_png, fronts_of, jobs, sweep
from tidal.sim.serverless import load_workload
from tidal.sim.traces import TraceNotFoundError


def html_report(png: bytes, points: list[dict[str, Any]], rows: list[dict[str, Any]], title: str) -> str:
    def tr(cells: list[str]) -> str:
        return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"

    pts = "".join(tr([p["name"], f"{100 * p['cold_start_ratio']:.3f} %", f"{p['cold_starts']:,}",
                      f"{p['idle_gb_s'] / 1e6:.3f}", f"{p['gb_hours']:,.0f}"]) for p in points)
    dom = "".join(tr([r["reference"], f"{r['budget_idle_gb_s'] / 1e6:.3f}",
                      f"{100 * r['reference_cold_start_ratio']:.3f} %", str(r["candidate"]),
                      "-" if r["candidate_cold_start_ratio"] is None else f"{100 * r['candidate_cold_start_ratio']:.3f} %",
                      "yes" if r["below"] else "no"]) for r in rows)
    img = base64.b64encode(png).decode()
    return (f"<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1>"
            f"<img src='data:image/png;base64,{img}'>"
            "<h2>Every setting</h2><table border=1><tr><th>policy</th><th>cold starts</th><th>count</th>"
            f"<th>idle M GB-s</th><th>GB-h</th></tr>{pts}</table>"
            "<h2>tidal below the hybrid's front?</h2><table border=1><tr><th>hybrid point</th>"
            "<th>idle budget M GB-s</th><th>hybrid cold starts</th><th>tidal's best within</th>"
            f"<th>its cold starts</th><th>below</th></tr>{dom}</table>")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--start", type=int, default=240)
    parser.add_argument("--warmup", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="reports/keepalive-pareto")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: rebuild the report from the --out folder's pareto.json")
    parser.add_argument("--variants", action="store_true",
                        help="also sweep the variant families (fixed floor, 4 h floor, trust5, "
                        "floor-rank1), not only the hybrid and tidal's defaults with the price swept")
    parser.add_argument("--only", help="run only FAMILY:KNOB,... (e.g. tidal:12000) and merge them "
                        "into the --out folder's pareto.json")
    args = parser.parse_args()
    opts = {k: getattr(args, k) for k in ("functions", "minutes", "start", "warmup", "seed")}
    options = SweepOptions(**opts)
    try:
        load_workload(None, functions=1, minutes=1, seed=0)
    except TraceNotFoundError as exc:
        print(f"skipped: {exc}")
        return 0
    todo = jobs(options, variants=args.variants)
    out = Path(args.out)
    earlier: list[dict[str, Any]] = []
    if args.only:
        todo = [(f, float(k), options) for f, _, k in (item.partition(":") for item in args.only.split(","))]
        if (out / "pareto.json").exists():
            saved = json.loads((out / "pareto.json").read_text(encoding="utf-8"))
            if saved["options"] == opts:
                done = {(f, k) for f, k, _ in todo}
                earlier = [p for p in saved["points"] if (p["family"], p["knob"]) not in done]
    if args.render:
        saved = json.loads((out / "pareto.json").read_text(encoding="utf-8"))
        todo, earlier, opts = [], saved["points"], saved["options"]
    t0 = time.perf_counter()
    points = sorted(earlier + sweep(todo, args.workers), key=lambda p: (p["family"], p["knob"]))
    fronts = fronts_of(points)
    # The claim is about one policy: tidal's defaults with only the cold-start price swept.
    rows = dominance(points, fronts)
    title = (f"Keep-alive Pareto: {opts['functions']} functions, {opts['minutes']} min from minute "
             f"{opts['start']} after {opts['warmup']} min warm-up, seed {opts['seed']}")
    print(f"{title} ({time.perf_counter() - t0:.0f} s)")
    for p in points:
        print(f"{p['name']:>18}: cold {100 * p['cold_start_ratio']:.3f} % ({p['cold_starts']:,}), "
              f"idle {p['idle_gb_s'] / 1e6:.3f} M GB-s, {p['gb_hours']:,.0f} GB-h")
    below = bool(rows) and all(r["below"] for r in rows)
    for r in rows:
        tc = r["candidate_cold_start_ratio"]
        print(f"budget {r['budget_idle_gb_s'] / 1e6:.3f} M GB-s: hybrid {100 * r['reference_cold_start_ratio']:.3f} %, "
              f"tidal {'-' if tc is None else f'{100 * tc:.3f} %'} ({r['candidate']}) -> {'below' if r['below'] else 'NOT below'}")
    print(f"tidal's front (defaults, price swept) below the hybrid's at every budget on it: "
          f"{'yes' if below else 'no'}")
    out.mkdir(parents=True, exist_ok=True)
    png = figure_png(points, fronts)
    (out / "pareto.png").write_bytes(png)
    (out / "pareto.html").write_text(html_report(png, points, rows, title), encoding="utf-8")
    (out / "pareto.json").write_text(json.dumps({"options": opts, "points": points, "fronts": fronts,
                                                 "dominance": rows, "below_everywhere": below}, indent=1),
                                     encoding="utf-8")
    print(f"wrote {out}/pareto.html, pareto.png, pareto.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
