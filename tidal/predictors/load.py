"""The load-forecaster contract, and the base every implementation shares.

A forecaster holds one signal of one workload (for example the request rate of
one ModelDeployment): the operator keeps one per workload and per signal, feeds
it with :meth:`observe` each tick and asks :meth:`forecast` for quantiles at the
horizons its pre-warm policy needs. It is a plain object with no I/O; its
``to_state()`` is a small JSON-able dict the shell persists so that a restart
loses nothing (``from_state(to_state())`` behaves identically afterwards).
"""

from __future__ import annotations

import math
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from tidal.predictors.grid import GridSeries
from tidal.predictors.quantiles import QuantileForecast, check_horizons, check_quantiles

# Window for the "recent level" that scales residuals and network inputs. Six
# cells is one hour on the 10-minute grid and one minute on the 10-second grid.
LEVEL_WINDOW_CELLS = 6
# Added to the level so that an all-zero series has a finite scale; in req/s.
LEVEL_FLOOR_RPS = 1e-3
# Share of the long-run mean added to the recent level. Without it a series that
# was idle for an hour has a near-zero scale, and its next burst becomes an error
# of thousands of "levels" that poisons every later interval.
LONG_MEAN_SHARE = 0.25
# Cells averaged for the long-run mean (1.8 days at 10-minute steps): long enough
# that an on/off tenant's quiet hours do not shrink its scale to nothing.
LONG_MEAN_CELLS = 256


@runtime_checkable
class LoadForecaster(Protocol):
    """What policies may call. Implementations are deterministic in their inputs."""

    name: str
    step_s: float

    def observe(self, t_s: float, value: float | None) -> None: ...

    def forecast(
        self, horizons_s: Sequence[float], quantiles: Sequence[float] = (0.1, 0.5, 0.9)
    ) -> QuantileForecast: ...

    def to_state(self) -> dict[str, Any]: ...


class GridForecaster:
    """Base: owns the grid, turns samples into finalised cells, validates requests."""

    name = "base"

    def __init__(self, step_s: float, capacity: int | None = None) -> None:
        self.grid = GridSeries(step_s, capacity)

    @property
    def step_s(self) -> float:
        return self.grid.step_s

    def observe(self, t_s: float, value: float | None) -> None:
        """Record the signal's value at ``t_s`` (None = could not be measured)."""
        for cell in self.grid.add(t_s, value):
            self._on_final(cell)

    def _on_final(self, cell: int) -> None:
        """Hook: ``cell`` will not change any more; learners update here."""

    def level(self, end_cell: int | None = None) -> float:
        """Mean of the recent valid cells (the scale for residuals and inputs)."""
        long_w = self.grid.window(LONG_MEAN_CELLS, end_cell)
        valid = long_w[~np.isnan(long_w)]
        long_mean = float(valid.mean()) if valid.size else 0.0
        w = long_w[-LEVEL_WINDOW_CELLS:]
        w = w[~np.isnan(w)]
        if w.size == 0:
            v = self.grid.last_valid(end_cell)
            recent = long_mean if math.isnan(v) else v
        else:
            recent = float(w.mean())
        return recent + LONG_MEAN_SHARE * long_mean + LEVEL_FLOOR_RPS

    def forecast(
        self, horizons_s: Sequence[float], quantiles: Sequence[float] = (0.1, 0.5, 0.9)
    ) -> QuantileForecast:
        hs, steps = check_horizons(horizons_s, self.step_s)
        qs = check_quantiles(quantiles)
        return self._forecast(hs, steps, qs)

    def _forecast(self, hs: tuple[float, ...], steps: np.ndarray, qs: tuple[float, ...]) -> QuantileForecast:
        raise NotImplementedError
