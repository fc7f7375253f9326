"""Static peak meets the SLO on every peak window, and one replica fewer does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.bench.probe import WindowProbe, feasibility
from tidal.bench.run import sim_config
from tidal.bench.settings import ORACLE_WARMUP_S
from tidal.bench.static_peak import peak_windows, search_static_peak
from tidal.bench.workloads import TRACES


@pytest.mark.parametrize("mode", ["unified", "disaggregated"])
def test_static_peak_meets_the_slo_at_the_peak_and_is_the_fewest(traces_dir: Path,
                                                                mode: str) -> None:
    trace = TRACES["azure-code"]
    requests = trace.load(traces_dir, 0)
    config = sim_config("8b-h100", "azure-code", mode, 0)
    limits = feasibility(config, trace.slo, max(r.prompt_tokens for r in requests))
    peak = search_static_peak(requests, config, trace.slo, limits, min_replicas=1,
                              max_replicas=16)
    assert peak.met
    probe = WindowProbe(requests, config, trace.slo, limits, ORACLE_WARMUP_S)
    for start, end in peak.peak_windows:
        assert probe.score(start, end, peak.replicas).both_fraction >= trace.slo.attainment
    for pool, n in peak.replicas.items():
        if n > 1:
            fewer = {**peak.replicas, pool: n - 1}
            assert any(probe.score(start, end, fewer).both_fraction < trace.slo.attainment
                       for start, end in peak.peak_windows), pool
    assert max(peak.replicas.values()) > 1        # the burst needs more than one replica


def test_peak_windows_include_the_busiest_minute(traces_dir: Path) -> None:
    requests = TRACES["azure-code"].load(traces_dir, 0)
    windows = peak_windows(requests, interval_s=60.0, per_measure=1)
    counts = {w: sum(1 for r in requests if w[0] <= r.arrival_s < w[1]) for w in windows}
    assert max(counts.values()) == max(
        sum(1 for r in requests if k * 60 <= r.arrival_s < (k + 1) * 60) for k in range(3))
