"""Bench output: one markdown table and one CSV per (setup, trace, mode), all tables in one
markdown file, and an HTML report with one GPU-hours-vs-attainment plot per (setup, trace).

Everything written here is a pure function of the rows (no wall times, no dates), so the
same inputs give byte-identical tables. Rows from several seeds are averaged per policy.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidal.bench.policies import ORACLE, STATIC_PEAK
from tidal.bench.workloads import TRACES, setup_named
from tidal.sim.report import pyplot

METRICS = ("ttft_attainment", "tpot_attainment", "slo_attainment", "gpu_hours",
           "gpu_hours_vs_oracle", "cold_starts", "scale_events", "pods_removed_before_ready",
           "ttft_p99_s")
"""Columns of every table, in order (averaged over seeds)."""

HEADERS = ("policy", "TTFT met", "TPOT met", "both met", "GPU-hours", "x oracle",
           "cold starts", "scale events", "removed before ready", "TTFT p99 (s)")


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """Rows averaged over seeds, grouped by (setup, trace, mode), policies in row order."""
    groups: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in rows:
        groups.setdefault((r["setup"], r["trace"], r["mode"]), {}).setdefault(
            r["policy"], []).append(r)
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for key, by_policy in groups.items():
        table = []
        for policy, runs in by_policy.items():
            row = {"policy": policy, "seeds": len(runs), "requests": runs[0]["requests"],
                   "notes": runs[0]["notes"],
                   "ttft_infeasible": runs[0]["ttft_infeasible"],
                   "kv_infeasible": runs[0]["kv_infeasible"],
                   "max_feasible_prompt_tokens": runs[0]["max_feasible_prompt_tokens"]}
            for m in METRICS:
                row[m] = _mean([r.get(m) for r in runs])
            table.append(row)
        oracle = next((r for r in table if r["policy"] == ORACLE), None)
        for row in table:     # ratio of the seed-averaged GPU-hours
            row["gpu_hours_vs_oracle"] = (row["gpu_hours"] / oracle["gpu_hours"]
                                          if oracle and oracle["gpu_hours"] else None)
        out[key] = table
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _num(x: float | None, digits: int) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _count(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["policy"], _pct(row["ttft_attainment"]), _pct(row["tpot_attainment"]),
            _pct(row["slo_attainment"]), _num(row["gpu_hours"], 2),
            _num(row["gpu_hours_vs_oracle"], 2), _count(row["cold_starts"]),
            _count(row["scale_events"]), _count(row["pods_removed_before_ready"]),
            _num(row["ttft_p99_s"], 2)]


def title(key: tuple[str, str, str]) -> str:
    setup, trace, mode = key
    s = setup_named(setup)
    engine = "" if s.engine_speed == 1.0 else f" | engine at {s.engine_speed:.3g}x its model (--perturb)"
    return f"{trace} | {mode} | {s.model} on {s.accelerator} x TP{s.tp}{engine}"


def _infeasible(row: dict[str, Any]) -> str:
    if row["ttft_infeasible"]:
        text = (f"{row['ttft_infeasible']:,} cannot meet the TTFT target at any replica count "
                f"(prompt over {row['max_feasible_prompt_tokens']:,} tokens)")
    else:
        text = "every prompt can meet the TTFT target on an idle replica"
    return text + f"; {row['kv_infeasible']:,} exceed the KV cache."


def _references(table: Sequence[dict[str, Any]]) -> str:
    """What the searches found (static-peak's size, oracle intervals the cap could not serve) and
    the profiled targets a rival was given."""
    parts = []
    for row in table:
        notes = row.get("notes") or {}
        if row["policy"] == STATIC_PEAK and "replicas" in notes:
            sizes = ", ".join(f"{n} {pool}" for pool, n in sorted(notes["replicas"].items()))
            parts.append(f"static-peak holds {sizes}"
                         + ("" if notes.get("met", True) else " (the cap, short of the SLO)"))
        if "pd_ratio" in notes:
            parts.append(f"{row['policy']} targets {notes['target_decode_tps_per_replica']:,.0f} "
                         f"decode tokens/s per replica at P/D ratio {notes['pd_ratio']:g} "
                         "(profiled)")
        if row["policy"] == ORACLE and notes.get("capped_intervals"):
            parts.append(f"the oracle hit the replica cap in {notes['capped_intervals']} "
                         "minute(s)")
    return ("; ".join(parts) + ".") if parts else ""


def _seed_note(row: dict[str, Any]) -> str:
    return " (counts and notes: the first seed; metrics: their mean)" if row["seeds"] > 1 else ""


def markdown_table(key: tuple[str, str, str], table: Sequence[dict[str, Any]]) -> str:
    """One (setup, trace, mode) table with its SLO and feasibility line above it."""
    trace = TRACES[key[1]]
    first = table[0]
    lines = [f"### {title(key)}", "",
             f"SLO: TTFT <= {trace.slo.ttft_s:g} s and TPOT <= {trace.slo.tpot_s * 1e3:g} ms, "
             f"target {100 * trace.slo.attainment:g} % of requests. {first['requests']:,} "
             f"requests; " + " ".join(filter(None, (_infeasible(first), _references(table))))
             + f" Seeds: {first['seeds']}{_seed_note(first)}.",
             "",
             "| " + " | ".join(HEADERS) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(HEADERS) - 1)) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in table]
    return "\n".join(lines) + "\n"


def _csv_value(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def csv_text(table: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = ("policy", "seeds", "requests") + METRICS
    writer.writerow(columns)
    for row in table:
        writer.writerow([_csv_value(row[c]) for c in columns])
    return buf.getvalue()


def _plot_png(setup: str, trace: str,
              tables: dict[tuple[str, str, str], list[dict[str, Any]]]) -> str:
    plt = pyplot()  # a clear error when the `sim` extra is missing
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7, 4))
    markers = {"unified": "o", "disaggregated": "s"}
    cells = {mode: table for (s, t, mode), table in tables.items() if (s, t) == (setup, trace)}
    policies = list(dict.fromkeys(row["policy"] for table in cells.values() for row in table))
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(policies)}
    for mode, table in cells.items():
        for row in table:
            if row["gpu_hours"] is None or row["slo_attainment"] is None:
                continue
            ax.scatter([row["gpu_hours"]], [100 * row["slo_attainment"]],
                       marker=markers.get(mode, "^"), color=colours[row["policy"]], s=40,
                       edgecolors="black" if row["policy"] == ORACLE else "none")
    handles = [Line2D([], [], linestyle="", marker="o", color=colours[p], label=p)
               for p in policies]
    handles += [Line2D([], [], linestyle="", marker=m, color="grey", label=mode)
                for mode, m in markers.items() if mode in cells]
    ax.axhline(100 * TRACES[trace].slo.attainment, color="red", linestyle=":")
    handles.append(Line2D([], [], color="red", linestyle=":", label="target attainment"))
    ax.set_xlabel("GPU-hours")
    ax.set_ylabel("requests meeting both SLOs (%)")
    ax.set_title(f"{trace} | {setup_named(setup).model}")
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight",
                metadata={"Software": None})
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _html_table(key: tuple[str, str, str], table: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row))
                   + "</tr>" for row in table)
    return (f"<h3>{html.escape(title(key))}</h3><p>{html.escape(_infeasible(table[0]))}</p>"
            f"<table><tr>{head}</tr>{rows}</table>")


def overview_table(setup: str, tables: dict[tuple[str, str, str], list[dict[str, Any]]]) -> str:
    """One line per (trace, mode) of ``setup``, one column per policy: both-met attainment / GPU-hours
    relative to the oracle (``n/a`` where a policy did not run), the README's summary."""
    keys = [k for k in tables if k[0] == setup]
    policies = list(dict.fromkeys(r["policy"] for k in keys for r in tables[k]))
    lines = ["| trace, mode | " + " | ".join(policies) + " |", "|---" * (len(policies) + 1) + "|"]
    for key in keys:
        by = {r["policy"]: r for r in tables[key]}
        cells = [f"{_pct(by[p]['slo_attainment'])} / {_num(by[p]['gpu_hours_vs_oracle'], 2)}x" if p in by else "n/a"
                 for p in policies]
        lines.append(f"| {key[1]}, {key[2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(rows: Sequence[dict[str, Any]], out: Path, *,
                  window: str = "whole traces") -> list[Path]:
    """Write every table (markdown + CSV), ``bench.md`` and ``bench.html`` under ``out``;
    ``window`` says which part of the traces was replayed."""
    out.mkdir(parents=True, exist_ok=True)
    tables = aggregate(rows)
    written: list[Path] = []
    sections = []
    for key, table in tables.items():
        stem = "_".join(key)
        md = markdown_table(key, table)
        sections.append(md)
        for suffix, text in ((".md", md), (".csv", csv_text(table))):
            path = out / f"{stem}{suffix}"
            path.write_text(text)
            written.append(path)
    legend = "\n".join(f"- `{name}`: {t.description}. SLO reason: {t.slo_reason}."
                       for name, t in TRACES.items()
                       if any(k[1] == name for k in tables))
    for setup in dict.fromkeys(k[0] for k in tables):
        path = out / f"overview_{setup}.md"
        path.write_text(overview_table(setup, tables))
        written.append(path)
    summary = out / "bench.md"
    summary.write_text(f"# tidal bench\n\nReplayed: {window}.\n\n" + legend + "\n\n"
                       + "\n".join(sections))
    written.append(summary)
    plots = []
    for setup, trace in dict.fromkeys((k[0], k[1]) for k in tables):
        png = _plot_png(setup, trace, tables)
        plots.append(f"<h2>{html.escape(trace)} ({html.escape(setup)})</h2>"
                     f"<img src='data:image/png;base64,{png}'/>")
    body = "".join(_html_table(key, table) for key, table in tables.items())
    page = out / "bench.html"
    page.write_text("<!doctype html><html><head><meta charset='utf-8'><title>tidal bench"
                    "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em "
                    "auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                    "padding:3px 8px;text-align:right}</style></head><body><h1>tidal bench</h1>"
                    + f"<p>Replayed: {html.escape(window)}.</p>" + "".join(plots)
                    + "<h2>Tables</h2>" + body + "</body></html>")
    written.append(page)
    return written
