"""The keep-alive suite: the Pareto fronts (cold-start fraction against idle GB-seconds) of tidal's
``auto``, its cold-start price swept, and of the hybrid histogram policy, its keep-alive percentile
swept, on the Azure Functions 2019 sample (method: tidal/bench/keepalive_sweep.py, docs/bench.md).

The issue's target: at every idle-memory budget on the hybrid's front, tidal (defaults, only the
price swept) has fewer cold starts. The full suite replays the 500 functions for an hour after a
4-hour warm-up (about 20 minutes on 2 workers); ``quick`` replays 50 functions for 30 minutes after
an hour.
"""

from __future__ import annotations

from tidal.bench.keepalive_sweep import SweepOptions, dominance, figure_png, fronts_of, jobs, sweep
from tidal.bench.suites.result import SuiteOptions, SuiteResult, Target
from tidal.bench.suites.tables import markdown_table

QUICK = SweepOptions(functions=50, minutes=30, start=60, warmup=60)
"""The quick replay: a tenth of the functions, half the window, an hour of warm-up."""

POINT_COLUMNS = (("name", "policy", "{}"), ("cold_start_ratio", "cold starts", "{:.3%}"),
                 ("cold_starts", "count", "{:,}"), ("idle_gb_s", "idle M GB-s", "{:.3f}", 1e-6),
                 ("gb_hours", "GB-h", "{:,.0f}"))
DOMINANCE_COLUMNS = (("reference", "hybrid point", "{}"), ("budget_idle_gb_s", "idle budget M GB-s", "{:.3f}", 1e-6),
                     ("reference_cold_start_ratio", "hybrid cold starts", "{:.3%}"),
                     ("candidate", "tidal's best within", "{}"),
                     ("candidate_cold_start_ratio", "its cold starts", "{:.3%}"), ("below", "below", "{}"))


def run(options: SuiteOptions) -> SuiteResult:
    sweep_options = QUICK if options.quick else SweepOptions()
    sweep_options = SweepOptions(**{**vars(sweep_options), "seed": options.seed})
    points = sweep(jobs(sweep_options), options.workers)
    fronts = fronts_of(points)
    rows = dominance(points, fronts)
    below = bool(rows) and all(r["below"] for r in rows)
    o = sweep_options
    text = (f"{o.functions} functions, {o.minutes} min from minute {o.start} after a {o.warmup}-minute "
            f"warm-up, seed {o.seed}.\n\n" + markdown_table(points, POINT_COLUMNS)
            + "\n\ntidal (defaults, price swept) at each budget on the hybrid's front:\n\n"
            + markdown_table(rows, DOMINANCE_COLUMNS) + "\n")
    missed = [r["reference"] for r in rows if not r["below"]]
    target = Target("tidal's front below the hybrid's at every idle-memory budget on it", below,
                    f"{len(rows) - len(missed)} of {len(rows)} budgets"
                    + (f"; not below at {', '.join(map(str, missed))}" if missed else ""))
    return SuiteResult("keep-alive", "Serverless keep-alive: Pareto fronts", text,
                       {"options": vars(o), "points": points, "dominance": rows, "below_everywhere": below},
                       figure_png(points, fronts), (target,))
