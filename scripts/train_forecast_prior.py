"""Train the global prior of tidal's torch load forecaster (tidal/data/forecast_prior.pt).

Reproducible: fixed seeds, single-threaded-deterministic torch ops, a few
minutes of CPU at most. Data: the ServeGen m-small and m-mid clients, days 1-11
only (days 12-14 are the forecasting benchmark's test span, never seen here).

Two kinds of training rows:
- coarse: the 10-minute series themselves, horizons 1-72 cells (10 min - 12 h);
- fine: 10-second series synthesised from a ServeGen window's rate and the
  inter-arrival CV it records (Gamma-Poisson counts), so the network has seen
  the shot noise of fine grids. Fine series are two hours long, so they carry
  no daily lag, like a freshly started workload.

Usage: .venv/bin/python scripts/train_forecast_prior.py [--out PATH] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import _forecast_data as data  # noqa: E402
from tidal.predictors.features import CONTEXT_CELLS, build_features, gather_array, lag_cells  # noqa: E402
from tidal.predictors.quantile_net import GRID_QUANTILES, PRIOR_PATH, QuantileNet, pinball, save_prior  # noqa: E402

SEED = 20240607
TRAIN_CELLS = 11 * 144  # days 1-11 of the 14-day ServeGen traces
COARSE_ROWS = 160_000
FINE_SERIES = 600
FINE_ROWS_PER_SERIES = 120
FINE_STEP_S = 10.0
FINE_LEN_CELLS = 720  # two hours at 10 s
TARGET_CLIP = 50.0  # normalised targets beyond 50x the level are clipped (bursts)
MISSING_RATE = 0.03  # share of context cells blanked, so gaps are seen in training


def coarse_rows(series: list[data.RateSeries], rng: np.random.Generator):
    n = COARSE_ROWS
    which = rng.integers(0, len(series), n)
    steps = rng.choice(np.arange(1, 73), n, p=_loguniform_p(72))
    origin = rng.integers(16, TRAIN_CELLS - steps, n)
    recent = np.empty((n, CONTEXT_CELLS))
    lags = {k: np.empty((n, 3)) for k in ("day", "day_origin", "week", "week_origin")}
    y = np.empty(n)
    for i in range(len(series)):
        sel = np.flatnonzero(which == i)
        if sel.size == 0:
            continue
        s = series[i].rate_rps[:TRAIN_CELLS]
        o = origin[sel]
        cells = o[:, None] + np.arange(-CONTEXT_CELLS + 1, 1)
        recent[sel] = gather_array(s, cells)
        lc = lag_cells(o, steps[sel], 144, 1008)
        for k in lags:
            lags[k][sel] = gather_array(s, lc[k])
        y[sel] = s[o + steps[sel]]
    t_s = (origin + steps) * data.SERVEGEN_STEP_S
    return recent, lags, steps, t_s, np.full(n, data.SERVEGEN_STEP_S), y


def _loguniform_p(hmax: int) -> np.ndarray:
    h = np.arange(1, hmax + 1, dtype=float)
    p = 1.0 / h
    return p / p.sum()


def fine_rows(series: list[data.RateSeries], rng: np.random.Generator):
    """Synthetic 10-second series from ServeGen windows (see module docstring)."""
    busy = [s for s in series if (s.rate_rps[:TRAIN_CELLS] > 0).mean() > 0.5]
    per_window = int(data.SERVEGEN_STEP_S / FINE_STEP_S)
    n_windows = FINE_LEN_CELLS // per_window
    rows = []
    for _ in range(FINE_SERIES):
        s = busy[rng.integers(len(busy))]
        a = int(rng.integers(0, TRAIN_CELLS - n_windows))
        # Rescale so the series spans 0.05-100 req/s (fine-grid tenants vary widely).
        base = s.rate_rps[a : a + n_windows]
        target_mean = np.exp(rng.uniform(np.log(0.05), np.log(100)))
        rate = np.repeat(base / max(base.mean(), 1e-9) * target_mean, per_window)
        cv = np.repeat(np.maximum(s.cv[a : a + n_windows], 1.0), per_window)
        lam = rate * FINE_STEP_S
        # Renewal counts have variance ~ mean * cv^2: a Gamma-Poisson with that dispersion.
        k = np.where(cv > 1.0001, lam / np.maximum(cv**2 - 1, 1e-6), np.inf)
        mix = np.where(np.isfinite(k), rng.gamma(np.where(np.isfinite(k), np.maximum(k, 1e-6), 1.0), 1.0) / np.where(np.isfinite(k), np.maximum(k, 1e-6), 1.0), 1.0)
        counts = rng.poisson(lam * mix)
        fine = counts / FINE_STEP_S
        t0 = s.t0_s + a * data.SERVEGEN_STEP_S
        m = FINE_ROWS_PER_SERIES
        steps = rng.choice(np.arange(1, 61), m, p=_loguniform_p(60))
        origin = rng.integers(16, FINE_LEN_CELLS - steps, m)
        cells = origin[:, None] + np.arange(-CONTEXT_CELLS + 1, 1)
        lc = lag_cells(origin, steps, 8640, 60480)
        rows.append(
            (
                gather_array(fine, cells),
                {k: gather_array(fine, v) for k, v in lc.items()},
                steps,
                t0 + (origin + steps) * FINE_STEP_S,
                np.full(m, FINE_STEP_S),
                fine[origin + steps],
            )
        )
    cat = lambda i: np.concatenate([r[i] for r in rows])  # noqa: E731
    lags = {k: np.concatenate([r[1][k] for r in rows]) for k in rows[0][1]}
    return cat(0), lags, cat(2), cat(3), cat(4), cat(5)


def make_dataset(rng: np.random.Generator):
    series = data.load_servegen()
    parts = [coarse_rows(series, rng), fine_rows(series, rng)]
    xs, ys = [], []
    for recent, lags, steps, t_s, step_s, y in parts:
        blank = rng.random(recent.shape) < MISSING_RATE
        blank[:, -1] = False
        recent = np.where(blank, np.nan, recent)
        x, scale = build_features(recent, lags, steps, t_s, step_s)
        xs.append(x)
        ys.append(np.clip(y / scale, 0, TARGET_CLIP).astype(np.float32))
    return np.concatenate(xs), np.concatenate(ys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=PRIOR_PATH)
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    t_start = time.time()
    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x, y = make_dataset(rng)
    perm = rng.permutation(len(x))
    n_val = len(x) // 20
    val, tr = perm[:n_val], perm[n_val:]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    print(f"rows: {len(tr)} train, {n_val} validation ({time.time() - t_start:.1f} s to build)")
    net = QuantileNet()
    qs = torch.tensor(GRID_QUANTILES)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    batch = 1024
    for ep in range(args.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(tr))
        tot = 0.0
        for i in range(0, len(order), batch):
            b = order[i : i + batch]
            loss = pinball(net(xt[b]), yt[b], qs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(b)
        sched.step()
        net.eval()
        with torch.no_grad():
            vl = float(pinball(net(xt[val]), yt[val], qs))
        print(f"epoch {ep + 1}: train pinball {tot / len(tr):.4f}, validation {vl:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_prior(net, args.out, {"seed": SEED, "epochs": args.epochs, "rows": int(len(x))})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) in {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
