"""Fair-share bench: ServeGen m-mid clients grouped into weighted tenants on a pool sized to 60 % of
their aggregate peak demand; tidal's allocator against proportional-to-demand and
first-come-first-served (method and metrics: tidal/bench/fairshare.py, docs/bench.md).
Needs ../shared (says so and exits otherwise).

    .venv/bin/python bench/fairshare.py [--days 1] [--seed 0] [--traces-dir DIR] [--plot docs/img/fairshare.png]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tidal.bench.fairshare import Outcome, Scenario, build_scenario, markdown, run
from tidal.sim.traces import TraceNotFoundError
from tidal.bench.figures import pyplot, save_png


def plot_png(scenario: Scenario, outcomes: list[Outcome], out: Path) -> None:
    """Each tenant's demand served under each allocator (tenants by weight), and the allocators'
    guarantee violations and forced moves."""
    plt = pyplot()
    import numpy as np

    order = sorted(range(len(scenario.tenants)), key=lambda i: (scenario.tenants[i].weight, i))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / len(outcomes)
    xs = np.arange(len(order))
    for k, o in enumerate(outcomes):
        left.bar(xs + k * width, [100 * o.satisfaction[i] for i in order], width, label=f"{o.name} (Jain {o.jain_mean:.3f})")
    left.set_xticks(xs + width * (len(outcomes) - 1) / 2)
    left.set_xticklabels([f"{scenario.tenants[i].name}\nw={scenario.tenants[i].weight:g}" for i in order], fontsize=7)
    left.set_ylabel("demand served (%)")
    left.set_title("Per tenant, weight ascending")
    left.set_ylim(0, 120)
    left.legend(fontsize=7, ncol=2, loc="upper center")
    names = [o.name for o in outcomes]
    ys = np.arange(len(outcomes))
    right.barh(ys - 0.2, [o.guarantee_violations for o in outcomes], 0.4, label="guarantee violations")
    right.barh(ys + 0.2, [o.forced_moves_per_hour for o in outcomes], 0.4, label="forced moves / h")
    right.set_yticks(ys)
    right.set_yticklabels(names)
    right.set_title("Lower is better")
    right.legend(fontsize=7)
    save_png(fig, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--traces-dir", type=Path, default=None)
    parser.add_argument("--plot", type=Path, default=None, help="also write this PNG")
    args = parser.parse_args()
    wall0 = time.perf_counter()
    try:
        scenario = build_scenario(args.traces_dir, seed=args.seed, days=args.days)
    except (FileNotFoundError, TraceNotFoundError) as exc:
        print(f"fair-share bench needs the ServeGen traces: {exc}", file=sys.stderr)
        return 1
    outcomes = run(scenario)
    print(markdown(scenario, outcomes))
    if args.plot is not None:
        plot_png(scenario, outcomes, args.plot)
        print(f"wrote {args.plot}")
    print(f"{time.perf_counter() - wall0:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
