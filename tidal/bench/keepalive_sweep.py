"""The keep-alive Pareto sweep: tidal's ``auto`` and the hybrid histogram policy (Shahrad et al.,
ATC'20) replayed on the Azure Functions 2019 sample under each knob setting, and whether tidal's
front lies below the hybrid's (docs/bench.md, "Serverless keep-alive: Pareto fronts").

Families (each behind the ObservationGuard both shells use):

* ``hybrid``: the hybrid histogram policy as published, per instance rank
  (``KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None)``), sweeping its
  keep-alive (tail) percentile; the head percentile stays the paper's 5;
* ``tidal``: tidal's ``auto`` with its defaults, sweeping the price of a cold start in GB-seconds
  of idle memory (``cold_start_cost_gb_s``, default 750) and nothing else;

and the variants of earlier rounds (tidal with other knobs than its defaults, :data:`VARIANTS`):
``tidal-fixed-floor`` (the keep-alive while learning held at 10 minutes), ``tidal-floor-4h`` (at
the hybrid's 4 h range), ``tidal-trust5`` (learned windows trusted after the paper's 5 idle
times), ``tidal-trust5-paperhead`` (and the paper's pre-warm head), ``tidal-floor-rank1`` (the
keep-alive while learning for a function's first instance only, the paper's head).

The claim is about one policy: the front of ``tidal`` (defaults, price swept) below the hybrid's at
every idle-memory budget on the hybrid's front. Used by ``tidal bench --suites keep-alive`` and
bench/keepalive_pareto.py; the replays run in a process pool.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from tidal.bench.figures import png_bytes, pyplot
from tidal.bench.pareto import below_at_budgets, front
from tidal.policies.guards import ObservationGuard
from tidal.policies.keepalive import COLD_START_COST_GB_S, HISTOGRAM_RANGE_S, MIN_IDLE_SAMPLES, KeepAlivePolicy
from tidal.sim.functions_command import parse_function_policy
from tidal.sim.serverless import FunctionSimConfig, FunctionSimulation, load_workload

HYBRID_TAIL_PERCENTILES = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 100.0)
"""The hybrid policy's keep-alive percentile (the paper's is 99)."""
TIDAL_COLD_START_COSTS_GB_S = tuple(sorted(
    [COLD_START_COST_GB_S * f for f in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)]
    + [4000.0, 8000.0, 10000.0, 16000.0]))
"""tidal's price of a cold start, around its default of 750 GB-s, doubling, plus prices between
those from 3,000 GB-s up, where the hybrid's three largest budgets lie and the fronts are close."""
VARIANTS: dict[str, tuple[float, ...]] = {
    "tidal-fixed-floor": (3000.0, 6000.0, 12000.0, 16000.0, 24000.0, 48000.0),
    "tidal-floor-4h": (1500.0, 3000.0, 6000.0, 12000.0),
    "tidal-trust5": (6000.0, 12000.0, 24000.0, 48000.0),
    "tidal-trust5-paperhead": (12000.0, 24000.0),
    "tidal-floor-rank1": (12000.0, 16000.0, 24000.0, 48000.0),
}
"""Prices swept for each variant family, where it differs from ``tidal`` (below 3,000 GB-s the
fixed floor is within 1 % of it; the trust and rank variants reach the largest budgets)."""
TIDAL = "tidal (every setting)"
"""The front over every tidal family (defaults and variants)."""


@dataclass(frozen=True)
class SweepOptions:
    """Which replay every point runs: functions of the sample, the scored window, the warm-up."""

    functions: int = 500
    minutes: int = 60
    start: int = 240
    """Minute of the trace the scored window starts at."""
    warmup: int = 240
    """Minutes replayed before it, unscored (the policies learn their histograms)."""
    seed: int = 0


def build(family: str, knob: float, config: FunctionSimConfig) -> ObservationGuard:
    """The policy of ``family`` at ``knob`` (a percentile for ``hybrid``, else a cold-start price)."""
    auto = parse_function_policy("auto", config)
    inner = getattr(auto, "inner", auto)
    assert isinstance(inner, KeepAlivePolicy)
    if family == "hybrid":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=None, few_samples_keep_alive_s=None,
                                     tail_percentile=knob, name=f"hybrid-p{knob:g}")
    elif family == "tidal-fixed-floor":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, learning_follows_cost=False,
                                     name=f"fixedfloor-{knob:g}GBs")
    elif family == "tidal-trust5":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, trust_samples=MIN_IDLE_SAMPLES,
                                     name=f"trust5-{knob:g}GBs")
    elif family == "tidal-trust5-paperhead":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, trust_samples=MIN_IDLE_SAMPLES,
                                     prewarm_by_cost=False, name=f"trust5ph-{knob:g}GBs")
    elif family == "tidal-floor-rank1":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, learning_floor_all_ranks=False,
                                     prewarm_by_cost=False, name=f"floorrank1-{knob:g}GBs")
    elif family == "tidal-floor-4h":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, learning_follows_cost=False,
                                     few_samples_keep_alive_s=HISTOGRAM_RANGE_S, name=f"floor4h-{knob:g}GBs")
    elif family == "tidal":
        policy = dataclasses.replace(inner, cold_start_cost_gb_s=knob, name=f"tidal-{knob:g}GBs")
    else:
        raise ValueError(f"unknown family {family!r}; known: hybrid, tidal, {', '.join(VARIANTS)}")
    return ObservationGuard(policy)


Job = tuple[str, float, SweepOptions]


def jobs(options: SweepOptions, *, variants: bool = False,
         tidal_prices: Sequence[float] = TIDAL_COLD_START_COSTS_GB_S,
         hybrid_percentiles: Sequence[float] = HYBRID_TAIL_PERCENTILES) -> list[Job]:
    """Every (family, knob) of the sweep on ``options``' replay."""
    out: list[Job] = [("hybrid", p, options) for p in hybrid_percentiles]
    out += [("tidal", c, options) for c in tidal_prices]
    if variants:
        out += [(family, c, options) for family, prices in VARIANTS.items() for c in prices]
    return out


def run_point(job: Job) -> dict[str, Any]:
    """One replay: cold-start fraction of invocations, idle GB-seconds (wasted GB-hours x 3600), GB-hours."""
    family, knob, o = job
    workload = load_workload(None, functions=o.functions, minutes=o.minutes, seed=o.seed,
                             start_minute=o.start, warmup_minutes=o.warmup)
    config = FunctionSimConfig(seed=o.seed)
    result = FunctionSimulation(workload, build(family, knob, config), config).run()
    s = result.summary
    return {"family": family, "knob": knob, "name": str(s.get("policy", family)),
            "cold_start_ratio": s["cold_start_ratio"], "cold_starts": s["cold_starts"],
            "invocations": s["invocations"], "idle_gb_s": s["wasted_gb_hours"] * 3600.0,
            "gb_hours": s["gb_hours"], "wall_s": result.wall_s}


def sweep(todo: Sequence[Job], workers: int) -> list[dict[str, Any]]:
    """Every job's point, sorted by (family, knob); ``workers`` processes (1: in this one)."""
    if workers <= 1:
        points = [run_point(j) for j in todo]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            points = list(pool.map(run_point, todo))
    return sorted(points, key=lambda p: (p["family"], p["knob"]))


def fronts_of(points: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The Pareto front of each family, and of every tidal family together (:data:`TIDAL`)."""
    fronts = {f: front([p for p in points if p["family"] == f]) for f in sorted({p["family"] for p in points})}
    fronts[TIDAL] = front([p for p in points if p["family"].startswith("tidal")])
    return fronts  # type: ignore[return-value]


def dominance(points: Sequence[dict[str, Any]], fronts: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """At each budget on the hybrid's front: tidal's (defaults, price swept) fewest cold starts within it."""
    return below_at_budgets([p for p in points if p["family"] == "tidal"], fronts.get("hybrid", []))


def figure_png(points: Sequence[dict[str, Any]], fronts: dict[str, list[dict[str, Any]]]) -> bytes:
    """Cold starts against idle memory, every setting, the two fronts, and an inset on the largest budgets."""
    plt = pyplot()
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
    # The largest budgets crowd together: the same fronts, zoomed, in an inset, labelled there.
    hybrid_front = fronts.get("hybrid", [])
    zoom_from = 0.85 * hybrid_front[-1]["idle_gb_s"] if hybrid_front else math.inf
    if hybrid_front and fronts.get("tidal"):
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
        low = 0.95 * min(100 * p["cold_start_ratio"] for p in shown)
        inset.set_ylim(low, max(2.0 * 100 * top["cold_start_ratio"], low + 1e-3))
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
    return png_bytes(fig)
