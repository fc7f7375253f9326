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

each behind the ObservationGuard both shells use, and writes every point (cold-start fraction of
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
import dataclasses
import io
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tidal.bench.pareto import below_at_budgets, front
from tidal.policies.guards import ObservationGuard
from tidal.policies.keepalive import (COLD_START_COST_GB_S, HISTOGRAM_RANGE_S, MIN_IDLE_SAMPLES,
                                     KeepAlivePolicy)
from tidal.sim.functions_command import parse_function_policy
from tidal.sim.serverless import FunctionSimConfig, FunctionSimulation, load_workload
from tidal.sim.traces import TraceNotFoundError

HYBRID_TAIL_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0)
"""The hybrid policy's keep-alive percentile (the paper's is 99)."""
TIDAL_COLD_START_COSTS_GB_S = tuple(sorted(
    [COLD_START_COST_GB_S * f for f in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)]
    + [4000.0, 8000.0, 10000.0, 16000.0]))
"""tidal's price of a cold start, around its default of 750 GB-s, doubling, plus prices between
those from 3,000 GB-s up, where the hybrid's three largest budgets lie and the fronts are close."""
FIXED_FLOOR_COLD_START_COSTS_GB_S = (3000.0, 6000.0, 12000.0, 16000.0, 24000.0, 48000.0)
"""Prices for the fixed-floor variant (below 3000 GB-s it is within 1 % of ``tidal``)."""
FLOOR_4H_COLD_START_COSTS_GB_S = (1500.0, 3000.0, 6000.0, 12000.0)
"""Prices with the keep-alive while learning at the hybrid's 4 h range."""
TRUST5_COLD_START_COSTS_GB_S = (6000.0, 12000.0, 24000.0, 48000.0)
"""Prices with the learned windows trusted after the paper's 5 idle times (the largest budgets)."""
TRUST5_PAPER_HEAD_COLD_START_COSTS_GB_S = (12000.0, 24000.0)
"""Prices with 5 idle times trusted and the paper's pre-warm head."""
FLOOR_RANK1_COLD_START_COSTS_GB_S = (12000.0, 16000.0, 24000.0, 48000.0)
"""Prices with the keep-alive while learning for the first instance only (and the paper's head)."""
TIDAL = "tidal (every setting)"


def build(family: str, knob: float, config: FunctionSimConfig) -> ObservationGuard:
    auto = parse_function_policy("auto", config)
    inner = getattr(auto, "inner", auto)
    assert isinstance(inner, KeepAlivePolicy)
    if family == "hybrid":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=None, few_samples_keep_alive_s=None,
                                     tail_percentile=knob, name=f"hybrid-p{knob:g}")
    elif family == "tidal-fixed-floor":
        # The learning-period floor stays at 10 minutes whatever the cold-start price.
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, learning_follows_cost=False,
                                     name=f"fixedfloor-{knob:g}GBs")
    elif family == "tidal-trust5":
        # The learned windows trusted after the paper's 5 idle times (MIN_IDLE_SAMPLES) instead of 20.
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, trust_samples=MIN_IDLE_SAMPLES,
                                     name=f"trust5-{knob:g}GBs")
    elif family == "tidal-trust5-paperhead":
        # ...and pre-warming at the paper's head (p5 of all idle times) instead of by cost.
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, trust_samples=MIN_IDLE_SAMPLES,
                                     prewarm_by_cost=False, name=f"trust5ph-{knob:g}GBs")
    elif family == "tidal-floor-rank1":
        # The keep-alive while learning for the function's first instance only, paper's head.
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, learning_floor_all_ranks=False,
                                     prewarm_by_cost=False, name=f"floorrank1-{knob:g}GBs")
    elif family == "tidal-floor-4h":
        # The keep-alive while learning at the hybrid's 4 h range, the price of a cold start swept.
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, learning_follows_cost=False,
                                     few_samples_keep_alive_s=HISTOGRAM_RANGE_S,
                                     name=f"floor4h-{knob:g}GBs")
    else:
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, name=f"tidal-{knob:g}GBs")
    return ObservationGuard(policy)


def run_point(args: tuple[str, float, dict[str, Any]]) -> dict[str, Any]:
    family, knob, opts = args
    workload = load_workload(None, functions=opts["functions"], minutes=opts["minutes"], seed=opts["seed"],
                             start_minute=opts["start"], warmup_minutes=opts["warmup"])
    config = FunctionSimConfig(seed=opts["seed"])
    result = FunctionSimulation(workload, build(family, knob, config), config).run()
    s = result.summary
    return {"family": family, "knob": knob, "name": str(s.get("policy", family)),
            "cold_start_ratio": s["cold_start_ratio"], "cold_starts": s["cold_starts"],
            "invocations": s["invocations"], "idle_gb_s": s["wasted_gb_hours"] * 3600.0,
            "gb_hours": s["gb_hours"], "wall_s": result.wall_s}


def plot_png(points: list[dict[str, Any]], fronts: dict[str, list[dict[str, Any]]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {"tidal": "tab:blue", "hybrid": "tab:orange", "tidal-fixed-floor": "tab:gray",
               "tidal-floor-4h": "tab:green", "tidal-trust5": "tab:purple",
               "tidal-trust5-paperhead": "tab:brown", "tidal-floor-rank1": "tab:red"}
    for family, colour in colours.items():
        pts = [p for p in points if p["family"] == family]
        if not pts:
            continue
        ax.scatter([p["idle_gb_s"] / 1e6 for p in pts], [100 * p["cold_start_ratio"] for p in pts],
                   color=colour, alpha=0.5,
                   label=f"{family} (every {'price' if family.startswith('tidal') else 'percentile'})")
        if family in ("tidal", "hybrid"):
            f = fronts[family]
            ax.plot([p["idle_gb_s"] / 1e6 for p in f], [100 * p["cold_start_ratio"] for p in f],
                    color=colour, marker="o",
                    label=f"{'tidal (defaults, price swept)' if family == 'tidal' else family} front")
    # The largest budgets crowd together: the same fronts, zoomed, in an inset (linear scales),
    # labelled there instead of on the main axes.
    hybrid_front = fronts.get("hybrid", [])
    zoom_from = 0.85 * hybrid_front[-1]["idle_gb_s"] if hybrid_front else math.inf
    if hybrid_front:
        top = hybrid_front[-1]
        inset = ax.inset_axes((0.55, 0.5, 0.43, 0.47))
        shown = []
        for name, colour in (("tidal", "tab:blue"), ("hybrid", "tab:orange")):
            f = [p for p in fronts[name] if p["idle_gb_s"] >= zoom_from]
            shown += f
            inset.plot([p["idle_gb_s"] / 1e6 for p in f], [100 * p["cold_start_ratio"] for p in f],
                       color=colour, marker="o", markersize=3)
            for p in f:
                inset.annotate(p["name"].removeprefix("tidal-").removeprefix("hybrid-"),
                               (p["idle_gb_s"] / 1e6, 100 * p["cold_start_ratio"]), fontsize=5,
                               xytext=(2, 2), textcoords="offset points")
        right = max(p["idle_gb_s"] for p in shown)
        inset.set_xlim(zoom_from / 1e6, 1.03 * right / 1e6)
        inset.set_ylim(0.95 * min(100 * p["cold_start_ratio"] for p in shown),
                       2.0 * 100 * top["cold_start_ratio"])
        inset.tick_params(labelsize=6)
        inset.grid(alpha=0.3)
    on_front = {id(p) for f in (fronts.get("tidal", []), fronts.get("hybrid", [])) for p in f}
    for p in points:
        if id(p) in on_front and p["idle_gb_s"] < zoom_from:
            ax.annotate(p["name"], (p["idle_gb_s"] / 1e6, 100 * p["cold_start_ratio"]),
                        fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=6)
    ax.set_xlabel("idle memory (million GB-seconds)")
    ax.set_ylabel("cold starts (% of invocations)")
    ax.set_title("Keep-alive Pareto fronts (lower left is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


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
    try:
        load_workload(None, functions=1, minutes=1, seed=0)
    except TraceNotFoundError as exc:
        print(f"skipped: {exc}")
        return 0
    jobs = [("hybrid", p, opts) for p in HYBRID_TAIL_PERCENTILES]
    jobs += [("tidal", c, opts) for c in TIDAL_COLD_START_COSTS_GB_S]
    if args.variants:
        jobs += [("tidal-fixed-floor", c, opts) for c in FIXED_FLOOR_COLD_START_COSTS_GB_S]
        jobs += [("tidal-floor-4h", c, opts) for c in FLOOR_4H_COLD_START_COSTS_GB_S]
        jobs += [("tidal-trust5", c, opts) for c in TRUST5_COLD_START_COSTS_GB_S]
        jobs += [("tidal-trust5-paperhead", c, opts) for c in TRUST5_PAPER_HEAD_COLD_START_COSTS_GB_S]
        jobs += [("tidal-floor-rank1", c, opts) for c in FLOOR_RANK1_COLD_START_COSTS_GB_S]
    out = Path(args.out)
    earlier: list[dict[str, Any]] = []
    if args.only:
        jobs = [(f, float(k), opts) for f, _, k in (item.partition(":") for item in args.only.split(","))]
        if (out / "pareto.json").exists():
            saved = json.loads((out / "pareto.json").read_text(encoding="utf-8"))
            if saved["options"] == opts:
                done = {(f, k) for f, k, _ in jobs}
                earlier = [p for p in saved["points"] if (p["family"], p["knob"]) not in done]
    if args.render:
        saved = json.loads((out / "pareto.json").read_text(encoding="utf-8"))
        jobs, earlier, opts = [], saved["points"], saved["options"]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        points = earlier + list(pool.map(run_point, jobs))
    points.sort(key=lambda p: (p["family"], p["knob"]))
    fronts = {f: front([p for p in points if p["family"] == f]) for f in sorted({p["family"] for p in points})}
    tidal_points = [p for p in points if p["family"].startswith("tidal")]
    fronts[TIDAL] = front(tidal_points)
    # The claim is about one policy: tidal's defaults with only the cold-start price swept.
    rows = below_at_budgets([p for p in points if p["family"] == "tidal"], fronts.get("hybrid", []))
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
    png = plot_png(points, fronts)
    (out / "pareto.png").write_bytes(png)
    (out / "pareto.html").write_text(html_report(png, points, rows, title), encoding="utf-8")
    (out / "pareto.json").write_text(json.dumps({"options": opts, "points": points, "fronts": fronts,
                                                 "dominance": rows, "below_everywhere": below}, indent=1),
                                     encoding="utf-8")
    print(f"wrote {out}/pareto.html, pareto.png, pareto.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
