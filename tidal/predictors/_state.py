"""Exact, compact JSON encodings of arrays for predictor state.

Arrays travel as base64 of their little-endian bytes plus dtype and shape, so a
round trip through JSON restores every bit (floats printed in decimal would be
exact too, but three times larger).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

STATE_VERSION = 1


def encode_array(a: np.ndarray) -> dict[str, Any]:
    arr = np.ascontiguousarray(a)
    dt = arr.dtype.newbyteorder("<")
    return {
        "dtype": dt.str,
        "shape": list(arr.shape),
        "b64": base64.b64encode(arr.astype(dt, copy=False).tobytes()).decode("ascii"),
    }


def decode_array(d: dict[str, Any]) -> np.ndarray:
    try:
        raw = base64.b64decode(d["b64"])
        return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"predictor state: bad array field ({e}); was it written by tidal?") from e


def check_kind(state: dict[str, Any], kind: str) -> None:
    """Refuse to restore state written for another predictor or a newer format."""
    if not isinstance(state, dict):
        raise ValueError(f"predictor state: expected a dict, got {type(state).__name__}")
    if state.get("kind") != kind:
        raise ValueError(f"predictor state: kind is {state.get('kind')!r}, expected {kind!r}")
    if state.get("version") != STATE_VERSION:
        raise ValueError(
            f"predictor state: version {state.get('version')!r} unsupported "
            f"(this build reads {STATE_VERSION}); discard the state to relearn"
        )
