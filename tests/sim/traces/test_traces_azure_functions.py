"""Azure Functions 2019: loading the three files, malformed rows, and sampled invocations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from traces_testkit import real_traces

from tidal.sim.traces import (
    FunctionSpec,
    TraceFormatError,
    load_azure_functions,
    load_function_trace,
    sample_function_arrays,
    sample_function_invocations,
)
from tidal.sim.traces.azure_functions import sample_durations_s

RUN_HEADER = (
    "HashFunction,HashApp,HashOwner,Count,Average,Minimum,Maximum,percentile_Average_0,"
    "percentile_Average_1,percentile_Average_25,percentile_Average_50,percentile_Average_75,"
    "percentile_Average_99,percentile_Average_100\n"
)
MEM_HEADER = (
    "HashApp,HashOwner,SampleCount,AverageAllocatedMb,AverageAllocatedMb_pct1,"
    "AverageAllocatedMb_pct5,AverageAllocatedMb_pct25,AverageAllocatedMb_pct50,"
    "AverageAllocatedMb_pct75,AverageAllocatedMb_pct95,AverageAllocatedMb_pct99,"
    "AverageAllocatedMb_pct100\n"
)


def make_folder(tmp_path: Path, inv_rows=None, run_rows=None, mem_rows=None) -> Path:
    """A 3-minute, two-function trace; any file's rows can be replaced to break it."""
    inv = inv_rows or ["fa,fa,fa,2,0,1", "fb,fb,fb,0,3,0"]
    run = run_rows or [
        "fa,fa,fa,3,100,90,110,90,90,95,100,105,110,110",
        "fb,fb,fb,3,1000,900,1100,900,900,950,1000,1050,1100,1100",
    ]
    mem = mem_rows or ["fa,fa,3,128,120,121,122,128,130,131,132,133"]
    (tmp_path / "inv.csv").write_text(
        "HashFunction,HashApp,HashOwner,minute_1,minute_2,minute_3\n" + "\n".join(inv) + "\n"
    )
    (tmp_path / "run.csv").write_text(RUN_HEADER + "\n".join(run) + "\n")
    (tmp_path / "mem.csv").write_text(MEM_HEADER + "\n".join(mem) + "\n")
    return tmp_path


def test_real_sample_has_500_functions_over_one_day() -> None:
    real_traces()
    specs, counts = load_function_trace()
    assert len(specs) == 500
    assert {len(c) for c in counts.values()} == {1440}
    assert sum(int(c.sum()) for c in counts.values()) == 6_911_957
    first = specs[0]
    assert first.function_id.startswith("c7a3df2a")
    assert first.duration_percentiles_ms == {
        "p0": 265.0,
        "p1": 265.0,
        "p25": 265.0,
        "p50": 265.0,
        "p75": 466.0,
        "p99": 466.0,
        "p100": 466.0,
    }
    assert all(s.memory_percentiles_mb is not None for s in specs)
    assert counts[first.function_id][:4].tolist() == [2, 0, 3, 2]


def test_real_sample_one_hour_keeps_every_invocation() -> None:
    real_traces()
    specs, counts = load_function_trace()
    invocations = sample_function_invocations(specs, counts, seed=0, start_minute=600, minutes=60)
    assert len(invocations) == sum(int(c[600:660].sum()) for c in counts.values())
    assert all(0.0 <= inv.arrival_s < 3600.0 for inv in invocations)


def test_small_folder_loads_and_joins_by_hash(tmp_path) -> None:
    specs, counts = load_azure_functions(make_folder(tmp_path))
    assert [s.function_id for s in specs] == ["fa", "fb"]
    assert counts["fb"].tolist() == [0, 3, 0]
    assert specs[1].duration_percentiles_ms["p50"] == 1000.0
    assert specs[0].memory_percentiles_mb["p50"] == 128.0
    assert specs[1].memory_percentiles_mb is None  # app fb has no memory row


def test_invocations_land_in_their_minute_with_durations_in_range(tmp_path) -> None:
    specs, counts = load_azure_functions(make_folder(tmp_path))
    invocations = sample_function_invocations(specs, counts, seed=4)
    assert len(invocations) == 6
    by_function = {"fa": [], "fb": []}
    for inv in invocations:
        by_function[inv.function_id].append(inv)
    assert sorted(int(i.arrival_s // 60) for i in by_function["fa"]) == [0, 0, 2]
    assert [int(i.arrival_s // 60) for i in by_function["fb"]] == [1, 1, 1]
    assert all(0.09 <= i.duration_s <= 0.11 for i in by_function["fa"])
    assert all(0.9 <= i.duration_s <= 1.1 for i in by_function["fb"])
    assert [i.arrival_s for i in invocations] == sorted(i.arrival_s for i in invocations)


def test_window_is_rebased_and_seeded(tmp_path) -> None:
    specs, counts = load_azure_functions(make_folder(tmp_path))
    window = sample_function_invocations(specs, counts, seed=1, start_minute=1, minutes=2)
    assert len(window) == 4
    assert all(0.0 <= i.arrival_s < 120.0 for i in window)
    assert window == sample_function_invocations(specs, counts, seed=1, start_minute=1, minutes=2)
    assert window != sample_function_invocations(specs, counts, seed=2, start_minute=1, minutes=2)
    with pytest.raises(ValueError, match="minutes"):
        sample_function_invocations(specs, counts, seed=1, start_minute=1, minutes=5)


def test_durations_follow_the_percentile_table() -> None:
    spec = FunctionSpec(
        "f",
        {"p0": 0, "p1": 10, "p25": 100, "p50": 200, "p75": 300, "p99": 1000, "p100": 5000},
        None,
    )
    durations_ms = sample_durations_s(spec, np.random.default_rng(0), 200_000) * 1000
    assert np.median(durations_ms) == pytest.approx(200, rel=0.02)
    assert np.percentile(durations_ms, 25) == pytest.approx(100, rel=0.03)
    assert np.mean(durations_ms <= 1000) == pytest.approx(0.99, abs=0.002)
    assert durations_ms.min() >= 0 and durations_ms.max() <= 5000


@pytest.mark.parametrize(
    ("file", "rows", "where", "expected"),
    [
        (
            "inv",
            ["fa,fa,fa,2,x,1", "fb,fb,fb,0,3,0"],
            "inv.csv line 2, column minute_2",
            "non-negative integer",
        ),
        (
            "inv",
            ["fa,fa,fa,2,-1,1", "fb,fb,fb,0,3,0"],
            "inv.csv line 2, column minute_2",
            "non-negative integer",
        ),
        ("inv", ["fa,fa,fa,2,0", "fb,fb,fb,0,3,0"], "inv.csv line 2", "6 comma-separated"),
        (
            "inv",
            ["fa,fa,fa,2,0,1", "fa,fa,fa,0,3,0"],
            "inv.csv line 3, column HashFunction",
            "each function once",
        ),
        (
            "run",
            ["fa,fa,fa,3,100,90,110,90,90,95,100,105,110,110"],
            "run.csv, column HashFunction",
            "every function",
        ),
        (
            "run",
            [
                "fa,fa,fa,3,100,90,110,90,90,95,100,105,110,110",
                "fb,fb,fb,3,1000,900,1100,900,900,950,abc,1050,1100,1100",
            ],
            "run.csv line 3, column percentile_Average_50",
            "non-negative number",
        ),
        (
            "run",
            [
                "fa,fa,fa,3,100,90,110,90,90,95,100,105,110,110",
                "fb,fb,fb,3,1000,900,1100,900,900,950,800,1050,1100,1100",
            ],
            "run.csv line 3, column percentile_Average_50",
            ">= the previous",
        ),
        (
            "run",
            [
                "fa,fa,fa,3,100,90,110,90,90,95,100,105,110,110",
                "fb,fb,fb,3,1000,900,1100,900,900,950,1000,1050,1100,1100",
                "fz,fz,fz,3,1,1,1,1,1,1,1,1,1,1",
            ],
            "run.csv line 4, column HashFunction",
            "listed in inv.csv",
        ),
        (
            "mem",
            ["fa,fa,3,128,120,121,122,128,130,131,132,-1"],
            "mem.csv line 2, column AverageAllocatedMb_pct100",
            "non-negative",
        ),
        (
            "mem",
            ["zz,zz,3,128,120,121,122,128,130,131,132,133"],
            "mem.csv line 2, column HashApp",
            "listed in inv.csv",
        ),
    ],
)
def test_malformed_rows_name_file_line_and_column(tmp_path, file, rows, where, expected) -> None:
    folder = make_folder(tmp_path, **{f"{file}_rows": rows})
    with pytest.raises(TraceFormatError) as caught:
        load_azure_functions(folder)
    assert str(caught.value).startswith(where)
    assert expected in str(caught.value)


def test_bad_inv_header_is_rejected(tmp_path) -> None:
    folder = make_folder(tmp_path)
    (folder / "inv.csv").write_text("HashFunction,HashApp,HashOwner,minute_1,minute_3\n")
    with pytest.raises(TraceFormatError, match="inv.csv line 1"):
        load_azure_functions(folder)


@settings(max_examples=50, deadline=None)
@given(
    per_minute=st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=30),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_every_counted_invocation_is_sampled_inside_its_minute(per_minute, seed) -> None:
    spec = FunctionSpec("f", {"p0": 1, "p50": 2, "p100": 3}, None)
    counts = {"f": np.array(per_minute, dtype=np.int64)}
    arrays = sample_function_arrays([spec], counts, seed=seed)
    assert len(arrays.arrival_s) == sum(per_minute)
    minute_of_each = np.floor(arrays.arrival_s / 60.0).astype(int)
    assert np.bincount(minute_of_each, minlength=len(per_minute)).tolist() == per_minute
    assert np.all(np.diff(arrays.arrival_s) >= 0)
