"""The keep-alive Pareto sweep: families, a tiny replay, fronts, the dominance rows and the figure."""

from __future__ import annotations

import pytest

from tests.sim.traces.traces_testkit import real_traces
from tidal.bench.keepalive_sweep import (TIDAL, SweepOptions, build, dominance, figure_png, fronts_of, jobs,
                                         sweep)
from tidal.sim.serverless import FunctionSimConfig

TINY = SweepOptions(functions=5, minutes=5, start=30, warmup=30)


def _point(family: str, knob: float, idle: float, cold: float) -> dict:
    return {"family": family, "knob": knob, "name": f"{family}-{knob:g}", "idle_gb_s": idle,
            "cold_start_ratio": cold, "cold_starts": int(cold * 1000), "gb_hours": 1.0}


def test_an_unknown_family_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="hybrid, tidal, tidal-fixed-floor"):
        build("tidal-typo", 750.0, FunctionSimConfig())


def test_jobs_are_the_hybrid_percentiles_and_tidal_prices_and_variants_on_demand() -> None:
    base = jobs(TINY, tidal_prices=(750.0,), hybrid_percentiles=(99.0,))
    assert [(f, k) for f, k, _ in base] == [("hybrid", 99.0), ("tidal", 750.0)]
    assert {f for f, _, _ in jobs(TINY, variants=True)} >= {"tidal-trust5", "tidal-floor-rank1"}


def test_dominance_is_judged_on_tidal_defaults_only() -> None:
    points = [_point("hybrid", 50, 10.0, 0.02), _point("hybrid", 99, 20.0, 0.01),
              _point("tidal", 750, 9.0, 0.015), _point("tidal-trust5", 6000, 19.0, 0.001)]
    fronts = fronts_of(points)
    assert [p["name"] for p in fronts[TIDAL]] == ["tidal-750", "tidal-trust5-6000"]
    rows = dominance(points, fronts)
    assert [r["below"] for r in rows] == [True, False], "the variant's point does not count"
    assert figure_png(points, fronts).startswith(b"\x89PNG")


def test_a_tiny_sweep_replays_each_point() -> None:
    real_traces()
    points = sweep(jobs(TINY, tidal_prices=(750.0,), hybrid_percentiles=(99.0,)), workers=1)
    assert [p["name"] for p in points] == ["hybrid-p99", "tidal-750GBs"]
    assert all(p["invocations"] > 0 and 0 <= p["cold_start_ratio"] <= 1 and p["idle_gb_s"] >= 0 for p in points)


def test_the_suite_reports_the_points_the_budgets_and_the_target(monkeypatch: pytest.MonkeyPatch) -> None:
    from tidal.bench.suites import SuiteOptions, keep_alive

    real_traces()
    monkeypatch.setattr(keep_alive, "QUICK", TINY)
    monkeypatch.setattr(keep_alive, "jobs", lambda o: jobs(o, tidal_prices=(750.0, 12000.0),
                                                           hybrid_percentiles=(50.0, 99.0)))
    result = keep_alive.run(SuiteOptions(quick=True, workers=1))
    assert "| tidal-12000GBs |" in result.markdown and "| hybrid-p50 |" in result.markdown
    assert len(result.targets) == 1 and " budgets" in result.targets[0].detail
    assert result.data["options"]["functions"] == TINY.functions
    assert result.figure_png is not None and result.figure_png.startswith(b"\x89PNG")
