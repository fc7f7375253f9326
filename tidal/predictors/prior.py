"""The forecast prior's network evaluated in numpy, so serving never imports torch.

The prior (tidal/data/forecast_prior.pt) is trained with torch (quantile_net.py,
scripts/train_forecast_prior.py), but serving it is two 128-wide dense layers, a
linear head and a per-workload gradient step on that head: a few lines of numpy.
Importing torch costs ~180 MB of resident memory (measured: 74 -> 253 MB), a
third of the operator's 500 MB budget at 1,000 workloads (issue 5), so the
serving path reads the weights itself and does not load torch at all.

The ``.pt`` file is a zip of a pickle plus raw little-endian tensor storages. It
is read with an unpickler that knows only the few globals ``torch.save`` writes
for a state dict of float tensors and refuses everything else, so loading a
prior cannot run arbitrary code either.
"""

from __future__ import annotations

import collections
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

# Quantile levels the network outputs; others are interpolated (quantiles.py).
GRID_QUANTILES = (0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98)
HIDDEN_UNITS = 128
PRIOR_PATH = Path(__file__).resolve().parent.parent / "data" / "forecast_prior.pt"
# torch.nn.functional.softplus(beta=1, threshold=20): the identity above 20.
SOFTPLUS_THRESHOLD = 20.0
# Storage classes torch.save writes, by name, and their element type.
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64}


class _Storage:
    """A storage class named in the pickle (stands in for torch.FloatStorage etc.)."""

    def __init__(self, dtype: type) -> None:
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2 for a CPU tensor: a strided view, copied to be contiguous."""
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride))
    return np.ascontiguousarray(view)


class _PriorUnpickler(pickle.Unpickler):
    """Unpickles a torch.save'd dict of tensors into numpy arrays; any other global is refused."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, file: Any) -> None:
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(_STORAGE_DTYPES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"forecast prior: unexpected object {module}.{name} in the file")

    def persistent_load(self, pid: Any) -> np.ndarray:
        kind, storage, key, _location, numel = pid
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"forecast prior: unexpected persistent id {pid!r}")
        raw = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"), count=int(numel)).astype(storage.dtype)


def read_prior_blob(path: Path) -> dict[str, Any]:
    """The dict ``save_prior`` wrote, with tensors as numpy arrays (torch not needed)."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("data.pkl")), None)
        if pkl is None:
            raise ValueError(f"forecast prior {path}: not a torch zip archive (no data.pkl)")
        prefix = pkl[: -len("data.pkl")]
        order = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        if order != "little":
            raise ValueError(f"forecast prior {path}: byte order {order!r} unsupported")
        with archive.open(pkl) as fh:
            return _PriorUnpickler(archive, prefix, fh).load()


def gelu(x: np.ndarray) -> np.ndarray:
    """torch.nn.GELU() (the exact, erf form) in float32.

    numpy has no erf; erfc uses the Chebyshev fit of Numerical Recipes (2nd ed.,
    section 6.2, ``erfcc``), fractional error below 1.2e-7 everywhere, i.e. at
    float32 rounding, which is the precision torch computes GELU in. Evaluated in
    float32 with in-place operations: this runs on every hidden unit of every
    row of a 1,000-workload batch, and float64 made the batch 40% slower.
    """
    x = np.asarray(x, dtype=np.float32)
    z = np.abs(x)
    z *= np.float32(1.0 / math.sqrt(2.0))
    t = 0.5 * z
    t += 1.0
    np.reciprocal(t, out=t)
    poly = np.full_like(t, _ERFC_COEFFS[0])
    for c in _ERFC_COEFFS[1:]:
        poly *= t
        poly += c
    np.square(z, out=z)
    poly -= z
    np.exp(poly, out=poly)
    poly *= t  # erfc(|x| / sqrt 2)
    poly *= 0.5  # P(N(0,1) > |x|)
    phi = np.where(x >= 0, np.float32(1.0) - poly, poly)  # standard normal CDF at x
    phi *= x
    return phi


# Numerical Recipes erfcc coefficients, highest order first (Horner).
_ERFC_COEFFS = tuple(np.float32(c) for c in (
    0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196,
    1.00002368, -1.26551223))


def softplus(x: np.ndarray) -> np.ndarray:
    """torch.nn.functional.softplus with its default threshold."""
    with np.errstate(over="ignore"):
        return np.where(x > SOFTPLUS_THRESHOLD, x, np.log1p(np.exp(np.minimum(x, SOFTPLUS_THRESHOLD))))


def monotone(raw: np.ndarray) -> np.ndarray:
    """First column free, the rest cumulative softplus increments: non-crossing (as quantile_net.monotone)."""
    inc = softplus(raw[..., 1:])
    return np.concatenate([raw[..., :1], raw[..., :1] + np.cumsum(inc, -1, dtype=raw.dtype)], -1)


class NumpyPrior:
    """The frozen prior: body weights plus the head every workload's correction is added to."""

    def __init__(self, state_dict: dict[str, np.ndarray]) -> None:
        f32 = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state_dict.items()}
        self.w1, self.b1 = f32["body.net.0.weight"], f32["body.net.0.bias"]
        self.w2, self.b2 = f32["body.net.2.weight"], f32["body.net.2.bias"]
        self.head_w, self.head_b = f32["head.weight"], f32["head.bias"]
        for a in (self.w1, self.b1, self.w2, self.b2, self.head_w, self.head_b):
            a.setflags(write=False)  # shared by every workload: nobody may change it

    def body(self, x: np.ndarray) -> np.ndarray:
        """[N, N_FEATURES] float32 -> [N, HIDDEN] float32 (Linear, GELU, Linear, GELU)."""
        h = gelu(x @ self.w1.T + self.b1)
        return gelu(h @ self.w2.T + self.b2)


_PRIOR_CACHE: dict[str, NumpyPrior] = {}


def load_numpy_prior(path: Path | None = None) -> NumpyPrior:
    """The shipped prior, loaded once per path and shared by every forecaster of the process."""
    p = Path(path) if path is not None else PRIOR_PATH
    key = str(p)
    if key not in _PRIOR_CACHE:
        if not p.exists():
            raise FileNotFoundError(
                f"forecast prior {p} is missing; run scripts/train_forecast_prior.py to rebuild it")
        blob = read_prior_blob(p)
        if tuple(float(q) for q in blob["grid_quantiles"]) != GRID_QUANTILES:
            raise ValueError(f"forecast prior {p}: quantile grid differs from this build; retrain it")
        _PRIOR_CACHE[key] = NumpyPrior(blob["state_dict"])
    return _PRIOR_CACHE[key]


def pinball_head_grad(
    hid: np.ndarray, raw: np.ndarray, target: np.ndarray, qs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of the mean pinball loss of ``monotone(raw)`` w.r.t. the head's weight and bias.

    ``raw = hid @ W.T + b``; this is what torch.autograd gives for
    ``quantile_net.pinball(monotone(raw), target, qs)`` (including torch.maximum's
    half-and-half split at a tie and softplus' unit slope above its threshold).
    """
    pred = monotone(raw)
    d = target[:, None] - pred
    q = qs[None, :].astype(np.float32)
    g = np.where(d > 0, -q, np.where(d < 0, 1.0 - q, 0.5 - q)).astype(np.float32) / np.float32(d.size)
    tail = np.cumsum(g[:, ::-1], 1)[:, ::-1]  # sum over k >= j of dL/dpred_k
    slope = np.where(raw[:, 1:] > SOFTPLUS_THRESHOLD, 1.0, 1.0 / (1.0 + np.exp(-raw[:, 1:].astype(np.float64))))
    g_raw = np.concatenate([tail[:, :1], tail[:, 1:] * slope.astype(np.float32)], 1)
    return (g_raw.T @ hid).astype(np.float32), g_raw.sum(0).astype(np.float32)
