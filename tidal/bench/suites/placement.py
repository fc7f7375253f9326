"""The placement suite: tidal's placement on a mixed cluster (H100, A100, L40S, L4 in limited
numbers) against H100-only, cheapest-only and the hourly-cost order, on the Azure LLM 2023
conversation and code traces (method: tidal/bench/placement.py, docs/bench.md).

The issue's target, per trace: >= 99 % attainment at lower cost per hour than H100-only and than
cheapest-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tidal.bench.figures import png_bytes, pyplot
from tidal.bench.placement import RULES, TRACE_NAMES, Row, markdown, run as run_rule, verdict
from tidal.bench.settings import TARGET_ATTAINMENT
from tidal.bench.suites.result import SuiteInputError, SuiteOptions, SuiteResult, Target
from tidal.sim.traces import TraceNotFoundError

QUICK_DURATION_S = 900.0
"""Seconds of each trace replayed with ``--quick`` (the first quarter hour)."""

MARKERS = {"tidal": ("tab:blue", "o"), "h100-only": ("black", "s"), "cheapest-only": ("tab:orange", "v"),
           "hourly-order": ("tab:gray", "D")}


def figure_png(rows: Sequence[Row]) -> bytes:
    """Cost per hour against attainment, one marker per rule, one panel per trace."""
    plt = pyplot()
    traces = list(dict.fromkeys(r.trace for r in rows))
    fig, axes = plt.subplots(1, len(traces), figsize=(5.5 * len(traces), 4), squeeze=False)
    for ax, trace in zip(axes[0], traces):
        for r in (r for r in rows if r.trace == trace):
            colour, marker = MARKERS.get(r.rule, ("tab:gray", "x"))
            ax.scatter(r.cost_per_hour, 100 * r.attainment, color=colour, marker=marker, s=60, label=r.rule)
        ax.axhline(100 * TARGET_ATTAINMENT, color="tab:red", lw=0.8, ls="--", label="target")
        ax.set_xlabel("cost per hour ($)")
        ax.set_ylabel("requests meeting TTFT and TPOT (%)")
        ax.set_title(f"{trace} (upper left is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return png_bytes(fig)


def run(options: SuiteOptions) -> SuiteResult:
    duration = QUICK_DURATION_S if options.quick else None
    rows: list[Row] = []
    found: list[Target] = []
    lines: list[str] = []
    try:
        for trace in TRACE_NAMES:
            rows += [run_rule(trace, rule, duration, options.seed, traces_dir=options.traces_dir) for rule in RULES]
            met, detail = verdict(rows, trace)
            lines += [f"{trace}: " + d for d in detail]
            by = {r.rule: r for r in rows if r.trace == trace}
            found.append(Target(f"{trace}: >= {TARGET_ATTAINMENT:.0%} attainment, cheaper than h100-only and "
                                "cheapest-only", met, ", ".join(
                                    f"{rule} ${by[rule].cost_per_hour:.2f}/h at {by[rule].attainment:.2%}"
                                    for rule in ("tidal", "h100-only", "cheapest-only"))))
    except (FileNotFoundError, TraceNotFoundError) as exc:
        raise SuiteInputError(f"the placement suite needs the Azure LLM traces: {exc}") from None
    text = markdown(rows) + "\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    return SuiteResult("placement", "Placement across accelerator classes", text,
                       [dataclasses.asdict(r) for r in rows], figure_png(rows), tuple(found))
