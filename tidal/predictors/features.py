"""Inputs of the torch quantile model, built the same way in training and serving.

Everything is scale-free: values are divided by the series' recent level (the
same level the classical models use), so one network serves a tenant at 0.1
req/s and one at 900 req/s. The network sees the recent lags, multi-scale
means, the value one day and one week before the target time, the horizon, the
calendar position of the target, and how many requests a cell holds (which
tells it how much Poisson noise to expect).
"""

from __future__ import annotations

import numpy as np

from tidal.predictors.grid import SECONDS_PER_DAY, SECONDS_PER_WEEK
from tidal.predictors.load import LEVEL_FLOOR_RPS, LEVEL_WINDOW_CELLS, LONG_MEAN_CELLS, LONG_MEAN_SHARE

CONTEXT_CELLS = 256  # cells of recent history handed to the feature builder
LAG_CELLS = 32  # most recent cells given to the network one by one
MEAN_WINDOWS = (4, 16, 64, 256)  # multi-scale summaries of the context
# Normalised inputs are clipped: a burst of 50x the level says "burst" as well as 10x.
INPUT_CLIP = 10.0
N_FEATURES = LAG_CELLS + len(MEAN_WINDOWS) + 2 + 4 + 2 + 2 + 2 + 4 + 2


def lag_cells(origin: np.ndarray, steps: np.ndarray, day_cells: int, week_cells: int) -> dict[str, np.ndarray]:
    """Absolute cells of the seasonal lags for targets ``origin + steps``.

    Lags are whole days (weeks) back from the target, enough of them that the
    lag cell plus one is already observed at the origin.
    """
    origin = np.asarray(origin, dtype=np.int64)
    steps = np.asarray(steps, dtype=np.int64)
    tgt = origin + steps
    kd = np.ceil((steps + 1) / day_cells).astype(np.int64)
    kw = np.ceil((steps + 1) / week_cells).astype(np.int64)
    off = np.array([-1, 0, 1])
    return {
        "day": (tgt - kd * day_cells)[:, None] + off,
        "day_origin": (origin - day_cells)[:, None] + off - 1,
        "week": (tgt - kw * week_cells)[:, None] + off,
        "week_origin": (origin - week_cells)[:, None] + off - 1,
    }


def recent_scale(recent: np.ndarray) -> np.ndarray:
    """Per-row level, identical to :meth:`GridForecaster.level` on the same cells."""
    long_w = recent[:, -LONG_MEAN_CELLS:]
    cnt = (~np.isnan(long_w)).sum(1)
    long_mean = np.where(cnt > 0, np.nansum(long_w, 1) / np.maximum(cnt, 1), 0.0)
    w = recent[:, -LEVEL_WINDOW_CELLS:]
    wc = (~np.isnan(w)).sum(1)
    rec = np.where(wc > 0, np.nansum(w, 1) / np.maximum(wc, 1), np.nan)
    # No valid cell in the short window: last valid value, else the long mean.
    valid = ~np.isnan(recent)
    last_idx = np.where(valid.any(1), recent.shape[1] - 1 - np.argmax(valid[:, ::-1], 1), -1)
    last_val = np.where(last_idx >= 0, recent[np.arange(len(recent)), np.maximum(last_idx, 0)], np.nan)
    rec = np.where(np.isnan(rec), np.where(np.isnan(last_val), long_mean, last_val), rec)
    return rec + LONG_MEAN_SHARE * long_mean + LEVEL_FLOOR_RPS


def _ffill(a: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Forward-fill NaN along axis 1; leading NaN take ``fill`` (per row)."""
    out = a.copy()
    mask = np.isnan(out)
    idx = np.where(~mask, np.arange(out.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = out[np.arange(out.shape[0])[:, None], idx]
    still = np.isnan(out)
    out[still] = np.broadcast_to(fill[:, None], out.shape)[still]
    return out


def build_features(
    recent: np.ndarray,
    lags: dict[str, np.ndarray],
    steps: np.ndarray,
    target_t_s: np.ndarray,
    step_s: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of network input and the scale to multiply its output by.

    ``recent``: [N, CONTEXT_CELLS] values ending at the origin (NaN = missing);
    ``lags``: the values at :func:`lag_cells`; ``steps``: horizon in cells;
    ``target_t_s``: time of the target cell; ``step_s``: grid step per row.
    """
    n = recent.shape[0]
    scale = recent_scale(recent)
    inv = 1.0 / scale[:, None]
    zeros_fill = np.zeros(n)
    rec_n = np.clip(_ffill(recent[:, -LAG_CELLS:], zeros_fill) * inv, 0, INPUT_CLIP)
    means = []
    for w in MEAN_WINDOWS:
        seg = recent[:, -w:]
        c = (~np.isnan(seg)).sum(1)
        m = np.where(c > 0, np.nansum(seg, 1) / np.maximum(c, 1), scale)
        means.append(np.clip(m / scale, 0, INPUT_CLIP))
    last = recent[:, -LAG_CELLS:]
    miss_frac = np.isnan(last).mean(1)
    zero_frac = (last == 0).mean(1)

    def seasonal(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = ~np.isnan(vals)
        has = ok.any(1)
        m = np.where(has, np.nansum(vals, 1) / np.maximum(ok.sum(1), 1), 0.0)
        return np.clip(m / scale, 0, INPUT_CLIP), has.astype(np.float64)

    day_t = lags["day"]
    d_ok = ~np.isnan(day_t)
    day_vals = np.clip(np.where(d_ok, day_t, 0.0) * inv, 0, INPUT_CLIP)
    day_has = d_ok.any(1).astype(np.float64)
    day_o, _ = seasonal(lags["day_origin"])
    week_v, week_has = seasonal(lags["week"])
    week_o, _ = seasonal(lags["week_origin"])
    steps = np.asarray(steps, dtype=np.float64)
    step_s = np.broadcast_to(np.asarray(step_s, dtype=np.float64), (n,))
    tod = 2 * np.pi * (np.asarray(target_t_s) % SECONDS_PER_DAY) / SECONDS_PER_DAY
    dow = 2 * np.pi * (np.asarray(target_t_s) % SECONDS_PER_WEEK) / SECONDS_PER_WEEK
    cols = [
        rec_n,
        np.stack(means, 1),
        np.stack([miss_frac, zero_frac], 1),
        day_vals,
        day_has[:, None],
        np.stack([week_v, week_has], 1),
        np.stack([day_o, week_o], 1),
        np.stack([np.log1p(steps) / 5.0, np.minimum(steps * step_s / SECONDS_PER_DAY, 1.0)], 1),
        np.stack([np.sin(tod), np.cos(tod), np.sin(dow), np.cos(dow)], 1),
        np.stack([np.log10(scale * step_s + 1.0) / 3.0, np.log10(step_s) / 4.0], 1),
    ]
    x = np.concatenate(cols, 1)
    assert x.shape[1] == N_FEATURES, x.shape
    return np.nan_to_num(x, nan=0.0, posinf=INPUT_CLIP, neginf=0.0).astype(np.float32), scale


def gather_array(series: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Values of a plain 1-D series at cells (NaN outside it): the training-side gather."""
    ok = (cells >= 0) & (cells < len(series))
    out = np.full(cells.shape, np.nan)
    out[ok] = series[cells[ok]]
    return out
