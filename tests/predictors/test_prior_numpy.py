"""The numpy serving path of the forecast prior agrees with the torch network it was trained as.

Serving does not import torch (prior.py: ~180 MB of RSS per operator process); these tests
hold the numpy forward pass, the online head gradient and the weight reader to torch itself.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tidal.predictors.features import N_FEATURES
from tidal.predictors.prior import (
    GRID_QUANTILES,
    PRIOR_PATH,
    gelu,
    load_numpy_prior,
    monotone,
    pinball_head_grad,
    read_prior_blob,
)
from tidal.predictors.quantile_net import QuantileNet, load_prior, monotone as torch_monotone, pinball

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_weights_read_without_torch_equal_torch_load():
    blob = torch.load(PRIOR_PATH, map_location="cpu", weights_only=True)
    mine = read_prior_blob(PRIOR_PATH)
    assert mine["state_dict"].keys() == blob["state_dict"].keys()
    for k, v in blob["state_dict"].items():
        np.testing.assert_array_equal(mine["state_dict"][k], v.numpy(), err_msg=k)
        assert mine["state_dict"][k].dtype == np.float32
    assert mine["grid_quantiles"] == blob["grid_quantiles"]


def test_gelu_matches_torch_at_float32_precision():
    x = np.concatenate([np.linspace(-12, 12, 20001), [0.0, -0.0, 1e-8, -1e-8]]).astype(np.float32)
    bound = np.maximum(1.0, np.abs(x))
    # Against the exact value (torch in float64): within float32 rounding.
    exact = torch.nn.functional.gelu(torch.from_numpy(x.astype(np.float64))).numpy()
    assert (np.abs(gelu(x) - exact) <= 1.2e-7 * bound).all()
    # Against torch's float32 GELU, which loses ~|x| eps to cancellation in the negative tail.
    ref = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert (np.abs(gelu(x) - ref) <= 1e-6 * bound).all()


def test_body_and_head_match_the_torch_network():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(0, 2, (500, N_FEATURES))).astype(np.float32)
    net, mine = load_prior(), load_numpy_prior()
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    out = monotone(mine.body(x) @ mine.head_w.T + mine.head_b)
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=2e-5)
    assert (np.diff(out, axis=1) >= 0).all()


def test_head_gradient_matches_autograd():
    rng = np.random.default_rng(1)
    hid = rng.normal(0, 1, (6, 128)).astype(np.float32)
    raw = rng.normal(0, 3, (6, len(GRID_QUANTILES))).astype(np.float32)
    raw[0, 3] = 25.0  # above softplus' threshold: slope 1
    target = np.abs(rng.normal(1, 1, 6)).astype(np.float32)
    # A tie (prediction == target): torch.maximum splits the gradient half and half.
    # The lowest quantile is raw itself in both implementations, so the tie is exact in both.
    target[1] = raw[1, 0]
    qs = np.array(GRID_QUANTILES, dtype=np.float32)
    gw, gb = pinball_head_grad(hid, raw, target, qs)
    w = torch.zeros(len(GRID_QUANTILES), 128, requires_grad=True)
    b = torch.zeros(len(GRID_QUANTILES), requires_grad=True)
    pred = torch_monotone(torch.from_numpy(hid) @ w.T + b + torch.from_numpy(raw))
    tw, tb = torch.autograd.grad(pinball(pred, torch.from_numpy(target), torch.from_numpy(qs)), (w, b))
    np.testing.assert_allclose(gw, tw.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(gb, tb.numpy(), rtol=1e-5, atol=1e-8)


def test_reader_refuses_other_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", pickle.dumps({"state_dict": Evil()}, protocol=2))
        z.writestr("evil/byteorder", "little")
    with pytest.raises(pickle.UnpicklingError, match="unexpected object .*print"):
        read_prior_blob(path)


def test_serving_does_not_import_torch():
    code = (
        "import sys\n"
        "from tidal.predictors import make_load_forecaster\n"
        "from tidal.predictors.batch import forecast_many\n"
        "fs = [make_load_forecaster(n, 60.0) for n in ('auto', 'torch')]\n"
        "for f in fs:\n"
        "    for t in range(0, 7200, 60): f.observe(t, 3.0 + t % 7)\n"
        "forecast_many(fs, (60.0, 600.0))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_quantile_net_is_the_same_architecture():
    # The numpy body assumes Linear-GELU-Linear-GELU; a changed QuantileNet must change prior.py too.
    layers = [type(m).__name__ for m in QuantileNet().body.net]
    assert layers == ["Linear", "GELU", "Linear", "GELU"]
