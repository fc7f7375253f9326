"""The README's figures: bench/bench_figure.py from a bench output folder, and the suites' figures."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from tidal.bench.fairshare import Scenario, Tenant, run
from tidal.bench.suites import fair_share, kv_ttl, placement

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(folder: Path, name: str, rows: list[dict[str, object]]) -> None:
    with (folder / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["policy", "slo_attainment", "gpu_hours_vs_oracle"])
        writer.writeheader()
        writer.writerows(rows)


def test_bench_figure_reads_every_setup_and_writes_a_png(tmp_path: Path) -> None:
    figure = _script("bench_figure")
    rows = [{"policy": "tidal", "slo_attainment": 0.995, "gpu_hours_vs_oracle": 1.2},
            {"policy": "oracle", "slo_attainment": 0.996, "gpu_hours_vs_oracle": 1.0},
            {"policy": "hpa", "slo_attainment": 0.1, "gpu_hours_vs_oracle": 0.5}]
    _cell(tmp_path, "8b-h100_agent_unified", rows)
    _cell(tmp_path, "70b-h100-tp4_agent_unified", rows)
    cells = figure.read_cells(tmp_path)
    assert set(cells) == {"8b-h100", "70b-h100-tp4"} and len(cells["8b-h100"]) == 3
    out = tmp_path / "img" / "bench.png"
    figure.plot(cells, out)
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_bench_figure_says_what_to_run_on_an_empty_folder(tmp_path: Path, capsys, monkeypatch) -> None:
    figure = _script("bench_figure")
    monkeypatch.setattr("sys.argv", ["bench_figure.py", str(tmp_path), str(tmp_path / "x.png")])
    assert figure.main() == 1
    assert "run tidal bench --out" in capsys.readouterr().err


def test_fair_share_plot(tmp_path: Path) -> None:
    tenants = (Tenant("a", 1.0, 1, (1,)), Tenant("b", 3.0, 0, (2,)))
    scenario = Scenario(tenants, np.array([[4, 6], [2, 8], [5, 5]]), capacity_gpus=8, replica_s_per_request=1.0)
    assert fair_share.figure_png(scenario, run(scenario)).startswith(PNG_MAGIC)


def test_placement_plot(tmp_path: Path) -> None:
    from tidal.bench.placement import Row

    rows = [Row("azure-conv", rule, "h100", cost, att, {"h100": 1.0}, 1.0)
            for rule, cost, att in (("tidal", 6.0, 1.0), ("h100-only", 6.2, 1.0), ("cheapest-only", 38.0, 0.93))]
    assert placement.figure_png(rows).startswith(PNG_MAGIC)


def test_kv_ttl_plot(tmp_path: Path) -> None:
    rows = [{"policy": "tidal", "net_benefit_tokens": 3.4e7}, {"policy": "fixed-300s", "net_benefit_tokens": -1.7e8},
            {"policy": "oracle", "net_benefit_tokens": 3.7e7}, {"policy": "lru", "net_benefit_tokens": 0.0}]
    assert kv_ttl.figure_png({"agent": rows, "mooncake": rows}).startswith(PNG_MAGIC)
