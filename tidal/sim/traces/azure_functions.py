"""Azure Functions 2019 trace (500-function, one-day sample) and invocations sampled from it.

Files (source: Azure Public Dataset, CC-BY-4.0; sample prepared by the vHive
invitro project, MIT):

- ``inv.csv``: ``HashFunction,HashApp,HashOwner,minute_1..minute_1440``, the
  number of invocations of each function in each minute of the day.
- ``run.csv``: ``HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,
  percentile_Average_{0,1,25,50,75,99,100}``: execution time in milliseconds.
- ``mem.csv`` (optional): ``HashApp,HashOwner,SampleCount,AverageAllocatedMb,
  AverageAllocatedMb_pct{1,5,25,50,75,95,99,100}``, per app (memory is only
  recorded per app; in this sample every app has one function).

Every function in ``inv.csv`` needs a ``run.csv`` row (it could not be given a
run time otherwise) and every ``run.csv``/``mem.csv`` row must belong to a
function or app of ``inv.csv``; a mismatch is an error naming the row, so no
record is silently unused. Rows are matched by hash, not by position (the
three files list functions in different orders).

Sampling (``sample_function_arrays``/``sample_function_invocations``): the
trace records only per-minute counts, so the ``c`` invocations of a minute are
placed independently and uniformly inside it (seeded). Each invocation's run
time is drawn from its function's percentile table by inverse-CDF sampling on
the piecewise-linear CDF through the recorded points
``(0, p0), (0.01, p1), (0.25, p25), (0.5, p50), (0.75, p75), (0.99, p99), (1, p100)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tidal.sim.traces.errors import TraceFormatError
from tidal.sim.traces.parsing import csv_rows, nonnegative_float
from tidal.sim.traces.records import FunctionInvocation, FunctionSpec

SECONDS_PER_MINUTE = 60.0
MS_PER_S = 1000.0
ID_COLUMNS = ("HashFunction", "HashApp", "HashOwner")
RUN_PERCENTILES = (0, 1, 25, 50, 75, 99, 100)
RUN_COLUMNS = (
    *ID_COLUMNS,
    "Count",
    "Average",
    "Minimum",
    "Maximum",
    *(f"percentile_Average_{q}" for q in RUN_PERCENTILES),
)
MEM_PERCENTILES = (1, 5, 25, 50, 75, 95, 99, 100)
MEM_COLUMNS = (
    "HashApp",
    "HashOwner",
    "SampleCount",
    "AverageAllocatedMb",
    *(f"AverageAllocatedMb_pct{q}" for q in MEM_PERCENTILES),
)


def load_azure_functions(
    folder: str | Path,
) -> tuple[list[FunctionSpec], dict[str, np.ndarray]]:
    """Read ``inv.csv``, ``run.csv`` and (if present) ``mem.csv`` from ``folder``.

    Returns the functions in ``inv.csv`` order and, per function id, its
    per-minute invocation counts (``int64``, index 0 is ``minute_1``).
    """
    folder = Path(folder)
    counts, apps = _invocations(folder / "inv.csv")
    durations = _run_percentiles(folder / "run.csv", set(counts))
    missing_run = [f for f in counts if f not in durations]
    if missing_run:
        raise TraceFormatError(
            folder / "run.csv",
            None,
            "HashFunction",
            f"a row for every function of inv.csv; {len(missing_run)} missing, e.g.",
            missing_run[0],
        )
    mem_path = folder / "mem.csv"
    memory = _memory_percentiles(mem_path, set(apps.values())) if mem_path.exists() else {}
    specs = [
        FunctionSpec(
            function_id=function_id,
            duration_percentiles_ms=durations[function_id],
            memory_percentiles_mb=memory.get(apps[function_id]),
        )
        for function_id in counts
    ]
    return specs, counts


def _invocations(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    header = _header(path)
    minutes = len(header) - len(ID_COLUMNS)
    expected = (*ID_COLUMNS, *(f"minute_{m}" for m in range(1, minutes + 1)))
    if minutes < 1 or tuple(header) != expected:
        raise TraceFormatError(
            path,
            1,
            None,
            "the header HashFunction,HashApp,HashOwner,minute_1,...,minute_N",
            ",".join(header),
        )
    counts: dict[str, np.ndarray] = {}
    apps: dict[str, str] = {}
    for line, fields in csv_rows(path, expected, header=True):
        function_id = _id(fields[0], path, line, "HashFunction")
        if function_id in counts:
            raise TraceFormatError(path, line, "HashFunction", "each function once", function_id)
        values = fields[len(ID_COLUMNS) :]
        if not all(v.isascii() and v.isdigit() for v in values):
            bad = next(i for i, v in enumerate(values) if not (v.isascii() and v.isdigit()))
            raise TraceFormatError(
                path, line, f"minute_{bad + 1}", "a non-negative integer count", values[bad]
            )
        counts[function_id] = np.fromiter(map(int, values), dtype=np.int64, count=minutes)
        apps[function_id] = _id(fields[1], path, line, "HashApp")
    if not counts:
        raise TraceFormatError(path, None, None, "at least one function row")
    return counts, apps


def _run_percentiles(path: Path, functions: set[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line, fields in csv_rows(path, RUN_COLUMNS, header=True):
        function_id = _id(fields[0], path, line, "HashFunction")
        if function_id not in functions:
            raise TraceFormatError(
                path, line, "HashFunction", "a function listed in inv.csv", function_id
            )
        if function_id in out:
            raise TraceFormatError(path, line, "HashFunction", "each function once", function_id)
        for column, text in zip(RUN_COLUMNS[3:7], fields[3:7], strict=True):
            nonnegative_float(text, path, line, column)
        out[function_id] = _percentile_table(
            path, line, RUN_COLUMNS[7:], fields[7:], RUN_PERCENTILES
        )
    return out


def _memory_percentiles(path: Path, apps: set[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line, fields in csv_rows(path, MEM_COLUMNS, header=True):
        app = _id(fields[0], path, line, "HashApp")
        if app not in apps:
            raise TraceFormatError(path, line, "HashApp", "an app listed in inv.csv", app)
        if app in out:
            raise TraceFormatError(path, line, "HashApp", "each app once", app)
        for column, text in zip(MEM_COLUMNS[2:4], fields[2:4], strict=True):
            nonnegative_float(text, path, line, column)
        out[app] = _percentile_table(path, line, MEM_COLUMNS[4:], fields[4:], MEM_PERCENTILES)
    return out


def _percentile_table(
    path: Path, line: int, columns: Sequence[str], texts: Sequence[str], quantiles: Sequence[int]
) -> dict[str, float]:
    table: dict[str, float] = {}
    previous = 0.0
    for column, text, q in zip(columns, texts, quantiles, strict=True):
        value = nonnegative_float(text, path, line, column)
        if value < previous:
            raise TraceFormatError(
                path, line, column, f"a percentile >= the previous one ({previous:g})", text
            )
        table[f"p{q}"] = previous = value
    return table


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig") as handle:
        return handle.readline().rstrip("\r\n").split(",")


def _id(text: str, path: Path, line: int, column: str) -> str:
    if not text or text != text.strip():
        raise TraceFormatError(path, line, column, "a non-empty hash", text)
    return text


@dataclass(frozen=True)
class FunctionArrivals:
    """Sampled invocations as parallel arrays (sorted by arrival), for large replays.

    ``function_index[i]`` indexes the ``specs`` the arrays were sampled from.
    A full day of the 500-function sample is 6.9 million invocations; as arrays
    that is ~140 MB, as ``FunctionInvocation`` objects several times more.
    """

    arrival_s: np.ndarray
    function_index: np.ndarray
    duration_s: np.ndarray


def sample_function_arrays(
    specs: Sequence[FunctionSpec],
    counts: dict[str, np.ndarray],
    *,
    seed: int,
    start_minute: int = 0,
    minutes: int | None = None,
) -> FunctionArrivals:
    """Invocations of minutes ``[start_minute, start_minute + minutes)``, time 0 at ``start_minute``.

    Minute indices are 0-based (``minute_1`` of the file is minute 0). Each
    function draws from its own generator seeded by ``(seed, its position)``.
    """
    day_minutes = _common_length(specs, counts)
    if not 0 <= start_minute < day_minutes:
        raise ValueError(f"start_minute must be in [0, {day_minutes}), got {start_minute}")
    end_minute = day_minutes if minutes is None else start_minute + minutes
    if minutes is not None and (minutes < 1 or end_minute > day_minutes):
        raise ValueError(
            f"minutes must be >= 1 and end by minute {day_minutes}, got {minutes} "
            f"from start_minute {start_minute}"
        )
    times: list[np.ndarray] = []
    indices: list[np.ndarray] = []
    durations: list[np.ndarray] = []
    for index, spec in enumerate(specs):
        per_minute = counts[spec.function_id][start_minute:end_minute]
        total = int(per_minute.sum())
        if total == 0:
            continue
        rng = np.random.default_rng((seed, index))
        minute_of_each = np.repeat(np.arange(len(per_minute), dtype=np.float64), per_minute)
        times.append((minute_of_each + rng.random(total)) * SECONDS_PER_MINUTE)
        indices.append(np.full(total, index, dtype=np.int32))
        durations.append(sample_durations_s(spec, rng, total))
    if not times:
        empty = np.empty(0)
        return FunctionArrivals(empty, np.empty(0, dtype=np.int32), empty)
    all_times = np.concatenate(times)
    order = np.argsort(all_times, kind="stable")
    return FunctionArrivals(
        all_times[order], np.concatenate(indices)[order], np.concatenate(durations)[order]
    )


def sample_function_invocations(
    specs: Sequence[FunctionSpec],
    counts: dict[str, np.ndarray],
    *,
    seed: int,
    start_minute: int = 0,
    minutes: int | None = None,
) -> list[FunctionInvocation]:
    """Like ``sample_function_arrays`` but as records; prefer arrays for whole-day replays."""
    arrays = sample_function_arrays(
        specs, counts, seed=seed, start_minute=start_minute, minutes=minutes
    )
    ids = [spec.function_id for spec in specs]
    return [
        FunctionInvocation(arrival_s=t, function_id=ids[i], duration_s=d)
        for t, i, d in zip(
            arrays.arrival_s.tolist(),
            arrays.function_index.tolist(),
            arrays.duration_s.tolist(),
            strict=True,
        )
    ]


def sample_durations_s(spec: FunctionSpec, rng: np.random.Generator, count: int) -> np.ndarray:
    """Run times (seconds) by inverse-CDF sampling of the function's percentile table."""
    quantiles, values_ms = percentile_points(spec.duration_percentiles_ms)
    return np.interp(rng.random(count), quantiles, values_ms) / MS_PER_S


def percentile_points(table: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """``{"p0": a, "p50": b, ...}`` as sorted (quantile in [0, 1], value) arrays."""
    points = sorted((float(key[1:]) / 100.0, value) for key, value in table.items())
    quantiles = np.array([q for q, _ in points])
    values = np.array([v for _, v in points])
    return quantiles, values


def _common_length(specs: Sequence[FunctionSpec], counts: dict[str, np.ndarray]) -> int:
    missing = [s.function_id for s in specs if s.function_id not in counts]
    if missing:
        raise ValueError(f"no per-minute counts for {len(missing)} function(s), e.g. {missing[0]}")
    lengths = {len(counts[s.function_id]) for s in specs}
    if len(lengths) != 1:
        raise ValueError(f"per-minute count arrays differ in length: {sorted(lengths)}")
    return lengths.pop()
