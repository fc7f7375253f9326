"""The placement bench: every rule replays the same requests through the core, on the cluster it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.bench.placement import CLASSES, RULES, Row, markdown, run, verdict


@pytest.fixture(scope="module")
def rows(traces_dir: Path) -> list[Row]:
    return [run("azure-code", rule, copies=2, traces_dir=traces_dir) for rule in RULES]


def test_each_rule_runs_on_the_classes_it_names(rows: list[Row]) -> None:
    by = {r.rule: r for r in rows}
    assert by["h100-only"].classes == "h100" and set(by["h100-only"].gpu_hours_by_class) == {"h100"}
    assert by["cheapest-only"].classes == "l40s", "an L4 cannot meet the code trace's 50 ms TPOT even idle"
    for rule in ("tidal", "hourly-order"):
        assert by[rule].classes == "+".join(CLASSES)
        assert by[rule].gpu_hours_by_class["l4"] == 0.0, "never placed on a class that cannot meet the SLO"
    # hourly-order fills the L40S first; tidal the H100 (cheapest per goodput at these prices), then spills
    assert by["hourly-order"].gpu_hours_by_class["l40s"] > by["tidal"].gpu_hours_by_class["l40s"]
    assert by["tidal"].gpu_hours_by_class["h100"] > 0
    assert all(0.0 < r.attainment <= 1.0 and r.cost_per_hour > 0 for r in rows)


def test_the_verdict_and_table_report_every_rule(rows: list[Row]) -> None:
    met, lines = verdict(rows, "azure-code")
    assert isinstance(met, bool) and len(lines) == 3 and all(line.startswith("tidal vs ") for line in lines)
    table = markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "| azure-code | tidal |" in table
