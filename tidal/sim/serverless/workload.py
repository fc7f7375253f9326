"""The workload of a serverless replay: which functions, their memory, and their invocations.

Built from the Azure Functions 2019 sample (``tidal.sim.traces``): ``--functions N``
picks N functions (seeded random sample by default, or the busiest, or the
first in file order), ``--minutes M`` a window of the day, and the trace's
seeded sampler places each minute's invocations and draws their run times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tidal.sim.traces import FunctionArrivals, FunctionSpec, sample_function_arrays

DEFAULT_MEMORY_MB = 170.0
"""Memory of a function whose app has no ``mem.csv`` row. Shahrad et al. (ATC'20,
"Serverless in the Wild", Section 3.5): half of the applications allocate at most
about 170 MB."""
MEMORY_PERCENTILE = "p50"
"""Instance memory is the app's median allocated memory (``AverageAllocatedMb_pct50``)."""

SELECT_RANDOM = "random"
SELECT_TOP = "top"
SELECT_FIRST = "first"
SELECTIONS = (SELECT_RANDOM, SELECT_TOP, SELECT_FIRST)


@dataclass(frozen=True)
class FunctionWorkload:
    """Functions (names and memory) and their invocations as parallel arrays sorted by arrival.

    ``function_index[i]`` indexes ``function_ids``/``memory_mb``. Invocations that
    arrive before ``measure_from_s`` (a warm-up that gives policies history) are
    replayed but not counted in the results; cost is counted in
    ``[measure_from_s, horizon_s)``.
    """

    function_ids: tuple[str, ...]
    memory_mb: np.ndarray
    arrival_s: np.ndarray
    function_index: np.ndarray
    duration_s: np.ndarray
    horizon_s: float
    measure_from_s: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if len(self.function_index) != n or len(self.duration_s) != n:
            raise ValueError("arrival_s, function_index and duration_s must have equal length")
        if n and np.any(np.diff(self.arrival_s) < 0):
            raise ValueError("arrival_s must be sorted")
        if n and self.arrival_s[-1] >= self.horizon_s:
            raise ValueError(f"every arrival must be before horizon_s ({self.horizon_s} s), "
                             f"got {self.arrival_s[-1]}")
        if not 0.0 <= self.measure_from_s < self.horizon_s:
            raise ValueError(f"measure_from_s must be in [0, horizon_s), got {self.measure_from_s}")
        if np.any(self.duration_s < 0):
            raise ValueError("duration_s must be >= 0")
        if len(self.memory_mb) != len(self.function_ids):
            raise ValueError("memory_mb needs one value per function")

    @property
    def invocations(self) -> int:
        return len(self.arrival_s)


def memory_of(spec: FunctionSpec) -> float:
    """Instance memory (MB) of a function: its app's median, or the documented default."""
    table = spec.memory_percentiles_mb
    if not table:
        return DEFAULT_MEMORY_MB
    return float(table.get(MEMORY_PERCENTILE, DEFAULT_MEMORY_MB))


def select_functions(specs: Sequence[FunctionSpec], counts: Mapping[str, np.ndarray], n: int,
                     *, how: str, seed: int, start_minute: int, minutes: int) -> list[FunctionSpec]:
    """``n`` functions: a seeded random sample, the busiest in the window, or the first ``n``."""
    if n < 1:
        raise ValueError(f"--functions must be >= 1, got {n}")
    if how not in SELECTIONS:
        raise ValueError(f"select must be one of {', '.join(SELECTIONS)}, got {how!r}")
    n = min(n, len(specs))
    if how == SELECT_FIRST:
        return list(specs[:n])
    if how == SELECT_TOP:
        window = [int(counts[s.function_id][start_minute:start_minute + minutes].sum())
                  for s in specs]
        order = sorted(range(len(specs)), key=lambda i: (-window[i], i))
        return [specs[i] for i in sorted(order[:n])]
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(specs), size=n, replace=False))
    return [specs[int(i)] for i in picked]


def workload_from_trace(specs: Sequence[FunctionSpec], counts: Mapping[str, np.ndarray], *,
                        functions: int, minutes: int, seed: int, start_minute: int = 0,
                        select: str = SELECT_RANDOM, warmup_minutes: int = 0) -> FunctionWorkload:
    """Invocations of the chosen functions in ``[start_minute, start_minute + minutes)``.

    ``warmup_minutes`` more minutes before ``start_minute`` are replayed first and
    left out of the results (time 0 is then the start of the warm-up). Functions
    are chosen on the measured minutes.
    """
    if warmup_minutes < 0 or warmup_minutes > start_minute:
        raise ValueError(f"warm-up must be in [0, start minute {start_minute}], "
                         f"got {warmup_minutes}; start later or warm up less")
    chosen = select_functions(specs, counts, functions, how=select, seed=seed,
                              start_minute=start_minute, minutes=minutes)
    arrays: FunctionArrivals = sample_function_arrays(
        chosen, dict(counts), seed=seed, start_minute=start_minute - warmup_minutes,
        minutes=minutes + warmup_minutes)
    return FunctionWorkload(
        function_ids=tuple(s.function_id for s in chosen),
        memory_mb=np.array([memory_of(s) for s in chosen], dtype=float),
        arrival_s=arrays.arrival_s, function_index=arrays.function_index.astype(np.int64),
        duration_s=arrays.duration_s, horizon_s=(minutes + warmup_minutes) * 60.0,
        measure_from_s=warmup_minutes * 60.0)


def load_workload(folder: str | Path | None, *, functions: int, minutes: int, seed: int,
                  start_minute: int = 0, select: str = SELECT_RANDOM,
                  warmup_minutes: int = 0) -> FunctionWorkload:
    """Load the Azure Functions sample (``folder`` or ``../shared``) and sample a workload."""
    from tidal.sim.traces import load_azure_functions, load_function_trace

    specs, counts = (load_function_trace() if folder is None
                     else load_azure_functions(Path(folder)))
    return workload_from_trace(specs, counts, functions=functions, minutes=minutes, seed=seed,
                               start_minute=start_minute, select=select,
                               warmup_minutes=warmup_minutes)
