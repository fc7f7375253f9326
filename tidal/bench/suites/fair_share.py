"""The fair-share suite: ServeGen m-mid clients grouped into weighted tenants on a pool at 60 % of
their aggregate peak demand; tidal's allocator against proportional-to-demand and
first-come-first-served (method and metrics: tidal/bench/fairshare.py, docs/bench.md).

The issue's target: Jain's index >= 0.95, zero guarantee violations, fewer replica moves than
proportional.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tidal.bench.fairshare import Outcome, Scenario, build_scenario, markdown, run as run_allocators
from tidal.bench.figures import png_bytes, pyplot
from tidal.bench.suites.result import SuiteInputError, SuiteOptions, SuiteResult, Target
from tidal.sim.traces import TraceNotFoundError

TARGET_JAIN = 0.95
"""The issue's floor on Jain's index of weight-normalised allocations."""
QUICK_DAYS = 0.25
"""Days of ServeGen replayed with ``--quick`` (the first six hours)."""
TIDAL_ALLOCATOR = "tidal (gentle)"
"""The row the targets are read from: tidal's default rebalancing."""
PROPORTIONAL = "proportional"


def figure_png(scenario: Scenario, outcomes: Sequence[Outcome]) -> bytes:
    """Each tenant's demand served under each allocator (tenants by weight), and the allocators'
    guarantee violations and forced moves."""
    plt = pyplot()
    import numpy as np

    order = sorted(range(len(scenario.tenants)), key=lambda i: (scenario.tenants[i].weight, i))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(outcomes)
    xs = np.arange(len(order))
    for k, o in enumerate(outcomes):
        left.bar(xs + k * width, [100 * o.satisfaction[i] for i in order], width,
                 label=f"{o.name} (Jain {o.jain_mean:.3f})")
    left.set_xticks(xs + width * (len(outcomes) - 1) / 2)
    left.set_xticklabels([f"{scenario.tenants[i].name}\nw={scenario.tenants[i].weight:g}" for i in order], fontsize=7)
    left.set_ylabel("demand served (%)")
    left.set_title("Per tenant, weight ascending")
    left.set_ylim(0, 120)
    left.legend(fontsize=7, ncol=2, loc="upper center")
    ys = np.arange(len(outcomes))
    right.barh(ys - 0.2, [o.guarantee_violations for o in outcomes], 0.4, label="guarantee violations")
    right.barh(ys + 0.2, [o.forced_moves_per_hour for o in outcomes], 0.4, label="forced moves / h")
    right.set_yticks(ys)
    right.set_yticklabels([o.name for o in outcomes])
    right.set_title("Lower is better")
    right.legend(fontsize=7)
    return png_bytes(fig)


def targets(outcomes: Sequence[Outcome]) -> tuple[Target, ...]:
    by = {o.name: o for o in outcomes}
    tidal, proportional = by[TIDAL_ALLOCATOR], by[PROPORTIONAL]
    return (Target(f"Jain >= {TARGET_JAIN}", tidal.jain_mean >= TARGET_JAIN,
                   f"mean {tidal.jain_mean:.3f}, p5 {tidal.jain_p5:.3f}"),
            Target("zero guarantee violations", tidal.guarantee_violations == 0,
                   f"{tidal.guarantee_violations} tenant-minutes"),
            Target("fewer replica moves than proportional",
                   tidal.forced_moves_per_hour < proportional.forced_moves_per_hour,
                   f"{tidal.forced_moves_per_hour:.1f} vs {proportional.forced_moves_per_hour:.1f} per hour"))


def run(options: SuiteOptions, days: float | None = None) -> SuiteResult:
    """The allocators on ``days`` of ServeGen (default: one, a quarter with ``quick``)."""
    if days is None:
        days = QUICK_DAYS if options.quick else 1.0
    try:
        scenario = build_scenario(options.traces_dir, seed=options.seed, days=days)
    except (FileNotFoundError, TraceNotFoundError) as exc:
        raise SuiteInputError(f"the fair-share suite needs the ServeGen traces: {exc}") from None
    outcomes = run_allocators(scenario)
    data = {"tenants": [dataclasses.asdict(t) for t in scenario.tenants],
            "capacity_gpus": scenario.capacity_gpus, "outcomes": [dataclasses.asdict(o) for o in outcomes]}
    return SuiteResult("fair-share", "Fair share", markdown(scenario, outcomes), data,
                       figure_png(scenario, outcomes), targets(outcomes))
