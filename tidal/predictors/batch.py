"""Forecast many workloads in one tick with one forward pass of the torch member's network.

The operator holds one forecaster per workload and signal. Asking each for a
forecast runs the network once per workload; :func:`forecast_many` gathers the
inputs of every torch-backed request (torch forecasters, and auto forecasters
whose pick is torch), runs the shared body once, applies each workload's own
head with a batched matrix product, and hands every caller exactly what its own
``forecast`` would have returned.

Numpy only (prior.py): the serving path does not import torch. Each job's head
is applied to its own rows as one stacked matrix product ([jobs, rows, hidden]
by [jobs, hidden, quantiles]) rather than gathering a [rows, quantiles, hidden]
copy of the heads, which at 1,000 workloads was a transient of tens of MB.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tidal.predictors.auto import MEMBER_ORDER, AutoForecaster
from tidal.predictors.features import CONTEXT_CELLS, build_features, lag_cells

LAG_KEYS = ("day", "day_origin", "week", "week_origin")
from tidal.predictors.neural import TorchQuantileForecaster
from tidal.predictors.prior import GRID_QUANTILES, monotone
from tidal.predictors.quantiles import QuantileForecast, check_horizons, check_quantiles, interpolate_levels, make_forecast


def _torch_grid_batch(jobs: list[tuple[TorchQuantileForecaster, np.ndarray]]) -> tuple[np.ndarray, list[int]]:
    """All jobs' ``(forecaster, steps)`` rows stacked: [N, len(GRID_QUANTILES)] in req/s, rows per job.

    All forecasters must share one prior (one body); each brings its own head.
    """
    counts = [len(st) for _, st in jobs]
    steps = np.concatenate([st for _, st in jobs]).astype(np.int64)
    origins = np.repeat(np.array([m.grid.last_cell for m, _ in jobs], dtype=np.int64), counts)
    g0 = jobs[0][0].grid
    # Lag cells for every row at once (all grids share the step, so day/week agree).
    lc = lag_cells(origins, steps, g0.day_cells, g0.week_cells)
    lag_all = np.concatenate([lc[k] for k in LAG_KEYS], 1)  # [N, 12]
    recent = np.empty((len(steps), CONTEXT_CELLS))
    lag_vals = np.empty(lag_all.shape)
    at = 0
    for (m, _), n in zip(jobs, counts):
        both = m.grid.get(
            np.concatenate([np.arange(m.grid.last_cell - CONTEXT_CELLS + 1, m.grid.last_cell + 1), lag_all[at : at + n].ravel()])
        )
        recent[at : at + n] = both[:CONTEXT_CELLS]
        lag_vals[at : at + n] = both[CONTEXT_CELLS:].reshape(n, -1)
        at += n
    lags = {k: lag_vals[:, 3 * i : 3 * i + 3] for i, k in enumerate(LAG_KEYS)}
    x, scale = build_features(recent, lags, steps, (origins + steps) * g0.step_s, np.full(len(steps), g0.step_s))
    hid = jobs[0][0].prior.body(x)  # [N, D]
    if len(set(counts)) == 1:  # forecast_many: every job asks the same horizons
        n = counts[0]
        heads = [m.head_weight() for m, _ in jobs]
        w = np.stack([hw for hw, _ in heads])  # [J, Q, D]
        b = np.stack([hb for _, hb in heads])  # [J, Q]
        raw = (np.matmul(hid.reshape(len(jobs), n, -1), w.transpose(0, 2, 1)) + b[:, None, :]).reshape(len(steps), -1)
    else:
        raw = np.empty((len(steps), len(GRID_QUANTILES)), dtype=np.float32)
        at = 0
        for (m, _), n in zip(jobs, counts):
            w1, b1 = m.head_weight()
            raw[at : at + n] = hid[at : at + n] @ w1.T + b1
            at += n
    out = monotone(raw).astype(np.float64) * scale[:, None]
    return out, counts


def forecast_many(
    forecasters: Sequence[object], horizons_s: Sequence[float], quantiles: Sequence[float] = (0.1, 0.5, 0.9)
) -> list[QuantileForecast]:
    """``[f.forecast(horizons_s, quantiles) for f in forecasters]``, batched where possible.

    All forecasters must share one grid step (horizons map to the same cells).
    """
    if not forecasters:
        return []
    steps_s = {f.step_s for f in forecasters}  # type: ignore[attr-defined]
    if len(steps_s) != 1:
        raise ValueError(f"forecast_many: forecasters have different step_s {sorted(steps_s)}; batch per step")
    hs, steps = check_horizons(horizons_s, steps_s.pop())
    qs = check_quantiles(quantiles)
    results: list[QuantileForecast | None] = [None] * len(forecasters)
    partial: dict[int, tuple[np.ndarray, dict[int, np.ndarray]]] = {}  # auto: picks, member values
    torch_jobs: list[tuple[int, TorchQuantileForecaster]] = []
    t_idx = MEMBER_ORDER.index("torch")
    for i, f in enumerate(forecasters):
        if isinstance(f, AutoForecaster) and f.grid.last_cell is not None:
            pick = f.choice(steps, qs)
            vals = {}
            for m in np.unique(pick):
                if int(m) != t_idx:
                    vals[int(m)] = f.members[MEMBER_ORDER[int(m)]]._forecast(hs, steps, qs).values
            partial[i] = (pick, vals)
            if (pick == t_idx).any():
                torch_jobs.append((i, f.members["torch"]))
        elif isinstance(f, TorchQuantileForecaster) and f.grid.last_cell is not None:
            torch_jobs.append((i, f))
        else:
            results[i] = f.forecast(hs, qs)  # type: ignore[attr-defined]
    by_prior: dict[int, list[tuple[int, TorchQuantileForecaster]]] = {}
    for job in torch_jobs:
        by_prior.setdefault(id(job[1].prior), []).append(job)
    for jobs in by_prior.values():
        grid_vals, counts = _torch_grid_batch([(m, steps) for _, m in jobs])
        all_v = interpolate_levels(np.array(GRID_QUANTILES), grid_vals, qs)
        for (i, m), v in zip(jobs, np.split(all_v, np.cumsum(counts)[:-1])):
            if i in partial:
                partial[i][1][t_idx] = v
            else:
                fb = m.grid.last_valid()
                results[i] = make_forecast(hs, qs, v, m.name, 0.0 if math.isnan(fb) else fb)
    for i, (pick, vals) in partial.items():
        results[i] = forecasters[i].assemble(hs, qs, pick, vals)  # type: ignore[attr-defined]
    return results  # type: ignore[return-value]
