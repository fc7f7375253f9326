"""Session-pause predictor: learns a distribution, decays, falls back, restores exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tidal.predictors.pauses import PRIOR_MEDIAN_S, SessionPausePredictor


def test_learns_a_lognormal_pause_distribution():
    rng = np.random.default_rng(0)
    pauses = rng.lognormal(math.log(8.0), 0.8, 2000)
    p = SessionPausePredictor()
    for i, x in enumerate(pauses):
        p.observe(float(i), float(x))
    for q in (0.5, 0.9):
        assert p.quantile(q) == pytest.approx(np.quantile(pauses, q), rel=0.08)
    assert p.cdf(8.0) == pytest.approx(0.5, abs=0.04)


def test_prior_before_data_and_category_shrinkage():
    p = SessionPausePredictor()
    assert p.quantile(0.5) == pytest.approx(PRIOR_MEDIAN_S, rel=0.1)
    for i in range(200):
        p.observe(float(i), 100.0)
    for i in range(3):
        p.observe(200.0 + i, 1.0, category="code_exec")
    # Three observations are not enough to move the category all the way.
    assert 1.0 < p.quantile(0.5, "code_exec") < 100.0
    for i in range(300):
        p.observe(300.0 + i, 1.0, category="code_exec")
    assert p.quantile(0.5, "code_exec") == pytest.approx(1.0, rel=0.1)
    assert p.quantile(0.5, "unknown-tool") == pytest.approx(p.quantile(0.5), rel=1e-9)


def test_old_behaviour_decays():
    p = SessionPausePredictor(half_life_s=60.0)
    for i in range(100):
        p.observe(float(i), 300.0)
    for i in range(100):
        p.observe(10_000.0 + i, 2.0)
    assert p.quantile(0.9) < 3.0


@settings(max_examples=40, deadline=None)
@given(
    obs=st.lists(
        st.tuples(st.floats(0, 1e6, allow_nan=False), st.floats(0, 1e7, allow_nan=False), st.sampled_from([None, "a", "b"])),
        max_size=40,
    ),
    x=st.floats(0, 1e6),
)
def test_cdf_and_quantiles_are_valid_and_state_is_exact(obs, x):
    p = SessionPausePredictor()
    for now, pause, cat in sorted(obs, key=lambda o: o[0]):
        p.observe(now, pause, cat)
    qs = p.quantiles((0.1, 0.5, 0.9, 0.99), "a")
    assert all(np.isfinite(qs)) and all(np.diff(qs) >= 0) and qs[0] > 0
    c = p.cdf(x, "b")
    assert 0.0 <= c <= 1.0
    assert p.cdf(x * 2 + 1) >= p.cdf(x)
    blob = json.dumps(p.to_state())
    g = SessionPausePredictor.from_state(json.loads(blob))
    assert json.dumps(g.to_state()) == blob
    assert g.quantiles((0.1, 0.5, 0.9, 0.99), "a") == qs


def test_bad_input_names_the_field():
    p = SessionPausePredictor()
    with pytest.raises(ValueError, match="pause_s"):
        p.observe(0.0, -1.0)
    with pytest.raises(ValueError, match="half_life_s"):
        SessionPausePredictor(0.0)
    with pytest.raises(ValueError, match="kind"):
        SessionPausePredictor.from_state({"kind": "cold_start", "version": 1})


def test_without_waits_kaplan_meier_is_the_normalised_histogram():
    from tidal.predictors.pauses import N_BINS, kaplan_meier

    w = np.random.default_rng(1).random(N_BINS)
    assert kaplan_meier(w, np.zeros(N_BINS)) == pytest.approx(w / w.sum())


def test_waiting_turns_are_longer_pauses_than_the_ones_known_early():
    # A minute into a workload only short pauses have ended; 90 turns still waiting (40 s so far)
    # say most pauses are longer: the censoring-aware CDF puts the mass beyond their wait.
    p = SessionPausePredictor()
    for i in range(10):
        p.observe(60.0, 2.0)
    naive = p.cdf_function()
    censored = p.cdf_function(waiting_s=[40.0] * 90)
    assert naive(5.0) > 0.7
    assert censored(5.0) == pytest.approx(10 / (10 + 90 + 2), abs=0.03)
    assert censored(40.0) == pytest.approx(censored(5.0), abs=0.02)  # nobody waiting ended before 40 s


@settings(max_examples=40, deadline=None)
@given(
    pauses=st.lists(st.floats(0, 1e5, allow_nan=False), max_size=30),
    waits=st.lists(st.floats(0, 1e5, allow_nan=False), max_size=30),
    extra=st.floats(0, 1e5, allow_nan=False),
    x=st.floats(0, 1e5, allow_nan=False),
)
def test_a_longer_or_extra_wait_never_raises_the_cdf(pauses, waits, extra, x):
    p = SessionPausePredictor()
    for i, pause in enumerate(pauses):
        p.observe(float(i), pause)
    base = p.cdf_function(waiting_s=waits)(x)
    assert 0.0 <= base <= 1.0 + 1e-12
    assert p.cdf_function(waiting_s=[*waits, extra])(x) <= base + 1e-9
    if waits:
        longer = [waits[0] + extra, *waits[1:]]
        assert p.cdf_function(waiting_s=longer)(x) <= base + 1e-9
