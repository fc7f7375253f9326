"""HTML report of one simulation: summary table and plots (matplotlib, embedded as PNG)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from tidal.sim.runner import SimResult

SUMMARY_ROWS: tuple[tuple[str, str, str], ...] = (
    ("requests", "Requests", "{:d}"),
    ("finished", "Finished", "{:d}"),
    ("rejected", "Rejected (longer than KV cache)", "{:d}"),
    ("dropped", "Dropped (drain window ended)", "{:d}"),
    ("unfinished", "Unfinished at horizon", "{:d}"),
    ("activator_held", "Held by the activator (entry not ready)", "{:d}"),
    ("activator_wait_p99_s", "  their wait p99 (s)", "{:.1f}"),
    ("rejected_queue_full", "Refused: activator queue full (503)", "{:d}"),
    ("rejected_timeout", "Refused: held past the timeout (503)", "{:d}"),
    ("ttft_attainment", "TTFT SLO attainment", "{:.1%}"),
    ("tpot_attainment", "TPOT SLO attainment", "{:.1%}"),
    ("slo_attainment", "Both SLOs met", "{:.1%}"),
    ("ttft_p50_s", "TTFT p50 (s)", "{:.3f}"),
    ("ttft_p99_s", "TTFT p99 (s)", "{:.3f}"),
    ("tpot_p50_s", "TPOT p50 (ms)", "ms"),
    ("tpot_p99_s", "TPOT p99 (ms)", "ms"),
    ("e2e_p99_s", "End-to-end p99 (s)", "{:.2f}"),
    ("gpu_hours", "GPU-hours", "{:.2f}"),
    ("cost_usd", "Cost (USD)", "{:.2f}"),
    ("cold_starts", "Cold starts (pods that became ready)", "{:d}"),
    ("cold_start_mean_s", "Mean cold start (s)", "{:.1f}"),
    ("pods_created", "Pods created (largest pool)", "{:d}"),
    ("pods_cancelled", "Pods removed before ready", "{:d}"),
    ("preemptions", "Preemptions", "{:d}"),
    ("prefix_cache_hit_ratio", "Prefix-cache hit ratio", "{:.1%}"),
)


def format_value(key: str, fmt: str, value: object) -> str:
    if value is None:
        return "n/a"
    if fmt == "ms":
        return f"{float(value) * 1e3:.1f}"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def summary_rows(result: SimResult) -> list[tuple[str, str]]:
    s = result.summary
    rows = [(label, format_value(key, fmt, s.get(key))) for key, label, fmt in SUMMARY_ROWS]
    for name, by in (s.get("by_class") or {}).items():  # a mixed cluster: each class at its price
        rows.append((f"class {name}: GPU-hours / cost (USD)", f"{by['gpu_hours']:.2f} / {by['cost_usd']:.2f}"))
    return rows


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class ReportDependencyMissing(RuntimeError):
    """matplotlib is an extra (``tidal[sim]``): the operator image does not carry it."""


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no screen), or a clear error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise ReportDependencyMissing("HTML reports need matplotlib: pip install 'tidal[sim]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plots(result: SimResult) -> list[tuple[str, str]]:
    plt = pyplot()

    tl = result.timeline
    t_min = np.asarray(tl["t_s"], dtype=float) / 60.0
    pools = sorted({k.split(".")[0] for k in tl if k.endswith(".ready")})
    out = []
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.plot(t_min, tl["arrival_rps"], color="tab:blue", label="arrival rate (req/s, 1-min window)")
    ax.set_xlabel("time (min)")
    ax.set_ylabel("req/s")
    ax2 = ax.twinx()
    # Replicas take the colours after the arrival rate's, one per pool (ready solid, desired dashed).
    pool_colors = ("tab:orange", "tab:green", "tab:purple", "tab:brown")
    for pool, color in zip(pools, pool_colors * (len(pools) // len(pool_colors) + 1)):
        ax2.step(t_min, tl[f"{pool}.ready"], where="post", color=color, label=f"{pool} ready")
        ax2.step(t_min, tl[f"{pool}.desired"], where="post", color=color, linestyle="--", alpha=0.7,
                 label=f"{pool} desired")
    ax2.set_ylabel("replicas")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=8)
    out.append(("Arrival rate and replicas over time", _png(fig)))
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, metric, slo, unit in ((axes[0], "ttft", result.summary["ttft_slo_s"], 1.0),
                                  (axes[1], "tpot", result.summary["tpot_slo_s"], 1e3)):
        for q in ("p50", "p99"):
            ys = [np.nan if v is None else v * unit for v in tl[f"{metric}_{q}_s"]]
            ax.plot(t_min, ys, label=q)
        ax.axhline(slo * unit, color="red", linestyle=":", label="SLO")
        ax.set_title(f"{metric.upper()} ({'s' if unit == 1.0 else 'ms'}), 1-min window")
        ax.set_xlabel("time (min)")
        ax.legend(fontsize=8)
    out.append(("Latency percentiles over time", _png(fig)))
    plt.close(fig)
    return out


def write_html_report(result: SimResult, path: str | Path, *, title: str = "tidal simulate") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                   for k, v in summary_rows(result))
    plots = "".join(f"<h2>{html.escape(t)}</h2><img src='data:image/png;base64,{b64}'/>"
                    for t, b64 in _plots(result))
    changes = [d for i, d in enumerate(result.decisions)
               if i == 0 or d["desired"] != result.decisions[i - 1]["desired"]]
    decisions = "".join(
        f"<tr><td>{d['t_s']:.0f}</td><td>{html.escape(json.dumps(d['desired']))}</td>"
        f"<td>{html.escape('; '.join(r['code'] + ': ' + r['message'] for r in d['reasons']))}"
        f"</td></tr>" for d in changes[:200])
    s = result.summary
    setup = html.escape(f"policy {s['policy']} | model {s['model']} | {s['accelerator']} x "
                        f"TP{s['tp']} | mode {s['mode']} | seed {s['seed']} | step times "
                        f"{s['perf_source']}")
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head>
<body><h1>{html.escape(title)}</h1><p>{setup}</p>
<h2>Summary</h2><table>{rows}</table>{plots}
<h2>Scaling decisions (changes only)</h2><table><tr><th>t (s)</th><th>desired</th>
<th>reasons</th></tr>{decisions}</table></body></html>"""
    path.write_text(doc)
    return path
