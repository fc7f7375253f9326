"""Cold-start predictor: how long until a new replica serves, per phase and in total.

A replica start is observed as four phases: scheduling wait, image pull,
weights load, engine init. Each observation is filed under three keys of
increasing generality: its node, its accelerator class, and global, each split
by (image cached, weights cached), since a warm cache changes the distribution
rather than shifting it. A prediction uses the most specific key with enough
observations (node -> accelerator class -> global -> prior).

Weights-load time is stored per GB of weights and scaled back by the queried
model size (loading is bandwidth-bound); the other phases are stored as
measured. Phases are kept together as rows so the total's quantiles come from
actual sums, with the phases' correlation intact. Recent observations weigh
more (exponential decay by observation count), and every table is bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tidal.predictors._state import STATE_VERSION, check_kind, decode_array, encode_array

PHASES = ("scheduling", "image_pull", "weights_load", "engine_init")
_WEIGHTS = PHASES.index("weights_load")

MAX_SAMPLES_PER_KEY = 64  # newest rows kept per key
HALF_LIFE_OBSERVATIONS = 32.0  # a row's weight halves every 32 newer rows under its key
MIN_SAMPLES = 5  # rows a key needs before it is trusted over its parent
MAX_NODE_KEYS = 512  # node keys beyond this evict the least recently updated
MAX_CLASS_KEYS = 128

# Prior (median_s, p90_s) per phase and cache state, used until the global key
# has MIN_SAMPLES rows. These are assumptions, stated so they can be checked:
# - scheduling: Kubernetes SIG Scalability's pod-startup SLO is p99 <= 5 s for
#   stateless pods excluding image pull; GPU pods often wait longer, hence p90 10 s.
# - image pull, uncached: an LLM serving image of ~10 GB at ~100 MB/s effective
#   registry throughput is ~100 s; cached: the kubelet only checks the digest.
# - weights load, per GB: ~1 GB/s from network storage uncached (1 s/GB), page
#   cache or local NVMe ~4 GB/s when cached (0.25 s/GB).
# - engine init: memory profiling, KV-cache allocation and CUDA-graph capture in
#   vLLM, tens of seconds.
PRIOR_MEDIAN_P90_S = {
    ("scheduling", False): (2.0, 10.0),
    ("scheduling", True): (2.0, 10.0),
    ("image_pull", False): (100.0, 240.0),
    ("image_pull", True): (0.5, 2.0),
    ("weights_load", False): (1.0, 3.0),  # per GB
    ("weights_load", True): (0.25, 0.75),  # per GB
    ("engine_init", False): (40.0, 90.0),
    ("engine_init", True): (40.0, 90.0),
}
_PRIOR_ROWS = 64
_Z90 = 1.2815515655446004


@dataclass(frozen=True)
class StartContext:
    """Where and what a replica would start: the predictor's features."""

    accelerator_class: str
    node: str | None
    image_cached: bool
    weights_cached: bool
    model_size_gb: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.model_size_gb) and self.model_size_gb > 0):
            raise ValueError(f"model_size_gb: must be > 0, got {self.model_size_gb!r}")
        if not self.accelerator_class:
            raise ValueError("accelerator_class: must be a non-empty AcceleratorClass name")


@dataclass(frozen=True)
class StartPhases:
    """Measured duration of each phase of one replica start, in seconds."""

    scheduling_s: float
    image_pull_s: float
    weights_load_s: float
    engine_init_s: float

    def as_array(self) -> np.ndarray:
        a = np.array([self.scheduling_s, self.image_pull_s, self.weights_load_s, self.engine_init_s], dtype=float)
        for name, v in zip(PHASES, a):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}_s: a phase duration must be finite and >= 0, got {v!r}")
        return a


@dataclass(frozen=True)
class ColdStartPrediction:
    """Quantiles per phase and of the total, and which key they came from."""

    quantiles: tuple[float, ...]
    phases_s: dict[str, tuple[float, ...]]
    total_s: tuple[float, ...]
    source: str  # "node", "accelerator_class", "global" or "prior"
    n_samples: int


class _Rows:
    """Bounded ring of phase rows under one key."""

    def __init__(self) -> None:
        self.rows = np.zeros((MAX_SAMPLES_PER_KEY, len(PHASES)))
        self.n = 0  # rows ever added
        self.touched = 0  # global sequence number of the last update (for eviction)

    def add(self, row: np.ndarray, seq: int) -> None:
        self.rows[self.n % MAX_SAMPLES_PER_KEY] = row
        self.n += 1
        self.touched = seq

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and weights, newest weighing 1."""
        k = min(self.n, MAX_SAMPLES_PER_KEY)
        idx = (self.n - 1 - np.arange(k)) % MAX_SAMPLES_PER_KEY  # newest first
        w = 0.5 ** (np.arange(k) / HALF_LIFE_OBSERVATIONS)
        return self.rows[idx], w


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Quantiles of a weighted sample (interpolating the weighted empirical CDF at mid-weights)."""
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cw = (np.cumsum(ws) - 0.5 * ws) / ws.sum()
    return np.interp(qs, cw, xs)


def _prior_rows(image_cached: bool, weights_cached: bool) -> np.ndarray:
    """Comonotone pseudo-rows from the lognormal priors (a conservative total)."""
    from tidal.predictors.quantiles import norm_ppf

    z = norm_ppf((np.arange(_PRIOR_ROWS) + 0.5) / _PRIOR_ROWS)
    cols = []
    for p in PHASES:
        cached = weights_cached if p == "weights_load" else image_cached
        med, p90 = PRIOR_MEDIAN_P90_S[(p, cached)]
        cols.append(med * np.exp(math.log(p90 / med) / _Z90 * z))
    return np.stack(cols, 1)


class ColdStartPredictor:
    """Learns replica start phases; predicts their quantiles for a start context."""

    kind = "cold_start"

    def __init__(self) -> None:
        self._tables: dict[str, dict[tuple, _Rows]] = {"node": {}, "accelerator_class": {}, "global": {}}
        self._seq = 0

    @staticmethod
    def _keys(ctx: StartContext) -> dict[str, tuple | None]:
        flags = (bool(ctx.image_cached), bool(ctx.weights_cached))
        return {
            "node": (ctx.node,) + flags if ctx.node else None,
            "accelerator_class": (ctx.accelerator_class,) + flags,
            "global": flags,
        }

    def observe(self, ctx: StartContext, phases: StartPhases) -> None:
        row = phases.as_array()
        row[_WEIGHTS] /= ctx.model_size_gb
        self._seq += 1
        for level, key in self._keys(ctx).items():
            if key is None:
                continue
            table = self._tables[level]
            new = key not in table
            if new:
                table[key] = _Rows()
            table[key].add(row, self._seq)
            if new:
                self._evict(level)

    def _evict(self, level: str) -> None:
        cap = {"node": MAX_NODE_KEYS, "accelerator_class": MAX_CLASS_KEYS}.get(level)
        table = self._tables[level]
        if cap is not None and len(table) > cap:
            oldest = min(table, key=lambda k: table[k].touched)
            del table[oldest]

    def predict(self, ctx: StartContext, quantiles: tuple[float, ...] = (0.5, 0.9)) -> ColdStartPrediction:
        qs = np.asarray(quantiles, dtype=float)
        if qs.size == 0 or np.any((qs <= 0) | (qs >= 1)) or np.any(np.diff(qs) <= 0):
            raise ValueError(f"quantiles: need increasing levels strictly inside (0, 1), got {quantiles}")
        source, rows, w, n = "prior", None, None, 0
        for level, key in self._keys(ctx).items():
            if key is None:
                continue
            r = self._tables[level].get(key)
            if r is not None and r.n >= MIN_SAMPLES:
                rows, w = r.live()
                source, n = level, r.n
                break
        if rows is None:
            rows = _prior_rows(ctx.image_cached, ctx.weights_cached)
            w = np.ones(len(rows))
        rows = rows.copy()
        rows[:, _WEIGHTS] *= ctx.model_size_gb
        per_phase = {
            p: tuple(float(v) for v in np.maximum.accumulate(weighted_quantiles(rows[:, i], w, qs)))
            for i, p in enumerate(PHASES)
        }
        total = np.maximum.accumulate(weighted_quantiles(rows.sum(1), w, qs))
        return ColdStartPrediction(tuple(float(q) for q in qs), per_phase, tuple(float(v) for v in total), source, n)

    def to_state(self) -> dict[str, Any]:
        tables = {}
        for level, table in self._tables.items():
            tables[level] = [
                {"key": list(k), "n": r.n, "touched": r.touched, "rows": encode_array(r.rows[: min(r.n, MAX_SAMPLES_PER_KEY)])}
                for k, r in table.items()
            ]
        return {"version": STATE_VERSION, "kind": self.kind, "seq": self._seq, "tables": tables}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "ColdStartPredictor":
        check_kind(s, cls.kind)
        p = cls()
        p._seq = s["seq"]
        for level, entries in s["tables"].items():
            if level not in p._tables:
                raise ValueError(f"cold-start state: unknown level {level!r}")
            for e in entries:
                r = _Rows()
                rows = decode_array(e["rows"])
                r.rows[: len(rows)] = rows
                r.n, r.touched = e["n"], e["touched"]
                p._tables[level][tuple(e["key"])] = r
        return p
