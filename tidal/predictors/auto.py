"""``predictor: auto``: per workload, use whichever forecaster has been right lately.

Every member (seasonal-naive, Holt-Winters, torch) forecasts from every final
cell at a few scoring horizons; when the target cell is final, each member's
pinball loss (scaled by the level) feeds an exponentially weighted average per
member, horizon and quantile level. A forecast of quantile ``q`` at horizon
``h`` is answered by the member with the lowest average at the scoring horizon
and level nearest to ``(h, q)``; a classical member displaces the torch member
only when it is better by a margin, since its score is a noisy estimate and the
torch member carries the prior learned from many series.

While history is short no member has a track record: the torch member answers
(its prior was trained on many series) with quantiles widened around the
median, the widening shrinking to nothing as history accumulates.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tidal.predictors._state import STATE_VERSION, check_kind, decode_array, encode_array
from tidal.predictors.classical import HoltWintersForecaster, SeasonalNaiveForecaster
from tidal.predictors.grid import GridSeries
from tidal.predictors.load import GridForecaster
from tidal.predictors.neural import TorchQuantileForecaster
from tidal.predictors.quantiles import QuantileForecast, make_forecast, pinball_loss

# Horizons (cells) at which members are scored: 10 s - 5 min on a 10-second
# grid, 10 min - 5 h on a 10-minute grid.
SCORE_STEPS = (1, 3, 6, 12, 30)
# Quantile levels in the score: the median and both tails, so a member cannot
# win with a sharp but badly calibrated band.
SCORE_QUANTILES = (0.1, 0.5, 0.9)
# Half-life of the score average, in scored cells (half a day at 10 minutes).
SCORE_HALF_LIFE_CELLS = 72
# A member is eligible once it has this many scores at a horizon.
MIN_SCORES = 12
# Cold start: quantile spread around the median is multiplied by up to
# 1 + COLD_WIDEN, decaying linearly to 1 over the first WARM_CELLS valid cells.
COLD_WIDEN = 1.0
WARM_CELLS = 36
COLD_MEMBER = "torch"
# A classical member must beat the torch member's score by this fraction to be
# picked (hysteresis against noisy scores).
SWITCH_MARGIN = 0.25
MEMBER_ORDER = ("seasonal_naive", "holt_winters", "torch")
# Capacity of the throw-away grid members are constructed with (GridSeries' minimum); nothing
# in a member's construction depends on the capacity, only on the step.
PLACEHOLDER_CELLS = 8


class AutoForecaster(GridForecaster):
    """Online model selection among seasonal-naive, Holt-Winters and torch."""

    name = "auto"
    kind = "auto"

    def __init__(self, step_s: float, capacity: int | None = None, prior_path=None) -> None:
        super().__init__(step_s, capacity)
        self._prior_path = prior_path
        # Members are built on a minimal placeholder grid that _share_grid replaces at once: a
        # full-size grid each would be three more week-long buffers allocated only to be dropped.
        self.members: dict[str, Any] = {
            "seasonal_naive": SeasonalNaiveForecaster(step_s, PLACEHOLDER_CELLS),
            "holt_winters": HoltWintersForecaster(step_s, PLACEHOLDER_CELLS),
            "torch": TorchQuantileForecaster(step_s, PLACEHOLDER_CELLS, prior_path=prior_path),
        }
        self._share_grid()
        nm, nk, nq = len(MEMBER_ORDER), len(SCORE_STEPS), len(SCORE_QUANTILES)
        ring = max(SCORE_STEPS) + 1
        self._steps = np.array(SCORE_STEPS, dtype=np.int64)
        self._pend = np.zeros((nm, nk, ring, nq))
        self._pend_scale = np.ones((nk, ring))
        self._pend_target = np.full((nk, ring), -(2**62), dtype=np.int64)
        self.score = np.zeros((nm, nk, nq))
        self.n_scores = np.zeros((nm, nk), dtype=np.int64)

    def _share_grid(self) -> None:
        # Members read the one grid auto owns; only auto appends to it.
        for m in self.members.values():
            m.grid = self.grid

    def _on_final(self, cell: int) -> None:
        y = self.grid.value(cell)
        ring = self._pend.shape[2]
        slot = cell % ring
        if not math.isnan(y):
            rate = 1.0 - 0.5 ** (1.0 / SCORE_HALF_LIFE_CELLS)
            qa = np.array(SCORE_QUANTILES)
            for k in np.flatnonzero(self._pend_target[:, slot] == cell):
                loss = pinball_loss(y, np.maximum(self._pend[:, k, slot, :], 0.0), qa)
                loss = loss / self._pend_scale[k, slot]
                fresh = (self.n_scores[:, k] == 0)[:, None]
                self.score[:, k] = np.where(fresh, loss, self.score[:, k] + rate * (loss - self.score[:, k]))
                self.n_scores[:, k] += 1
        for m in self.members.values():
            m._on_final(cell)
        tslots = (cell + self._steps) % ring
        for i, name in enumerate(MEMBER_ORDER):
            v = self.members[name].values_from(cell, self._steps, SCORE_QUANTILES)
            self._pend[i, np.arange(len(self._steps)), tslots] = np.nan_to_num(v)
        self._pend_scale[np.arange(len(self._steps)), tslots] = self.level(cell)
        self._pend_target[np.arange(len(self._steps)), tslots] = cell + self._steps

    def choice(self, steps: np.ndarray, qs: tuple[float, ...] = (0.5,)) -> np.ndarray:
        """[H, Q] index into MEMBER_ORDER of the member answering each (horizon, level)."""
        t = MEMBER_ORDER.index(COLD_MEMBER)
        ls = np.log(self._steps.astype(float))
        k = np.argmin(np.abs(ls[None, :] - np.log(np.maximum(np.asarray(steps), 1))[:, None]), 1)  # [H]
        j = np.argmin(np.abs(np.array(SCORE_QUANTILES)[None, :] - np.asarray(qs)[:, None]), 1)  # [Q]
        ok = self.n_scores[:, k] >= MIN_SCORES  # [M, H]
        sc = self.score[:, k][:, :, j].copy()  # [M, H, Q]
        sc[t] *= 1.0 - SWITCH_MARGIN
        sc[~ok] = np.inf
        out = np.argmin(sc, 0)
        out[~ok[t]] = t  # the torch member is not scored yet: it answers (cold start)
        return out

    def widen_factor(self) -> float:
        warm = min(self.grid.n_valid / WARM_CELLS, 1.0)
        return 1.0 + COLD_WIDEN * (1.0 - warm)

    def _forecast(self, hs: tuple[float, ...], steps: np.ndarray, qs: tuple[float, ...]) -> QuantileForecast:
        if self.grid.last_cell is None:
            return make_forecast(hs, qs, np.zeros((len(hs), len(qs))), "auto")
        pick = self.choice(steps, qs)
        member_vals = {
            int(i): self.members[MEMBER_ORDER[int(i)]]._forecast(hs, steps, qs).values for i in np.unique(pick)
        }
        return self.assemble(hs, qs, pick, member_vals)

    def assemble(self, hs, qs, pick: np.ndarray, member_vals: dict[int, np.ndarray]) -> QuantileForecast:
        """Combine members' [H, Q] forecasts cell by cell, widen if cold, sanitise."""
        vals = np.empty(pick.shape)
        for i, v in member_vals.items():
            vals[pick == i] = v[pick == i]
        vals = self._widen(vals, qs)
        used = sorted({MEMBER_ORDER[int(i)] for i in np.unique(pick)})
        fb = self.grid.last_valid()
        return make_forecast(hs, qs, vals, "auto:" + "+".join(used), 0.0 if math.isnan(fb) else fb)

    def _widen(self, vals: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
        w = self.widen_factor()
        if w == 1.0:
            return vals
        med = np.array([np.interp(0.5, qs, row) for row in vals]) if len(qs) > 1 else vals[:, 0]
        return med[:, None] + (vals - med[:, None]) * w

    def to_state(self) -> dict[str, Any]:
        members = {}
        for name, m in self.members.items():
            st = m.to_state()
            st.pop("grid")
            members[name] = st
        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "grid": self.grid.to_state(),
            "members": members,
            "pend": encode_array(self._pend),
            "pend_scale": encode_array(self._pend_scale),
            "pend_target": encode_array(self._pend_target),
            "score": encode_array(self.score),
            "n_scores": encode_array(self.n_scores),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any], prior_path=None) -> "AutoForecaster":
        check_kind(s, cls.kind)
        f = cls(s["grid"]["step_s"], s["grid"]["capacity"], prior_path)
        grid_state = s["grid"]
        f.grid = GridSeries.from_state(grid_state)
        types = {
            "seasonal_naive": SeasonalNaiveForecaster,
            "holt_winters": HoltWintersForecaster,
            "torch": TorchQuantileForecaster,
        }
        # Members read auto's grid (_share_grid below): restore each on an empty placeholder
        # instead of decoding the week of history three more times.
        placeholder = GridSeries(f.grid.step_s, PLACEHOLDER_CELLS).to_state()
        for name, st in s["members"].items():
            if name not in types:
                raise ValueError(f"auto forecaster state: unknown member {name!r}")
            full = dict(st, grid=placeholder)
            f.members[name] = (
                types[name].from_state(full, prior_path) if name == "torch" else types[name].from_state(full)
            )
        f._share_grid()
        f._pend = decode_array(s["pend"])
        f._pend_scale = decode_array(s["pend_scale"])
        f._pend_target = decode_array(s["pend_target"])
        f.score = decode_array(s["score"])
        f.n_scores = decode_array(s["n_scores"])
        return f
