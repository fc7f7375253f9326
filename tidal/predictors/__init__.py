"""Predictors of the decision core: load forecasts, cold-start times, session pauses.

All are pure objects (no I/O): shells feed observations, policies read
predictions, and ``to_state()`` / ``from_state()`` carry what they learned
across operator restarts. See docs/forecasting.md.
"""

from __future__ import annotations

from typing import Any

from tidal.predictors.load import LoadForecaster
from tidal.predictors.quantiles import QuantileForecast

LOAD_FORECASTERS = ("seasonal_naive", "holt_winters", "ewma", "torch", "auto")


def make_load_forecaster(name: str, step_s: float, **kwargs: Any) -> LoadForecaster:
    """Build a load forecaster by its ``autoscaling.predictor`` name."""
    from tidal.predictors.auto import AutoForecaster
    from tidal.predictors.classical import EWMAForecaster, HoltWintersForecaster, SeasonalNaiveForecaster
    from tidal.predictors.neural import TorchQuantileForecaster

    table = {
        "seasonal_naive": SeasonalNaiveForecaster,
        "holt_winters": HoltWintersForecaster,
        "ewma": EWMAForecaster,
        "torch": TorchQuantileForecaster,
        "auto": AutoForecaster,
    }
    if name not in table:
        raise ValueError(f"predictor: unknown load forecaster {name!r}; choose one of {LOAD_FORECASTERS}")
    return table[name](step_s, **kwargs)  # type: ignore[return-value]


def load_forecaster_from_state(state: dict[str, Any]) -> LoadForecaster:
    """Restore any load forecaster from its ``to_state()`` dict."""
    from tidal.predictors.auto import AutoForecaster
    from tidal.predictors.classical import HoltWintersForecaster, SeasonalNaiveForecaster
    from tidal.predictors.neural import TorchQuantileForecaster

    kinds = {
        "seasonal_naive": SeasonalNaiveForecaster,
        "holt_winters": HoltWintersForecaster,
        "torch": TorchQuantileForecaster,
        "auto": AutoForecaster,
    }
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in kinds:
        raise ValueError(f"predictor state: kind {kind!r} is not a load forecaster ({sorted(kinds)})")
    return kinds[kind].from_state(state)  # type: ignore[return-value]


__all__ = ["LOAD_FORECASTERS", "LoadForecaster", "QuantileForecast", "make_load_forecaster", "load_forecaster_from_state"]
