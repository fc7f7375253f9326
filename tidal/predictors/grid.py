"""A bounded history of one signal on a regular time grid.

Shells sample metrics at their own tick; forecasters need a regular grid. A
sample at time ``t`` belongs to cell ``round(t / step_s)``. Several samples in
one cell are averaged (nothing is dropped); cells that never received a sample
are missing (NaN), which every model treats as "unknown", never as zero.

A cell becomes *final* when a sample for a later cell arrives; learners update
only on final cells, so a cell refined by a second sample is never learned twice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tidal.predictors._state import encode_array, decode_array

SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
# Longest history kept per signal. 10,080 cells is one week at 1-minute steps,
# 70 days at 10-minute steps and 28 hours at 10-second steps: enough for the
# weekly lag on coarse grids and the daily lag on fine ones, at 40 KB per signal.
MAX_HISTORY_CELLS = 10_080
# Cells are stored as float32: the history is most of a forecaster's memory (the operator holds
# 1,000 of them, issue 5's 500 MB budget) and a rate needs no more than float32's 7 significant
# digits. Reads return float64, so every model computes in float64 as before.
STORAGE_DTYPE = np.float32


class GridSeries:
    """Ring buffer of the most recent cells of one signal."""

    def __init__(self, step_s: float, capacity: int | None = None) -> None:
        if not (isinstance(step_s, (int, float)) and math.isfinite(step_s) and step_s > 0):
            raise ValueError(f"step_s: must be a positive number of seconds, got {step_s!r}")
        self.step_s = float(step_s)
        if capacity is None:
            week = int(round(SECONDS_PER_WEEK / self.step_s))
            capacity = min(week + 256, MAX_HISTORY_CELLS)
        if capacity < 8:
            raise ValueError(f"capacity: need at least 8 cells, got {capacity}")
        self.capacity = int(capacity)
        self._values = np.full(self.capacity, np.nan, dtype=STORAGE_DTYPE)
        self.last_cell: int | None = None
        self._last_samples = 0
        self.n_cells = 0  # cells since the first sample, including missing ones
        self.n_valid = 0  # cells that received at least one sample

    @property
    def day_cells(self) -> int:
        return int(round(SECONDS_PER_DAY / self.step_s))

    @property
    def week_cells(self) -> int:
        return int(round(SECONDS_PER_WEEK / self.step_s))

    def cell_of(self, t_s: float) -> int:
        return int(round(t_s / self.step_s))

    def add(self, t_s: float, value: float | None) -> list[int]:
        """Record one sample; return the cells that became final (oldest first).

        ``value`` None or NaN records a known gap. Raises ValueError for a
        negative or infinite rate, a non-finite time, or a sample older than
        the last cell (out-of-order samples cannot be merged once learned from).
        """
        if t_s is None or not math.isfinite(t_s):
            raise ValueError(f"t_s: must be a finite time in seconds, got {t_s!r}")
        v = math.nan if value is None else float(value)
        if math.isinf(v) or v < 0:
            raise ValueError(f"value: a rate must be finite and >= 0, got {value!r} at t_s={t_s}")
        cell = self.cell_of(t_s)
        if self.last_cell is None:
            self.last_cell = cell
            self._put_new(cell, v)
            self.n_cells = 1
            return []
        if cell < self.last_cell:
            raise ValueError(
                f"t_s={t_s}: sample is older than the last observed cell "
                f"(t_s={self.last_cell * self.step_s}); feed samples in time order"
            )
        if cell == self.last_cell:
            self._merge_last(v)
            return []
        gap = cell - self.last_cell
        # A gap longer than the buffer leaves nothing older worth finalising one by one.
        first_new = max(self.last_cell + 1, cell - self.capacity)
        finals = [self.last_cell] + list(range(first_new, cell))
        for c in range(first_new, cell):
            self._values[c % self.capacity] = np.nan
        self.n_cells += gap
        self.last_cell = cell
        self._put_new(cell, v)
        return finals

    def _put_new(self, cell: int, v: float) -> None:
        self._values[cell % self.capacity] = v
        self._last_samples = 0 if math.isnan(v) else 1
        if self._last_samples:
            self.n_valid += 1

    def _merge_last(self, v: float) -> None:
        if math.isnan(v):
            return
        i = self.last_cell % self.capacity  # type: ignore[operator]
        if self._last_samples == 0:
            self._values[i] = v
            self._last_samples = 1
            self.n_valid += 1
        else:
            n = self._last_samples
            self._values[i] = (float(self._values[i]) * n + v) / (n + 1)
            self._last_samples = n + 1

    def get(self, cells: np.ndarray) -> np.ndarray:
        """Values at absolute cells; NaN where missing, in the future, or forgotten."""
        cells = np.asarray(cells, dtype=np.int64)
        if self.last_cell is None:
            return np.full(cells.shape, np.nan)
        lo = self.last_cell - min(self.capacity, self.n_cells)
        if cells.size and cells.min() > lo and cells.max() <= self.last_cell:
            return self._values[cells % self.capacity].astype(np.float64)  # all inside the live ring
        out = np.full(cells.shape, np.nan)
        ok = (cells <= self.last_cell) & (cells > lo)
        out[ok] = self._values[cells[ok] % self.capacity]
        return out

    def value(self, cell: int) -> float:
        return float(self.get(np.array([cell]))[0])

    def window(self, n: int, end_cell: int | None = None) -> np.ndarray:
        """The ``n`` cells ending at ``end_cell`` (default: the last cell), oldest first."""
        if self.last_cell is None:
            return np.full(n, np.nan)
        end = self.last_cell if end_cell is None else end_cell
        return self.get(np.arange(end - n + 1, end + 1))

    def last_valid(self, end_cell: int | None = None, lookback: int | None = None) -> float:
        """Most recent non-missing value at or before ``end_cell`` (NaN if none)."""
        n = min(self.capacity, self.n_cells) if lookback is None else lookback
        w = self.window(n, end_cell)
        idx = np.flatnonzero(~np.isnan(w))
        return float(w[idx[-1]]) if idx.size else math.nan

    def to_state(self) -> dict[str, Any]:
        # Only the live part of the ring is stored, oldest first, in the ring's own dtype (exact).
        n = min(self.capacity, self.n_cells)
        return {
            "step_s": self.step_s,
            "capacity": self.capacity,
            "last_cell": self.last_cell,
            "last_samples": self._last_samples,
            "n_cells": self.n_cells,
            "n_valid": self.n_valid,
            "values": encode_array((self.window(n) if n else np.zeros(0)).astype(STORAGE_DTYPE)),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "GridSeries":
        g = cls(s["step_s"], s["capacity"])
        g.last_cell = s["last_cell"]
        g._last_samples = s["last_samples"]
        g.n_cells = s["n_cells"]
        g.n_valid = s["n_valid"]
        vals = decode_array(s["values"])
        if g.last_cell is not None and vals.size:
            cells = np.arange(g.last_cell - vals.size + 1, g.last_cell + 1)
            g._values[cells % g.capacity] = vals
        return g
