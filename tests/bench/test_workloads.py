"""Bench workloads: the ServeGen busiest-hour rule and trace loading from a --traces-dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.bench.workloads import SETUPS, TRACES, servegen_busiest_hour_s
from tidal.sim.traces import RateWindow


def _windows(rates: list[float]) -> list[RateWindow]:
    return [RateWindow(start_s=600.0 * i, rate_rps=r, cv=1.0, distribution=None, param1=0.0,
                       param2=0.0) for i, r in enumerate(rates)]


def test_busiest_hour_is_where_the_aggregate_peaks_within_day_one() -> None:
    quiet = [1.0] * 144
    a = _windows(quiet[:50] + [5.0] * 6 + quiet[56:] + [99.0] * 10)  # day-2 spike ignored
    b = _windows(quiet[:52] + [3.0] * 6 + quiet[58:])
    # hour sums: from window 50: 30 + 14 = 44; from 51: 26 + 16 = 42; from 52: 22 + 18 = 40
    assert servegen_busiest_hour_s([a, b]) == 600.0 * 50


def test_traces_load_from_a_private_folder_and_cut_to_a_duration(traces_dir: Path) -> None:
    whole = TRACES["azure-code"].load(traces_dir, 0)
    head = TRACES["azure-code"].load(traces_dir, 0, duration_s=60.0)
    assert 0 < len(head) < len(whole)
    assert all(r.arrival_s < 60.0 for r in head)


def test_every_setup_fits_both_pools_at_their_cap_on_its_cluster() -> None:
    for setup in SETUPS.values():
        assert 2 * setup.max_replicas_per_pool * setup.tp <= setup.nodes * 8
    for trace in TRACES.values():
        assert trace.slo.ttft_s > 0 and trace.slo.tpot_s > 0 and 0 < trace.slo.attainment <= 1


def test_perturbed_setups_run_the_same_cluster_on_a_slower_or_faster_engine() -> None:
    from tidal.bench.run import sim_config
    from tidal.bench.workloads import SETUPS, perturbed, setup_named

    slow, fast = perturbed("8b-h100", 0.4)
    assert setup_named(slow).engine_speed == pytest.approx(1 / 1.4, abs=1e-3)
    assert setup_named(fast).engine_speed == pytest.approx(1 / 0.6, abs=1e-3)
    assert setup_named(slow).max_replicas_per_pool == SETUPS["8b-h100"].max_replicas_per_pool
    assert sim_config(slow, "azure-conv", "unified", 0).engine.engine_speed == setup_named(slow).engine_speed
    assert sim_config("8b-h100", "azure-conv", "unified", 0).engine.engine_speed == 1.0
    with pytest.raises(ValueError, match="--perturb must be in"):
        perturbed("8b-h100", 1.0)
