"""Memory held per forecaster: the operator keeps one per workload, 1,000 in 500 MB (issue 5)."""

from __future__ import annotations

import numpy as np

from tidal.predictors import load_forecaster_from_state, make_load_forecaster
from tidal.predictors._state import encode_array
from tidal.predictors.grid import GridSeries

STEP_S = 60.0  # the operator's grid: a week of history is 10,080 cells
# Measured 136 KiB: grid (10,080 float32 = 39 KiB), Holt-Winters seasons (3 x 1,440 float64 =
# 34 KiB), two residual rings and pending forecasts (43 KiB), auto's scoring (14 KiB), the torch
# head correction (4.5 KiB). A float64 grid alone would add 39 KiB and fail the bound.
AUTO_MAX_BYTES = 150 * 1024


def _arrays(obj: object, seen: dict[int, np.ndarray]) -> None:
    """Every numpy array reachable through instance attributes, each counted once."""
    if isinstance(obj, np.ndarray):
        seen.setdefault(id(obj), obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _arrays(v, seen)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("tidal.predictors"):
        if id(obj) in seen:
            return
        seen[id(obj)] = np.zeros(0)
        for v in vars(obj).values():
            _arrays(v, seen)


def _held_bytes(f: object) -> int:
    seen: dict[int, np.ndarray] = {}
    _arrays({k: v for k, v in vars(f).items()}, seen)
    # The prior is shared by the whole process, not held per workload.
    prior = getattr(getattr(f, "members", {}).get("torch", f), "prior", None)
    shared = {id(a) for a in vars(prior).values()} if prior is not None else set()
    return sum(a.nbytes for i, a in seen.items() if i not in shared)


def _fed(name: str) -> object:
    f = make_load_forecaster(name, STEP_S)
    for t in range(0, 3600, 60):
        f.observe(float(t), 3.0 + (t // 60) % 5)
    return f


def test_auto_holds_one_grid_and_a_bounded_amount_of_arrays():
    f = _fed("auto")
    assert all(m.grid is f.grid for m in f.members.values())
    assert f.grid.capacity == 10_080
    assert f.grid._values.dtype == np.float32
    assert _held_bytes(f) <= AUTO_MAX_BYTES, _held_bytes(f)


def test_restored_auto_still_shares_one_grid():
    f = load_forecaster_from_state(_fed("auto").to_state())
    assert all(m.grid is f.grid for m in f.members.values())
    assert _held_bytes(f) <= AUTO_MAX_BYTES


def test_the_prior_is_shared_not_copied_per_workload():
    a, b = _fed("auto"), _fed("torch")
    assert a.members["torch"].prior is b.prior


def test_grid_state_written_in_float64_restores_and_reads_float64():
    g = GridSeries(STEP_S)
    for t, v in enumerate([1.5, 2.25, 0.1]):
        g.add(t * STEP_S, v)
    s = g.to_state()
    s["values"] = encode_array(np.array([1.5, 2.25, 0.1]))  # an older, float64 state
    r = GridSeries.from_state(s)
    out = r.window(3)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.array([1.5, 2.25, 0.1], dtype=np.float32).astype(np.float64))
    assert GridSeries.from_state(r.to_state()).to_state() == r.to_state()
