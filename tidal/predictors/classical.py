"""Classical baselines: seasonal-naive, Holt-Winters and EWMA, in numpy.

Both produce a point forecast; quantiles come from the empirical distribution of
their own recent out-of-sample errors at each horizon (scaled by the level at
the forecast origin, since traffic noise grows with traffic). This is the
"empirical prediction interval" construction of Hyndman & Athanasopoulos,
*Forecasting: Principles and Practice* (3rd ed.), section 5.5.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tidal.predictors._state import check_kind, decode_array, encode_array, STATE_VERSION
from tidal.predictors.load import GridForecaster
from tidal.predictors.quantiles import QuantileForecast, make_forecast, norm_ppf

# Horizons (in grid steps) whose errors are tracked; other horizons interpolate
# between the nearest tracks in log-horizon.
RESIDUAL_TRACKS_STEPS = (1, 2, 4, 8, 16, 32, 64)
# Errors kept per track: about 1.4 days on the 10-minute grid, 33 minutes at 10 s.
RESIDUALS_PER_TRACK = 200
# Below this many errors a track is not trusted and the cold spread is used.
MIN_RESIDUALS = 12
# Cold spread: relative standard deviation assumed before any error is seen,
# growing with sqrt(horizon). Deliberately wide (one level per sqrt-step): a cold
# series should pre-warm generously rather than under-provision.
COLD_RELATIVE_SD = 0.5
# Daily seasonality is modelled by Holt-Winters only on grids of at most this many
# cells per day (steps of 1 minute or more); on finer grids one day of history is a
# single noisy sample per slot. Seasonal-naive falls back to naive in the same case.
MAX_SEASON_CELLS = 1440


class EmpiricalQuantileForecaster(GridForecaster):
    """Point forecast + empirical, horizon-specific, level-scaled error quantiles."""

    def __init__(self, step_s: float, capacity: int | None = None) -> None:
        super().__init__(step_s, capacity)
        nt = len(RESIDUAL_TRACKS_STEPS)
        ring = max(RESIDUAL_TRACKS_STEPS) + 1
        self._tracks = np.array(RESIDUAL_TRACKS_STEPS, dtype=np.int64)
        self._pend_point = np.zeros((nt, ring))
        self._pend_scale = np.ones((nt, ring))
        self._pend_target = np.full((nt, ring), -(2**62), dtype=np.int64)
        self._resid = np.zeros((nt, RESIDUALS_PER_TRACK))
        self._resid_n = np.zeros(nt, dtype=np.int64)
        self._sorted: np.ndarray | None = None  # cache of sorted residuals, reset per cell

    # --- subclass hooks -------------------------------------------------
    def _update(self, cell: int, y: float) -> None:
        """Advance the model past final cell ``cell`` (``y`` may be NaN)."""

    def _point(self, steps: np.ndarray, tentative: bool) -> np.ndarray:
        """Point forecasts ``steps`` cells after the last cell.

        ``tentative`` is True when the last cell is not final yet (a forecast
        request) and False right after it was finalised (error bookkeeping).
        """
        raise NotImplementedError

    # --- bookkeeping -----------------------------------------------------
    def _on_final(self, cell: int) -> None:
        self._sorted = None
        y = self.grid.value(cell)
        ring = self._pend_point.shape[1]
        slot = cell % ring
        if not math.isnan(y):
            hit = self._pend_target[:, slot] == cell
            for k in np.flatnonzero(hit):
                r = (y - self._pend_point[k, slot]) / self._pend_scale[k, slot]
                self._resid[k, self._resid_n[k] % RESIDUALS_PER_TRACK] = r
                self._resid_n[k] += 1
        self._update(cell, y)
        # Forecasts from this origin, scored when their targets become final.
        # (Only valid when ``cell`` is the grid's previous last cell, i.e. the
        # new last cell is cell + 1 or later; model state then includes ``cell``.)
        pts = self._point_from(cell)
        scale = self.level(cell)
        tslots = (cell + self._tracks) % ring
        idx = np.arange(len(self._tracks))
        self._pend_point[idx, tslots] = pts
        self._pend_scale[idx, tslots] = scale
        self._pend_target[idx, tslots] = cell + self._tracks

    def _point_from(self, cell: int) -> np.ndarray:
        return self._point_at(cell, self._tracks)

    def _point_at(self, origin: int, steps: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _error_quantiles(self, steps: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        """[H, Q] scaled error quantiles, interpolated between tracks in log-horizon."""
        qa = np.asarray(qs)
        z = norm_ppf(qa)
        counts = np.minimum(self._resid_n, RESIDUALS_PER_TRACK)
        if (counts == RESIDUALS_PER_TRACK).all():  # the steady state: sorted once per cell
            if self._sorted is None:
                self._sorted = np.sort(self._resid, axis=1)
            pos = qa * (RESIDUALS_PER_TRACK - 1)  # numpy's default "linear" quantile
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, RESIDUALS_PER_TRACK - 1)
            frac = pos - lo
            per_track = self._sorted[:, lo] * (1 - frac) + self._sorted[:, hi] * frac
        else:
            per_track = np.empty((len(self._tracks), len(qs)))
            for k, h in enumerate(self._tracks):
                n = int(counts[k])
                if n >= MIN_RESIDUALS:
                    per_track[k] = np.quantile(self._resid[k, :n], qa)
                else:
                    per_track[k] = COLD_RELATIVE_SD * math.sqrt(h) * z
        lt = np.log(self._tracks.astype(float))
        lh = np.log(np.clip(steps.astype(float), 1, self._tracks[-1]))
        out = np.empty((len(steps), len(qs)))
        for j in range(len(qs)):
            out[:, j] = np.interp(lh, lt, per_track[:, j])
        return out

    def values_from(self, origin: int, steps: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        """Unsanitised [H, Q] forecast from a *final* origin cell (used for scoring)."""
        return self._point_at(origin, steps)[:, None] + self.level(origin) * self._error_quantiles(steps, qs)

    def _forecast(self, hs: tuple[float, ...], steps: np.ndarray, qs: tuple[float, ...]) -> QuantileForecast:
        if self.grid.last_cell is None:
            return make_forecast(hs, qs, np.zeros((len(hs), len(qs))), self.name)
        point = self._point(steps, tentative=True)
        scale = self.level()
        vals = point[:, None] + scale * self._error_quantiles(steps, qs)
        fb = self.grid.last_valid()
        return make_forecast(hs, qs, vals, self.name, fallback=0.0 if math.isnan(fb) else fb)

    # --- state ---------------------------------------------------------------
    def _base_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "grid": self.grid.to_state(),
            "pend_point": encode_array(self._pend_point),
            "pend_scale": encode_array(self._pend_scale),
            "pend_target": encode_array(self._pend_target),
            "resid": encode_array(self._resid),
            "resid_n": encode_array(self._resid_n),
        }

    def _restore_base(self, s: dict[str, Any]) -> None:
        from tidal.predictors.grid import GridSeries

        self.grid = GridSeries.from_state(s["grid"])
        self._pend_point = decode_array(s["pend_point"])
        self._pend_scale = decode_array(s["pend_scale"])
        self._pend_target = decode_array(s["pend_target"])
        self._resid = decode_array(s["resid"])
        self._resid_n = decode_array(s["resid_n"])


class SeasonalNaiveForecaster(EmpiricalQuantileForecaster):
    """Tomorrow looks like today: the value one day earlier at the same time of day.

    Falls back to the last valid value while less than a day of history exists,
    where a day-ago cell is missing, and on grids finer than one minute.
    """

    name = "seasonal_naive"
    kind = "seasonal_naive"

    def _season(self) -> int:
        p = self.grid.day_cells
        return p if p <= MAX_SEASON_CELLS and p < self.grid.capacity else 1

    def _point_at(self, origin: int, steps: np.ndarray) -> np.ndarray:
        p = self._season()
        last = self.grid.last_valid(origin)
        last = 0.0 if math.isnan(last) else last
        if p == 1:
            return np.full(len(steps), last)
        src = origin + steps - p * np.ceil(steps / p).astype(np.int64)
        v = self.grid.get(src)
        return np.where(np.isnan(v), last, v)

    def _point(self, steps: np.ndarray, tentative: bool) -> np.ndarray:
        return self._point_at(self.grid.last_cell, steps)  # type: ignore[arg-type]

    def to_state(self) -> dict[str, Any]:
        return self._base_state()

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "SeasonalNaiveForecaster":
        check_kind(s, cls.kind)
        f = cls(s["grid"]["step_s"], s["grid"]["capacity"])
        f._restore_base(s)
        return f


# Smoothing-parameter grid. Holt-Winters runs one filter per level-smoothing
# value and forecasts with the one whose recent one-step error is lowest (a
# cheap online stand-in for the maximum-likelihood fit of FPP3 section 8.6).
HW_ALPHAS = (0.05, 0.2, 0.5)
# Trend smoothing and damping: FPP3 section 8.2 recommends damping with phi in
# [0.8, 0.98]; a small beta keeps bursts from turning into trends.
HW_BETA = 0.02
HW_PHI = 0.9
# Seasonal smoothing (FPP3 section 8.3 restricts gamma to [0, 1 - alpha]).
HW_GAMMA = 0.2
# Rate of the exponential average that compares the smoothing candidates.
HW_SELECT_RATE = 0.02


class HoltWintersForecaster(EmpiricalQuantileForecaster):
    """Additive damped-trend Holt-Winters with daily seasonality, updated online.

    With ``trend=False, seasonal=False`` it is simple exponential smoothing
    (EWMA), registered as ``ewma``.
    """

    kind = "holt_winters"

    def __init__(
        self, step_s: float, capacity: int | None = None, trend: bool = True, seasonal: bool = True
    ) -> None:
        super().__init__(step_s, capacity)
        self.trend = bool(trend)
        self.seasonal = bool(seasonal)
        self.name = "holt_winters" if (trend or seasonal) else "ewma"
        p = self.grid.day_cells
        self.period = p if (seasonal and p <= MAX_SEASON_CELLS and p >= 2) else 1
        nc = len(HW_ALPHAS)
        self._alpha = np.array(HW_ALPHAS)
        self._level = np.full(nc, np.nan)
        self._trend = np.zeros(nc)
        self._season = np.zeros((nc, self.period))
        self._visited = np.zeros(self.period, dtype=bool)
        self._err = np.zeros(nc)

    def _step(self, level, trend, season_slot, y, first_visit):
        """One Holt-Winters update for all candidates (vectorised); returns new state."""
        phi = HW_PHI if self.trend else 0.0
        beta = HW_BETA if self.trend else 0.0
        s_old = season_slot if self.period > 1 else 0.0
        new_l = self._alpha * (y - s_old) + (1 - self._alpha) * (level + phi * trend)
        new_b = beta * (new_l - level) + (1 - beta) * phi * trend
        if self.period > 1:
            new_s = (y - new_l) if first_visit else HW_GAMMA * (y - new_l) + (1 - HW_GAMMA) * season_slot
        else:
            new_s = season_slot
        return new_l, new_b, new_s

    def _update(self, cell: int, y: float) -> None:
        if math.isnan(y):
            # Missing cell: the trend decays, nothing is learned.
            if self.trend:
                self._trend = self._trend * HW_PHI
            return
        slot = cell % self.period
        if np.isnan(self._level[0]):
            self._level[:] = y
            self._trend[:] = 0.0
            if self.period > 1:
                self._season[:, slot] = 0.0
                self._visited[slot] = True
            return
        # Score the candidates' one-step forecasts before learning from y.
        pred = self._level + self._trend * (HW_PHI if self.trend else 0.0)
        if self.period > 1:
            pred = pred + self._season[:, slot]
        scale = self.level(cell - 1)
        self._err += HW_SELECT_RATE * (np.abs(y - pred) / scale - self._err)
        first = not self._visited[slot] if self.period > 1 else False
        l, b, s = self._step(self._level, self._trend, self._season[:, slot], y, first)
        self._level, self._trend = l, b
        if self.period > 1:
            self._season[:, slot] = s
            self._visited[slot] = True

    def _forecast_from_state(self, level, trend, season, origin: int, steps: np.ndarray) -> np.ndarray:
        best = int(np.argmin(self._err))
        if np.isnan(level[best]):
            return np.zeros(len(steps))
        if self.trend:
            # Sum of phi^1..phi^h: the damped trend's cumulative contribution.
            damp = HW_PHI * (1 - HW_PHI ** steps) / (1 - HW_PHI)
        else:
            damp = np.zeros(len(steps))
        out = level[best] + damp * trend[best]
        if self.period > 1:
            slots = (origin + steps) % self.period
            out = out + np.where(self._visited[slots], season[best, slots], 0.0)
        return out

    def _point_at(self, origin: int, steps: np.ndarray) -> np.ndarray:
        return self._forecast_from_state(self._level, self._trend, self._season, origin, steps)

    def _point(self, steps: np.ndarray, tentative: bool) -> np.ndarray:
        c = self.grid.last_cell
        y = self.grid.value(c)  # type: ignore[arg-type]
        if math.isnan(y) or np.isnan(self._level[0]):
            if np.isnan(self._level[0]):
                return np.full(len(steps), 0.0 if math.isnan(y) else y)
            return self._point_at(c, steps)  # type: ignore[arg-type]
        slot = c % self.period  # type: ignore[operator]
        first = not self._visited[slot] if self.period > 1 else False
        l, b, s = self._step(self._level, self._trend, self._season[:, slot], y, first)
        season = self._season
        if self.period > 1:
            season = self._season.copy()
            season[:, slot] = s
        return self._forecast_from_state(l, b, season, c, steps)  # type: ignore[arg-type]

    def to_state(self) -> dict[str, Any]:
        s = self._base_state()
        s.update(
            trend_on=self.trend,
            seasonal_on=self.seasonal,
            level=encode_array(self._level),
            trend=encode_array(self._trend),
            season=encode_array(self._season),
            visited=encode_array(self._visited),
            err=encode_array(self._err),
        )
        return s

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "HoltWintersForecaster":
        check_kind(s, cls.kind)
        f = cls(s["grid"]["step_s"], s["grid"]["capacity"], s["trend_on"], s["seasonal_on"])
        f._restore_base(s)
        f._level = decode_array(s["level"])
        f._trend = decode_array(s["trend"])
        f._season = decode_array(s["season"])
        f._visited = decode_array(s["visited"])
        f._err = decode_array(s["err"])
        return f


def EWMAForecaster(step_s: float, capacity: int | None = None) -> HoltWintersForecaster:
    """Simple exponential smoothing: Holt-Winters without trend or season."""
    return HoltWintersForecaster(step_s, capacity, trend=False, seasonal=False)
