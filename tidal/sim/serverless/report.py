"""Summary rows and an HTML report (matplotlib plots embedded as PNG) for serverless replays.

Several policies replayed on the same workload are shown side by side: one
column per policy in the table, one line per policy in each plot.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tidal.sim.report import format_value, pyplot
from tidal.sim.serverless.platform import FunctionSimResult

SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("invocations", "Invocations", "{:d}"),
    ("functions_invoked", "Functions invoked", "{:d}"),
    ("cold_starts", "Cold starts (invocations that waited for one)", "{:d}"),
    ("cold_start_ratio", "Cold-start ratio", "{:.2%}"),
    ("function_cold_ratio_p75", "Per-function cold-start ratio, p75", "{:.1%}"),
    ("latency_p50_s", "Latency p50 (s)", "{:.3f}"),
    ("latency_p99_s", "Latency p99 (s)", "{:.3f}"),
    ("wait_p99_s", "Added wait p99 (s)", "{:.3f}"),
    ("cold_wait_mean_s", "Mean wait of a cold invocation (s)", "{:.2f}"),
    ("activator_held", "Held by the activator (no ready instance)", "{:d}"),
    ("activator_wait_p99_s", "  their wait p99 (s)", "{:.3f}"),
    ("rejected_queue_full", "Refused: activator queue full (503)", "{:d}"),
    ("rejected_timeout", "Refused: held past the timeout (503)", "{:d}"),
    ("slo_attainment", "SLO attainment", "{:.2%}"),
    ("instance_starts", "Instance starts", "{:d}"),
    ("prewarm_starts", "  of which pre-warm", "{:d}"),
    ("peak_instances", "Peak instances", "{:d}"),
    ("instance_hours", "Instance-hours", "{:.1f}"),
    ("gb_hours", "Memory GB-hours", "{:.1f}"),
    ("wasted_gb_hours", "Wasted idle GB-hours", "{:.1f}"),
    ("wasted_ratio", "Idle share of memory-time", "{:.1%}"),
)


def summary_table(results: Sequence[FunctionSimResult]) -> list[tuple[str, list[str]]]:
    """(label, one formatted value per result) for every summary row."""
    return [(label, [format_value(key, fmt, r.summary.get(key)) for r in results])
            for key, label, fmt in SUMMARY_ROWS]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _mark_warmup(ax, results: Sequence[FunctionSimResult]) -> None:
    start_s = float(results[0].summary.get("measure_from_s") or 0.0)
    if start_s > 0:
        ax.axvline(start_s / 60.0, color="black", linestyle=":", label="end of warm-up")


def _plots(results: Sequence[FunctionSimResult]) -> list[tuple[str, str]]:
    plt = pyplot()

    out = []
    fig, ax = plt.subplots(figsize=(9, 3.2))
    first = results[0].timeline
    t_min = np.asarray(first["t_s"], dtype=float) / 60.0
    tick_s = float(np.diff(first["t_s"]).mean()) if len(first["t_s"]) > 1 else 1.0
    ax.plot(t_min, np.asarray(first["arrivals"], dtype=float) / tick_s, color="grey",
            label="invocations/s (per tick)")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("invocations/s")
    ax2 = ax.twinx()
    for r in results:
        tl = r.timeline
        ax2.step(np.asarray(tl["t_s"], dtype=float) / 60.0, tl["instances"], where="post",
                 label=f"{r.summary['policy']}: instances")
    ax2.set_ylabel("instances")
    _mark_warmup(ax, results)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    out.append(("Invocation rate and instances over time", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.2))
    for r in results:
        tl = r.timeline
        ax.plot(np.asarray(tl["t_s"], dtype=float) / 60.0, tl["cold_starts"],
                label=r.summary["policy"])
    ax.set_xlabel("time (min)")
    ax.set_ylabel("cold starts per tick")
    _mark_warmup(ax, results)
    ax.legend(fontsize=8)
    out.append(("Cold starts over time", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in results:
        calls = r.per_function["invocations"]
        colds = r.per_function["cold_starts"]
        ratio = np.sort(colds[calls > 0] / calls[calls > 0]) * 100.0
        if ratio.size:
            ax.step(ratio, np.arange(1, ratio.size + 1) / ratio.size, where="post",
                    label=r.summary["policy"])
    ax.set_xlabel("cold-start invocations of a function (%)")
    ax.set_ylabel("CDF of functions")
    ax.legend(fontsize=8)
    out.append(("Per-function cold-start ratio (as Shahrad et al., ATC'20)", _png(fig)))
    plt.close(fig)
    return out


def write_functions_report(results: Sequence[FunctionSimResult], path: str | Path, *,
                           title: str = "tidal simulate-functions", setup: str = "") -> Path:
    """Write the comparison report; returns its path."""
    if not results:
        raise ValueError("write_functions_report needs at least one result")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "".join(f"<th>{html.escape(str(r.summary['policy']))}</th>" for r in results)
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in values) + "</tr>"
        for label, values in summary_table(results))
    plots = "".join(f"<h2>{html.escape(t)}</h2><img src='data:image/png;base64,{b64}'/>"
                    for t, b64 in _plots(results))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{html.escape(setup)}</p>
<h2>Summary</h2><table><tr><th>metric</th>{head}</tr>{rows}</table>{plots}</body></html>"""
    path.write_text(doc)
    return path
