"""Cold-start predictor: convergence, hierarchical fallback, bounded memory, exact state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tidal.predictors import coldstart as cs
from tidal.predictors.coldstart import ColdStartPredictor, StartContext, StartPhases

CTX = StartContext("a100-80g", "node-1", image_cached=False, weights_cached=True, model_size_gb=16.0)


def synthetic_phases(rng, n, size_gb=16.0):
    """Log-normal phases with a shared node-speed factor (phases correlate)."""
    slow = rng.lognormal(0.0, 0.2, n)
    return np.stack(
        [
            rng.lognormal(np.log(3.0), 0.5, n),
            slow * rng.lognormal(np.log(60.0), 0.3, n),
            slow * size_gb * rng.lognormal(np.log(0.3), 0.2, n),
            slow * rng.lognormal(np.log(35.0), 0.15, n),
        ],
        1,
    )


def test_converges_to_true_p90_within_10_percent_after_50_observations():
    misses = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        truth = np.quantile(synthetic_phases(np.random.default_rng(100 + seed), 400_000).sum(1), 0.9)
        p = ColdStartPredictor()
        for row in synthetic_phases(rng, 50):
            p.observe(CTX, StartPhases(*row))
        pred = p.predict(CTX, (0.5, 0.9))
        assert pred.source == "node"
        misses.append(abs(pred.total_s[1] / truth - 1))
    assert max(misses) < 0.10, misses


def test_hierarchical_fallback_node_class_global_prior():
    p = ColdStartPredictor()
    unseen_node = StartContext("a100-80g", "node-9", False, True, 16.0)
    other_class = StartContext("l4", "node-7", False, True, 16.0)
    assert p.predict(unseen_node).source == "prior"
    rng = np.random.default_rng(1)
    for row in synthetic_phases(rng, 10):
        p.observe(CTX, StartPhases(*row))
    assert p.predict(CTX).source == "node"
    assert p.predict(unseen_node).source == "accelerator_class"
    assert p.predict(other_class).source == "global"
    # Cache state is part of every key: a cached image has no data yet -> prior.
    assert p.predict(StartContext("a100-80g", "node-1", True, True, 16.0)).source == "prior"


def test_weights_load_scales_with_model_size():
    p = ColdStartPredictor()
    for _ in range(10):
        p.observe(CTX, StartPhases(1.0, 10.0, 8.0, 30.0))  # 0.5 s/GB
    big = StartContext("a100-80g", "node-1", False, True, 64.0)
    assert p.predict(big).phases_s["weights_load"][0] == pytest.approx(32.0)
    assert p.predict(big).phases_s["engine_init"][0] == pytest.approx(30.0)


def test_prior_is_conservative_for_uncached_images():
    p = ColdStartPredictor()
    cold = p.predict(StartContext("h100", None, False, False, 140.0), (0.5, 0.9))
    warm = p.predict(StartContext("h100", None, True, True, 140.0), (0.5, 0.9))
    assert cold.total_s[0] > warm.total_s[0] > 0
    assert cold.total_s[1] >= cold.total_s[0]


def test_memory_is_bounded():
    p = ColdStartPredictor()
    for i in range(cs.MAX_NODE_KEYS + 100):
        p.observe(StartContext("a100", f"n{i}", False, False, 1.0), StartPhases(1, 1, 1, 1))
    for _ in range(cs.MAX_SAMPLES_PER_KEY * 3):
        p.observe(CTX, StartPhases(1, 1, 1, 1))
    assert len(p._tables["node"]) <= cs.MAX_NODE_KEYS
    assert len(json.dumps(p.to_state())) < 1_000_000


@settings(max_examples=30, deadline=None)
@given(
    rows=st.lists(st.tuples(*[st.floats(0, 1e4, allow_nan=False)] * 4), min_size=0, max_size=30),
    qs=st.lists(st.floats(0.01, 0.99), min_size=1, max_size=4, unique=True).map(sorted),
)
def test_quantiles_monotone_and_state_round_trips(rows, qs):
    p = ColdStartPredictor()
    for r in rows:
        p.observe(CTX, StartPhases(*r))
    q = tuple(qs)
    if any(b - a < 1e-9 for a, b in zip(q, q[1:])):
        return
    pred = p.predict(CTX, q)
    assert all(np.diff(pred.total_s) >= 0)
    assert all(v >= 0 for v in pred.total_s)
    for vals in pred.phases_s.values():
        assert all(np.diff(vals) >= 0)
    blob = json.dumps(p.to_state())
    g = ColdStartPredictor.from_state(json.loads(blob))
    assert json.dumps(g.to_state()) == blob
    assert g.predict(CTX, q) == pred


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="image_pull_s"):
        StartPhases(1, -2, 3, 4).as_array()
    with pytest.raises(ValueError, match="model_size_gb"):
        StartContext("a100", None, False, False, 0.0)
    with pytest.raises(ValueError, match="quantiles"):
        ColdStartPredictor().predict(CTX, (0.9, 0.5))
