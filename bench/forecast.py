"""Forecasting benchmark: tidal's forecasters against classical methods, in one run.

Suites (issue 4):
- long: ServeGen m-small and m-mid clients, 10-minute windows; every method
  learns from days 1-11 and is evaluated on days 12-14 from hourly origins at
  horizons 10, 30 and 60 minutes.
- short: Azure LLM 2023 code and conv, arrivals binned to 10 s; rolling origin
  (every cell after a 20-minute warm-up) at horizons 30 s, 2 min and 5 min.

Metrics, per series then averaged over series: pinball loss at q=0.5 and 0.9
scaled by the series' mean rate over its training span; MASE of the median
(denominator: in-sample MAE of the seasonal-naive forecast, one day back on the
10-minute grid and one cell back at 10 s); coverage of the 0.9 quantile
(pooled). Series whose training span is all zeros are excluded (no scale).

statsforecast (benchmark-only dependency): AutoETS and AutoARIMA are fitted
on the training span and then run forward over the test span with their fitted
parameters (refitted every 5 minutes on the short suite). Their 0.9 quantile
is the upper bound of the 80% interval; negative outputs are clipped to zero
(which can only help them). statsforecast's ETS ignores seasons longer than 24
(so it is non-seasonal on the 10-minute grid) and AutoARIMA with a 144-cell
season does not finish in useful time on this machine, so both run
non-seasonal; the seasonal reference is tidal's seasonal-naive.

Usage: .venv/bin/python bench/forecast.py [--quick] [--suite long|short|all] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import _forecast_data as data  # noqa: E402

QS = (0.5, 0.9)
TIDAL_METHODS = ("seasonal_naive", "holt_winters", "torch", "auto")
SF_METHODS = ("AutoETS", "AutoARIMA")
METHODS = TIDAL_METHODS[:2] + SF_METHODS + TIDAL_METHODS[2:]
LONG_TRAIN_CELLS = 11 * 144
LONG_HORIZONS_S = (600.0, 1800.0, 3600.0)
LONG_ORIGIN_EVERY = 6  # hourly origins on the 10-minute grid
SHORT_WARMUP_CELLS = 120  # 20 minutes at 10 s
SHORT_HORIZONS_S = (30.0, 120.0, 300.0)
SHORT_REFIT_EVERY = 30  # statsforecast refit every 5 minutes of 10-s cells


def _sf_models(season: int):
    from statsforecast.models import AutoARIMA, AutoETS

    return {"AutoETS": AutoETS(season_length=season), "AutoARIMA": AutoARIMA(season_length=1)}


def _sf_forecast(model, y: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    out = model.forward(y=y.astype(np.float64), h=h, level=[80])
    return np.maximum(out["mean"], 0.0), np.maximum(out["hi-80"], 0.0)


def run_series(job: tuple) -> dict:
    """All methods on one series; returns y and (q50, q90) per method [origin, horizon]."""
    import torch

    from tidal.predictors.auto import AutoForecaster

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    series, train_cells, origins, horizons_s, refit_every = job
    y = series.rate_rps
    steps = np.maximum(1, np.rint(np.asarray(horizons_s) / series.step_s)).astype(int)
    hmax = int(steps.max())
    res = {m: np.zeros((len(origins), len(steps), 2)) for m in METHODS}
    truth = np.stack([y[o + steps] for o in origins])
    # tidal: one auto forecaster; its members are the standalone methods (same inputs, same state).
    auto = AutoForecaster(series.step_s)
    origin_set = {int(o): k for k, o in enumerate(origins)}
    t_obs = 0.0
    for c in range(int(max(origins)) + 1):
        t0 = time.perf_counter()
        auto.observe(series.t0_s + c * series.step_s, float(y[c]))
        t_obs += time.perf_counter() - t0
        k = origin_set.get(c)
        if k is None:
            continue
        res["auto"][k] = auto.forecast(horizons_s, QS).values
        for name in ("seasonal_naive", "holt_winters", "torch"):
            res[name][k] = auto.members[name].forecast(horizons_s, QS).values
    # statsforecast
    season = int(round(86_400 / series.step_s))
    fail = {}
    models = None
    for k, o in enumerate(origins):
        if models is None or (refit_every and (o - origins[0]) % refit_every == 0):
            models = _sf_models(season if season <= 24 else 1)
            fit_y = y[: (train_cells if not refit_every else o + 1)]
            for name, m in list(models.items()):
                try:
                    m.fit(fit_y.astype(np.float64))
                except Exception as e:  # a degenerate series: report, forecast last value
                    fail[name] = repr(e)[:80]
                    models[name] = None
        for name, m in models.items():
            try:
                if m is None:
                    raise RuntimeError("fit failed")
                mean, hi = _sf_forecast(m, y[: o + 1], hmax)
                res[name][k, :, 0] = mean[steps - 1]
                res[name][k, :, 1] = hi[steps - 1]
            except Exception as e:
                fail.setdefault(name, repr(e)[:80])
                res[name][k, :, :] = y[o]
    return {
        "name": series.name,
        "truth": truth,
        "res": res,
        "fail": fail,
        "obs_s_per_cell": t_obs / (max(origins) + 1),
        "state_bytes": len(json.dumps(auto.to_state())),
    }


def scores(series: data.RateSeries, out: dict, train_cells: int, season: int) -> dict | None:
    y = series.rate_rps
    tr = y[:train_cells]
    scale = tr.mean()
    if scale <= 0:
        return None
    naive_mae = np.mean(np.abs(tr[season:] - tr[:-season]))
    truth = out["truth"]
    rows = {}
    for m, r in out["res"].items():
        q50, q90 = r[..., 0], r[..., 1]
        d50, d90 = truth - q50, truth - q90
        p50 = np.maximum(0.5 * d50, -0.5 * d50)
        p90 = np.maximum(0.9 * d90, -0.1 * d90)
        rows[m] = {
            "pin50": p50.mean(0) / scale,  # per horizon
            "pin90": p90.mean(0) / scale,
            "mase": (np.abs(d50).mean(0) / naive_mae) if naive_mae > 0 else None,
            "cov_hits": (truth <= q90 + 1e-12).sum(0),
            "n": truth.shape[0],
        }
    return rows


def summarise(all_rows: list[dict], horizons_s) -> dict:
    table = {}
    for m in METHODS:
        p50 = np.mean([r[m]["pin50"] for r in all_rows], 0)
        p90 = np.mean([r[m]["pin90"] for r in all_rows], 0)
        mase = [r[m]["mase"] for r in all_rows if r[m]["mase"] is not None]
        hits = np.sum([r[m]["cov_hits"] for r in all_rows], 0)
        n = np.sum([r[m]["n"] for r in all_rows])
        table[m] = {
            "pin50": float(p50.mean()),
            "pin90": float(p90.mean()),
            "pin90_by_h": [float(v) for v in p90],
            "mase": float(np.mean(mase)) if mase else float("nan"),
            "cov90": float(hits.sum() / (n * len(horizons_s))),
        }
    return table


def print_table(title: str, table: dict, horizons_s, n_series: int, extra: str = "") -> None:
    classical = [m for m in METHODS if m not in ("torch", "auto")]
    best90 = min(classical, key=lambda m: table[m]["pin90"])
    best50 = min(classical, key=lambda m: table[m]["pin50"])
    hdr = "/".join(f"{h:g}s" for h in horizons_s)
    print(f"\n## {title} ({n_series} series{extra})")
    print(f"| method | pinball q0.5 | pinball q0.9 | q0.9 pinball by horizon ({hdr}) | MASE | coverage q0.9 |")
    print("|---|---|---|---|---|---|")
    for m in METHODS:
        t = table[m]
        byh = " / ".join(f"{v:.4f}" for v in t["pin90_by_h"])
        print(f"| {m} | {t['pin50']:.4f} | {t['pin90']:.4f} | {byh} | {t['mase']:.3f} | {t['cov90']:.3f} |")
    a = table["auto"]
    print(
        f"auto vs best classical: q0.5 {100 * (1 - a['pin50'] / table[best50]['pin50']):+.1f}% below {best50}; "
        f"q0.9 {100 * (1 - a['pin90'] / table[best90]['pin90']):+.1f}% below {best90} (target >= +10%); "
        f"coverage {a['cov90']:.3f} (target 0.85-0.95)"
    )
    lowest = min(METHODS, key=lambda m: table[m]["pin50"] + table[m]["pin90"])
    print(f"lowest mean pinball (q0.5+q0.9)/2: {lowest}")


def run_suite(name: str, series: list[data.RateSeries], jobs: list[tuple], train_cells, season, horizons_s, workers):
    t0 = time.time()
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            outs = pool.map(run_series, jobs, chunksize=1)
    else:
        outs = [run_series(j) for j in jobs]
    rows = []
    for s, o, tc in zip(series, outs, train_cells):
        r = scores(s, o, tc, season)
        if r is not None:
            rows.append(r)
    fails = {o["name"]: o["fail"] for o in outs if o["fail"]}
    table = summarise(rows, horizons_s)
    excluded = len(series) - len(rows)
    print_table(name, table, horizons_s, len(rows), f", {excluded} all-zero excluded" if excluded else "")
    if fails:
        print(f"statsforecast failures (forecast = last value): {len(fails)} series, e.g. {next(iter(fails.items()))}")
    obs_ms = np.mean([o["obs_s_per_cell"] for o in outs]) * 1000
    state_kb = max(o["state_bytes"] for o in outs) / 1024
    print(f"suite wall time {time.time() - t0:.0f} s; auto online update {obs_ms:.2f} ms/cell; max state {state_kb:.0f} KiB")
    return table


def long_suite(quick: bool, workers: int):
    series = data.load_servegen()
    if quick:
        series = series[::8]
    n = len(series[0].rate_rps)
    origins = np.arange(LONG_TRAIN_CELLS - 1, n - 6, LONG_ORIGIN_EVERY * (3 if quick else 1))
    jobs = [(s, LONG_TRAIN_CELLS, origins, LONG_HORIZONS_S, 0) for s in series]
    return run_suite(
        "Long horizon: ServeGen m-small + m-mid, 10-min windows, train days 1-11, test days 12-14",
        series, jobs, [LONG_TRAIN_CELLS] * len(series), 144, LONG_HORIZONS_S, workers,
    )


def short_suite(quick: bool, workers: int):
    series = [data.load_azure_llm("code"), data.load_azure_llm("conv")]
    jobs = []
    for s in series:
        hmax = int(max(SHORT_HORIZONS_S) / s.step_s)
        origins = np.arange(SHORT_WARMUP_CELLS - 1, len(s.rate_rps) - hmax, 3 if quick else 1)
        jobs.append((s, SHORT_WARMUP_CELLS, origins, SHORT_HORIZONS_S, SHORT_REFIT_EVERY))
    return run_suite(
        "Short horizon: Azure LLM 2023 code + conv, 10-s bins, rolling origin after 20 min warm-up",
        series, jobs, [SHORT_WARMUP_CELLS] * 2, 1, SHORT_HORIZONS_S, workers,
    )


def cost_report(n_workloads: int) -> None:
    """Batched forecast time for many workloads, against one-by-one in the same run."""
    import torch

    from tidal.predictors.auto import AutoForecaster
    from tidal.predictors.batch import forecast_many

    # One thread: the batch is a few thousand rows of a 128-wide MLP, too small
    # for intra-op parallelism to pay off (measured: 2 threads were slower).
    torch.set_num_threads(1)
    s = data.load_servegen(("m-mid",))
    warm = []
    for k in range(4):  # four distinct warmed workloads, cloned through their state
        f = AutoForecaster(600.0)
        for c in range(300):
            f.observe(c * 600.0, float(s[5 + 20 * k].rate_rps[c]))
        warm.append(f.to_state())
    t0 = time.perf_counter()
    fleet = [AutoForecaster.from_state(warm[i % 4]) for i in range(n_workloads)]
    restore_ms = (time.perf_counter() - t0) * 1000 / n_workloads
    torch_fleet = [f.members["torch"] for f in fleet]
    hs, qs = LONG_HORIZONS_S, (0.5, 0.9)
    forecast_many(fleet[:8], hs, qs)  # warm up imports
    # One tick of online updates for every workload (the next cell arrives),
    # then the tick's forecasts: the order the operator runs them in.
    t0 = time.perf_counter()
    for i, f in enumerate(fleet):
        f.observe(300 * 600.0, float(s[5 + 20 * (i % 4)].rate_rps[300]))
        f.observe(301 * 600.0, float(s[5 + 20 * (i % 4)].rate_rps[301]))
    update_ms = (time.perf_counter() - t0) * 1000 / n_workloads / 2
    timings = {}
    for label, fl in (("auto", fleet), ("torch", torch_fleet)):
        t0 = time.perf_counter()
        forecast_many(fl, hs, qs)
        batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        for f in fl:
            f.forecast(hs, qs)
        loop = time.perf_counter() - t0
        timings[label] = (batched, loop)
    state_kib = max(len(json.dumps(f.to_state())) for f in fleet[:4]) / 1024
    f10 = AutoForecaster(10.0)  # the 10-second grid keeps more cells
    for c in range(11_000):
        f10.observe(c * 10.0, 1.0 + (c % 7))
    state10_kib = len(json.dumps(f10.to_state())) / 1024
    print(f"\n## Cost ({n_workloads} workloads, 3 horizons x 2 quantiles, 1 torch thread)")
    print("| what | measured | target |")
    print("|---|---|---|")
    for label, (b, l) in timings.items():
        print(f"| forecast all, {label}, batched | {b * 1000:.0f} ms ({l / b:.1f}x faster than one by one: {l * 1000:.0f} ms) | <= 200 ms |")
    print(f"| online update per workload per tick (auto: 3 members + scoring) | {update_ms:.2f} ms | <= 20 ms |")
    print(f"| state per workload, 10-min grid (JSON) | {state_kib:.0f} KiB | <= 1024 KiB |")
    print(f"| state per workload, 10-s grid, full 28 h buffer (JSON) | {state10_kib:.0f} KiB | <= 1024 KiB |")
    print(f"| restore one workload from state | {restore_ms:.2f} ms | - |")


def main() -> None:
    ap = argparse.ArgumentParser(description="tidal forecasting benchmark (issue 4)")
    ap.add_argument("--quick", action="store_true", help="1/8 of the ServeGen clients, sparser origins")
    ap.add_argument("--suite", choices=("long", "short", "all"), default="all")
    ap.add_argument("--workers", type=int, default=max(1, min(2, os.cpu_count() or 1)))
    ap.add_argument("--workloads", type=int, default=1000, help="fleet size for the cost section")
    args = ap.parse_args()
    if not data.traces_dir().is_dir():
        print(f"SKIP: traces folder {data.traces_dir()} not found (set TIDAL_SHARED)")
        return
    t0 = time.time()
    print("# tidal forecasting benchmark" + (" (--quick)" if args.quick else ""))
    if args.suite == "all":
        # First, while nothing else runs: timings are what this section is about.
        cost_report(args.workloads)
    if args.suite in ("short", "all"):
        short_suite(args.quick, args.workers)
    if args.suite in ("long", "all"):
        long_suite(args.quick, args.workers)
    print(f"\ntotal wall time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
