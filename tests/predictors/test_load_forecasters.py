"""Load forecasters: the contract policies rely on, on adversarial and ordinary series."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

from tidal.predictors import make_load_forecaster, load_forecaster_from_state
from tidal.predictors.auto import SWITCH_MARGIN, AutoForecaster
from tidal.predictors.batch import forecast_many
from tidal.predictors.classical import HoltWintersForecaster, SeasonalNaiveForecaster
from tidal.predictors.neural import TorchQuantileForecaster
from tidal.predictors.quantiles import pinball_loss

STEP_S = 600.0
HORIZONS_S = (600.0, 1800.0, 3600.0, 7200.0)
QUANTILES = (0.05, 0.1, 0.5, 0.9, 0.99)
NAMES = ("seasonal_naive", "holt_winters", "ewma", "torch", "auto")


def feed(f, values, step_s=STEP_S, t0=0.0):
    for i, v in enumerate(values):
        f.observe(t0 + i * step_s, v)
    return f


def assert_contract(fc):
    v = fc.values
    assert v.shape == (len(fc.horizons_s), len(fc.quantiles))
    assert np.isfinite(v).all(), v
    assert (v >= 0).all(), v
    assert (np.diff(v, axis=1) >= 0).all(), v


# Values: None (missing), zeros, tiny and huge rates; hypothesis shrinks failures.
rate = st.one_of(
    st.none(),
    st.just(0.0),
    st.floats(min_value=0.0, max_value=1e-6),
    st.floats(min_value=0.0, max_value=1e5, allow_nan=False, allow_infinity=False),
)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(rate, min_size=0, max_size=60), gaps=st.lists(st.integers(1, 40), max_size=3))
def test_quantiles_finite_nonnegative_monotone(name, values, gaps):
    f = make_load_forecaster(name, STEP_S)
    t = 0.0
    for i, v in enumerate(values):
        f.observe(t, v)
        t += STEP_S * (gaps[i % len(gaps)] if gaps and i % 17 == 5 else 1)
    assert_contract(f.forecast(HORIZONS_S, QUANTILES))


ADVERSARIAL = {
    "all_zeros": [0.0] * 200,
    "one_spike": [0.0] * 100 + [5000.0] + [0.0] * 99,
    "constant": [7.0] * 200,
    "missing": [None if i % 3 else 4.0 for i in range(200)],
    "all_missing": [None] * 50,
    "level_shift": [1.0] * 100 + [300.0] * 160,
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("series", sorted(ADVERSARIAL))
def test_adversarial_series(name, series):
    f = feed(make_load_forecaster(name, STEP_S), ADVERSARIAL[series])
    fc = f.forecast(HORIZONS_S, QUANTILES)
    assert_contract(fc)
    if series == "all_zeros":
        assert fc.values[:, QUANTILES.index(0.5)].max() < 0.05
    if series == "constant":
        med = fc.values[:, QUANTILES.index(0.5)]
        assert np.all(np.abs(med - 7.0) < 1.5), med
    if series == "level_shift":
        # After 160 cells (more than a day) at the new level every method follows it.
        med = fc.values[0, QUANTILES.index(0.5)]
        # (seasonal-naive adds its recent error median, which still holds the shift)
        assert 150 < med < 750, med


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_is_exact(name):
    rng = np.random.default_rng(3)
    vals = list(20 + 10 * np.sin(np.arange(400) / 23.0) + rng.poisson(3, 400))
    vals[50] = None
    f = feed(make_load_forecaster(name, STEP_S), vals[:300])
    blob = json.dumps(f.to_state())
    g = load_forecaster_from_state(json.loads(blob))
    assert json.dumps(g.to_state()) == blob
    # Identical futures: same forecasts after the same further observations.
    for i, v in enumerate(vals[300:], start=300):
        f.observe(i * STEP_S, v)
        g.observe(i * STEP_S, v)
    a, b = f.forecast(HORIZONS_S, QUANTILES), g.forecast(HORIZONS_S, QUANTILES)
    np.testing.assert_array_equal(a.values, b.values)
    assert json.dumps(f.to_state()) == json.dumps(g.to_state())


def test_state_rejects_wrong_kind():
    s = make_load_forecaster("seasonal_naive", STEP_S).to_state()
    with pytest.raises(ValueError, match="kind"):
        HoltWintersForecaster.from_state(s)
    with pytest.raises(ValueError, match="kind"):
        load_forecaster_from_state({"kind": "nope", "version": 1})


@pytest.mark.parametrize(
    "t,v,match",
    [(0.0, -1.0, "value"), (0.0, math.inf, "value"), (math.nan, 1.0, "t_s")],
)
def test_bad_input_is_refused_with_the_field_named(t, v, match):
    f = make_load_forecaster("auto", STEP_S)
    with pytest.raises(ValueError, match=match):
        f.observe(t, v)


def test_out_of_order_sample_is_refused():
    f = feed(make_load_forecaster("holt_winters", STEP_S), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="older"):
        f.observe(0.0, 1.0)


def test_samples_in_one_cell_are_averaged_not_dropped():
    f = SeasonalNaiveForecaster(STEP_S)
    f.observe(0.0, 2.0)
    f.observe(100.0, 4.0)
    assert f.grid.value(0) == pytest.approx(3.0)


def test_bad_request_is_refused():
    f = feed(make_load_forecaster("torch", STEP_S), [1.0] * 5)
    with pytest.raises(ValueError, match="quantiles"):
        f.forecast((600.0,), (0.9, 0.5))
    with pytest.raises(ValueError, match="horizons_s"):
        f.forecast((-5.0,), (0.5,))


def test_seasonal_naive_repeats_yesterday():
    day = [float(i % 144) for i in range(144 * 2)]
    f = feed(SeasonalNaiveForecaster(STEP_S), day)
    fc = f.forecast((600.0, 3600.0), (0.5,))
    # Next cell is index 288 -> same time of day as cell 144 (value 0), 6 ahead -> 5.
    assert fc.values[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert fc.values[1, 0] == pytest.approx(5.0, abs=1e-9)


def _diurnal(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    lam = 30 + 25 * np.sin(2 * np.pi * t / 144)
    return rng.poisson(lam * 6) / 6.0  # counts over a minute, as a rate


@pytest.mark.parametrize("cls", [HoltWintersForecaster, TorchQuantileForecaster, AutoForecaster])
def test_learns_a_diurnal_series_better_than_the_mean(cls):
    y = _diurnal(144 * 5)
    f = cls(STEP_S)
    losses, base = [], []
    for i, v in enumerate(y):
        if i >= 144 * 3 and i + 3 < len(y):
            fc = f.forecast((1800.0,), (0.5, 0.9))
            losses.append(pinball_loss(y[i + 2], fc.values[0, 1], 0.9))
            base.append(pinball_loss(y[i + 2], np.quantile(y[:i], 0.9), 0.9))
        f.observe(i * STEP_S, float(v))
    assert np.mean(losses) < 0.6 * np.mean(base)


def test_auto_is_cold_then_selects_by_score():
    f = AutoForecaster(STEP_S)
    f.observe(0.0, 10.0)
    torch_i = 2
    assert (f.choice(np.array([1, 6]), (0.5, 0.9)) == torch_i).all()
    assert f.widen_factor() > 1.5
    feed(f, _diurnal(144 * 3), t0=STEP_S)
    assert f.widen_factor() == 1.0
    assert (f.n_scores >= 12).all()
    picks = f.choice(np.array([1, 3, 6, 12, 30]), (0.1, 0.5, 0.9))
    for k in range(5):
        for j in range(3):
            sc = f.score[:, k, j].copy()
            sc[torch_i] *= 1 - SWITCH_MARGIN
            assert picks[k, j] == int(np.argmin(sc))


def test_cold_forecast_is_wider_than_warm_prior():
    warm_like = TorchQuantileForecaster(STEP_S)
    cold = AutoForecaster(STEP_S)
    for i in range(3):
        warm_like.observe(i * STEP_S, 10.0)
        cold.observe(i * STEP_S, 10.0)
    a = warm_like.forecast((600.0,), (0.1, 0.9)).values[0]
    b = cold.forecast((600.0,), (0.1, 0.9)).values[0]
    assert b[1] - b[0] > 1.3 * (a[1] - a[0])


def test_batched_forecast_equals_one_by_one():
    fleet = []
    for k in range(6):
        y = _diurnal(300, seed=k) * (k + 1)
        f = (AutoForecaster if k % 2 else TorchQuantileForecaster)(STEP_S)
        fleet.append(feed(f, list(y)))
    fleet.append(SeasonalNaiveForecaster(STEP_S))  # never observed: handled individually
    batch = forecast_many(fleet, HORIZONS_S, QUANTILES)
    for f, b in zip(fleet, batch):
        one = f.forecast(HORIZONS_S, QUANTILES)
        np.testing.assert_allclose(b.values, one.values, rtol=1e-5, atol=1e-6)
        assert_contract(b)


def test_batch_refuses_mixed_grids():
    with pytest.raises(ValueError, match="step_s"):
        forecast_many([SeasonalNaiveForecaster(600.0), SeasonalNaiveForecaster(10.0)], (600.0,))
