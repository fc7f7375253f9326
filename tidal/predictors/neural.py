"""The torch quantile forecaster: a shared pretrained body, a per-workload head.

The body (features -> hidden) is the global prior trained on many ServeGen
series (scripts/train_forecast_prior.py) and never changes at run time. Each
workload owns only a correction to the last layer, learned online by one small
SGD step per finalised cell, pulled back towards zero (the prior) by weight
decay so a few odd cells cannot wreck it. That keeps per-workload state to a
few kilobytes, CPU per tick to a sub-millisecond forward/backward pass, and
makes forecasting many workloads one batched forward pass (batch.py).

The network is trained with torch but served in numpy (prior.py): importing
torch would cost ~180 MB of resident memory per operator process.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tidal.predictors._state import STATE_VERSION, check_kind, decode_array, encode_array
from tidal.predictors.features import CONTEXT_CELLS, build_features, lag_cells
from tidal.predictors.grid import GridSeries
from tidal.predictors.load import GridForecaster
from tidal.predictors.prior import GRID_QUANTILES, NumpyPrior, load_numpy_prior, monotone, pinball_head_grad
from tidal.predictors.quantiles import QuantileForecast, interpolate_levels, make_forecast

# Horizons (cells) whose realised values train the head each tick: one example
# per horizon, so the head learns the horizons policies ask for (10 s - 10 min
# at the 10-second grid, 10 min - 5 h at the 10-minute grid).
ONLINE_TRAIN_STEPS = (1, 2, 4, 8, 16, 32)
# Online SGD step size and pull towards the prior (per step): set by hand so
# that a head moves by a few percent of the prior's weights over a day of
# cells; not tuned on the benchmark's test spans.
ONLINE_LR = 2e-3
ONLINE_DECAY = 1e-3
TARGET_CLIP = 50.0  # same clip as the prior's training targets
_GRID_Q = np.array(GRID_QUANTILES, dtype=np.float32)


def rows_for(grid: GridSeries, origin: int | np.ndarray, steps: np.ndarray):
    """Raw inputs (see features.build_features) for targets ``origin + steps``.

    ``origin`` is one cell (a forecast) or one per step (online training rows).
    """
    steps = np.asarray(steps, dtype=np.int64)
    n = len(steps)
    origins = np.broadcast_to(np.asarray(origin, dtype=np.int64), (n,))
    if np.ndim(origin) == 0:
        recent = np.broadcast_to(grid.window(CONTEXT_CELLS, int(origin)), (n, CONTEXT_CELLS))
    else:
        recent = grid.get(origins[:, None] + np.arange(-CONTEXT_CELLS + 1, 1))
    lc = lag_cells(origins, steps, grid.day_cells, grid.week_cells)
    flat = grid.get(np.concatenate([v.ravel() for v in lc.values()]))  # one gather for all lags
    lags, at = {}, 0
    for k, v in lc.items():
        lags[k] = flat[at : at + v.size].reshape(v.shape)
        at += v.size
    t_s = (origins + steps) * grid.step_s
    return recent, lags, steps, t_s, np.full(n, grid.step_s)


class TorchQuantileForecaster(GridForecaster):
    """Multi-horizon quantile MLP with a per-workload head trained online."""

    name = "torch"
    kind = "torch"

    def __init__(
        self,
        step_s: float,
        capacity: int | None = None,
        prior_path: Path | None = None,
        online_lr: float = ONLINE_LR,
        online_decay: float = ONLINE_DECAY,
    ) -> None:
        super().__init__(step_s, capacity)
        self.prior: NumpyPrior = load_numpy_prior(prior_path)  # one shared, read-only copy per process
        self._prior_path = prior_path
        q, h = self.prior.head_w.shape
        # The workload's own correction to the head (float32, as the prior): 4.6 KB.
        self.delta_w = np.zeros((q, h), dtype=np.float32)
        self.delta_b = np.zeros(q, dtype=np.float32)
        self.online_lr = float(online_lr)
        self.online_decay = float(online_decay)
        self.n_updates = 0

    # --- network ---------------------------------------------------------
    def head_weight(self) -> tuple[np.ndarray, np.ndarray]:
        return self.prior.head_w + self.delta_w, self.prior.head_b + self.delta_b

    def grid_quantiles(self, origin: int, steps: np.ndarray) -> np.ndarray:
        """[H, len(GRID_QUANTILES)] forecast in req/s (unsanitised)."""
        x, scale = build_features(*rows_for(self.grid, origin, steps))
        hid = self.prior.body(x)
        w, b = self.head_weight()
        out = monotone(hid @ w.T + b).astype(np.float64)
        return out * scale[:, None]

    def values_from(self, origin: int, steps: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        """Unsanitised [H, Q] forecast from a *final* origin cell (used for scoring)."""
        return interpolate_levels(np.array(GRID_QUANTILES), self.grid_quantiles(origin, steps), qs)

    def _forecast(self, hs: tuple[float, ...], steps: np.ndarray, qs: tuple[float, ...]) -> QuantileForecast:
        if self.grid.last_cell is None:
            return make_forecast(hs, qs, np.zeros((len(hs), len(qs))), self.name)
        g = self.grid_quantiles(self.grid.last_cell, steps)
        vals = interpolate_levels(np.array(GRID_QUANTILES), g, qs)
        fb = self.grid.last_valid()
        return make_forecast(hs, qs, vals, self.name, fallback=0.0 if math.isnan(fb) else fb)

    # --- online learning -------------------------------------------------------
    def _on_final(self, cell: int) -> None:
        y = self.grid.value(cell)
        if math.isnan(y):
            return
        first = self.grid.last_cell - min(self.grid.n_cells, self.grid.capacity) + 1  # type: ignore[operator]
        steps = np.array([h for h in ONLINE_TRAIN_STEPS if cell - h >= first], dtype=np.int64)
        if steps.size == 0:
            return
        x, scale = build_features(*rows_for(self.grid, cell - steps, steps))
        target = np.clip(y / scale, 0, TARGET_CLIP).astype(np.float32)
        hid = self.prior.body(x)
        w, b = self.head_weight()
        gw, gb = pinball_head_grad(hid, hid @ w.T + b, target, _GRID_Q)
        keep = np.float32(1.0 - self.online_decay)
        lr = np.float32(self.online_lr)
        self.delta_w = keep * self.delta_w - lr * gw
        self.delta_b = keep * self.delta_b - lr * gb
        self.n_updates += 1

    # --- state -------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "grid": self.grid.to_state(),
            "delta_w": encode_array(self.delta_w),
            "delta_b": encode_array(self.delta_b),
            "online_lr": self.online_lr,
            "online_decay": self.online_decay,
            "n_updates": self.n_updates,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any], prior_path: Path | None = None) -> "TorchQuantileForecaster":
        check_kind(s, cls.kind)
        f = cls(s["grid"]["step_s"], s["grid"]["capacity"], prior_path, s["online_lr"], s["online_decay"])
        f.grid = GridSeries.from_state(s["grid"])
        dw, db = decode_array(s["delta_w"]), decode_array(s["delta_b"])
        if dw.shape != tuple(f.delta_w.shape):
            raise ValueError(f"torch forecaster state: head shape {dw.shape} does not fit the prior")
        f.delta_w = dw.astype(np.float32, copy=False)
        f.delta_b = db.astype(np.float32, copy=False)
        f.n_updates = s["n_updates"]
        return f
