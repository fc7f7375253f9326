"""The README's overview: attainment / GPU-hours vs the oracle per (trace, mode), n/a where a policy did not run."""

from __future__ import annotations

from tidal.bench.report import overview_table


def _row(policy: str, attainment: float, ratio: float) -> dict:
    return {"policy": policy, "slo_attainment": attainment, "gpu_hours_vs_oracle": ratio}


def test_overview_has_one_line_per_trace_and_mode_and_na_for_missing_policies() -> None:
    tables = {("8b", "agent", "unified"): [_row("tidal", 0.995, 1.2), _row("oracle", 0.998, 1.0)],
              ("8b", "agent", "disaggregated"): [_row("tidal", 1.0, 1.5), _row("heteroscale", 0.9, 3.0),
                                                 _row("oracle", 1.0, 1.0)],
              ("70b", "agent", "unified"): [_row("tidal", 0.5, 0.5)]}
    text = overview_table("8b", tables)
    lines = text.splitlines()
    assert lines[0] == "| trace, mode | tidal | oracle | heteroscale |"
    assert lines[2] == "| agent, unified | 99.50 % / 1.20x | 99.80 % / 1.00x | n/a |"
    assert lines[3] == "| agent, disaggregated | 100.00 % / 1.50x | 100.00 % / 1.00x | 90.00 % / 3.00x |"
    assert len(lines) == 4, "only the asked setup"
