"""Quantile forecasts as data, and the pinball loss used to judge them.

Every forecaster returns a :class:`QuantileForecast`. It is built through
:func:`make_forecast`, which is the one place that enforces the contract the
policies rely on: finite, non-negative, and non-decreasing in the quantile level.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

_STD_NORMAL = NormalDist()


def norm_ppf(p) -> np.ndarray:
    """Standard-normal quantile function, elementwise (stdlib; no scipy at run time)."""
    a = np.asarray(p, dtype=np.float64)
    return np.array([_STD_NORMAL.inv_cdf(float(v)) for v in a.ravel()]).reshape(a.shape)


def norm_cdf(x) -> np.ndarray:
    """Standard-normal distribution function, elementwise."""
    a = np.asarray(x, dtype=np.float64)
    return np.array([_STD_NORMAL.cdf(float(v)) for v in a.ravel()]).reshape(a.shape)


@dataclass(frozen=True)
class QuantileForecast:
    """Quantiles of a rate at several horizons after the last observed grid cell.

    ``values[i, j]`` is the ``quantiles[j]`` quantile at ``horizons_s[i]``.
    """

    horizons_s: tuple[float, ...]
    quantiles: tuple[float, ...]
    values: np.ndarray
    method: str

    def at(self, horizon_s: float, quantile: float) -> float:
        """One value; raises KeyError naming the missing horizon or quantile."""
        try:
            i = self.horizons_s.index(horizon_s)
        except ValueError:
            raise KeyError(f"horizon_s={horizon_s} not in {self.horizons_s}") from None
        try:
            j = self.quantiles.index(quantile)
        except ValueError:
            raise KeyError(f"quantile={quantile} not in {self.quantiles}") from None
        return float(self.values[i, j])


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Validate requested quantile levels (strictly inside (0, 1), increasing)."""
    qs = tuple(float(q) for q in quantiles)
    if not qs:
        raise ValueError("quantiles: need at least one level, e.g. (0.5, 0.9)")
    for q in qs:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantiles: level {q} must lie strictly between 0 and 1")
    if any(b <= a for a, b in zip(qs, qs[1:])):
        raise ValueError(f"quantiles: levels {qs} must be strictly increasing")
    return qs


def check_horizons(horizons_s: Sequence[float], step_s: float) -> tuple[tuple[float, ...], np.ndarray]:
    """Validate horizons and convert them to whole grid steps (at least one step)."""
    hs = tuple(float(h) for h in horizons_s)
    if not hs:
        raise ValueError("horizons_s: need at least one horizon in seconds, e.g. (600,)")
    for h in hs:
        if not np.isfinite(h) or h <= 0:
            raise ValueError(f"horizons_s: horizon {h} must be a positive number of seconds")
    steps = np.maximum(1, np.rint(np.asarray(hs) / step_s)).astype(np.int64)
    return hs, steps


def sanitize(values: np.ndarray, fallback: float = 0.0) -> np.ndarray:
    """Make a [H, Q] array finite, non-negative and monotone along the quantile axis.

    NaN or infinite entries (a diverged model) are replaced by ``fallback``
    before sorting, so a bad model degrades to a flat forecast, never to NaN.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    fb = float(fallback) if np.isfinite(fallback) and fallback > 0 else 0.0
    out[~np.isfinite(out)] = fb
    np.maximum(out, 0.0, out=out)
    return np.maximum.accumulate(out, axis=-1)


def make_forecast(
    horizons_s: tuple[float, ...],
    quantiles: tuple[float, ...],
    values: np.ndarray,
    method: str,
    fallback: float = 0.0,
) -> QuantileForecast:
    """The only constructor forecasters use: sanitises before publishing."""
    return QuantileForecast(horizons_s, quantiles, sanitize(values, fallback), method)


def interpolate_levels(grid_q: np.ndarray, grid_values: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Read arbitrary quantile levels off a monotone grid ``grid_values[..., len(grid_q)]``.

    Linear inside the grid; beyond its ends the outermost gap is extended
    linearly in the normal-score scale, which keeps tails monotone.
    """
    zq = norm_ppf(grid_q)
    zt = norm_ppf(quantiles)
    gv = np.asarray(grid_values, dtype=np.float64)
    out = np.empty(gv.shape[:-1] + (len(zt),))
    for j, z in enumerate(zt):
        if z <= zq[0]:
            slope = (gv[..., 1] - gv[..., 0]) / (zq[1] - zq[0])
            out[..., j] = gv[..., 0] + slope * (z - zq[0])
        elif z >= zq[-1]:
            slope = (gv[..., -1] - gv[..., -2]) / (zq[-1] - zq[-2])
            out[..., j] = gv[..., -1] + slope * (z - zq[-1])
        else:
            k = int(np.searchsorted(zq, z) - 1)
            w = (z - zq[k]) / (zq[k + 1] - zq[k])
            out[..., j] = gv[..., k] * (1 - w) + gv[..., k + 1] * w
    return out


def pinball_loss(y: np.ndarray, q_pred: np.ndarray, q: float) -> np.ndarray:
    """Pinball (quantile) loss, elementwise: the proper scoring rule for one quantile."""
    d = np.asarray(y, dtype=np.float64) - np.asarray(q_pred, dtype=np.float64)
    return np.maximum(q * d, (q - 1.0) * d)
