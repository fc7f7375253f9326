"""The README's bench figure: every policy's SLO attainment against its GPU-hours (relative to the
clairvoyant oracle) on each trace and mode, one panel per setup, from a ``tidal bench`` output folder.

    .venv/bin/python bench/bench_figure.py reports/bench docs/img/bench.png

It reads the per-cell CSVs ``tidal bench`` wrote (``<setup>_<trace>_<mode>.csv``) and runs nothing.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tidal.bench.figures import pyplot, save_png

HIGHLIGHT = ("tidal", "oracle", "static-peak")
"""Policies drawn in their own colour and named in the legend; the rivals share one grey marker each."""
ATTAINMENT_FLOOR = 0.5
"""Cells below half the requests met are drawn at this value (the axis would otherwise be all white)."""


def read_cells(folder: Path) -> dict[str, list[dict[str, str]]]:
    """Rows of every cell CSV, keyed by setup (the file name's part before the first ``_``)."""
    by_setup: dict[str, list[dict[str, str]]] = {}
    for path in sorted(folder.glob("*_*_*.csv")):
        setup = path.stem.split("_", 1)[0]
        with path.open(newline="") as handle:
            by_setup.setdefault(setup, []).extend(csv.DictReader(handle))
    return by_setup


def plot(by_setup: dict[str, list[dict[str, str]]], out: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, len(by_setup), figsize=(6 * len(by_setup), 4.5), squeeze=False)
    colours = {"tidal": "tab:blue", "oracle": "black", "static-peak": "tab:green"}
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    # the smaller model first, as the README lists them
    ordered = sorted(by_setup.items(), key=lambda item: (not item[0].startswith("8b"), item[0]))
    for ax, (setup, rows) in zip(axes[0], ordered):
        for policy in sorted({r["policy"] for r in rows}, key=lambda p: p in HIGHLIGHT):
            pts = [(float(r["gpu_hours_vs_oracle"]), max(float(r["slo_attainment"]), ATTAINMENT_FLOOR))
                   for r in rows if r["policy"] == policy and r["gpu_hours_vs_oracle"]]
            if not pts:
                continue
            xs, ys = zip(*pts)
            if policy in HIGHLIGHT:
                ax.scatter(xs, [100 * y for y in ys], color=colours[policy], s=36, label=policy, zorder=3)
            else:
                ax.scatter(xs, [100 * y for y in ys], color="tab:gray", alpha=0.35, s=14,
                           label="rivals" if "rivals" not in ax.get_legend_handles_labels()[1] else None)
        ax.axhline(99, color="tab:red", lw=0.8, ls="--", label="99 % target")
        ax.axvline(1.25, color="tab:red", lw=0.8, ls=":", label="1.25x oracle")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(100 * ATTAINMENT_FLOOR - 2, 101)
        ax.set_xlabel("GPU-hours / oracle's (log)")
        ax.set_ylabel("requests meeting TTFT and TPOT (%)")
        ax.set_title(f"{setup}: 5 traces x 2 modes")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    save_png(fig, out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a tidal bench --out folder")
    parser.add_argument("out", type=Path, help="the PNG to write")
    args = parser.parse_args()
    cells = read_cells(args.folder)
    if not cells:
        print(f"no <setup>_<trace>_<mode>.csv under {args.folder}: run tidal bench --out {args.folder} first",
              file=sys.stderr)
        return 1
    plot(cells, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
