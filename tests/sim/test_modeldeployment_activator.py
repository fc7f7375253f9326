"""The simulator's model of the activator in front of a ModelDeployment's entry (``tidal simulate -f``):
requests that find no ready replica path are held for the rest of the cold start, refused past the
queue limit or the hold timeout (counted, never run)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.sim.conftest import make_requests
from tidal.sim.modeldeployment import ModelDeploymentAutoscaler, load_manifests, prepare, sim_config
from tidal.sim.runner import Simulation
from tidal.sim.serverless.platform import ActivatorModel

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLASSES = EXAMPLES / "accelerator-classes.yaml"


def _from_zero(tmp_path: Path, mode: str = "unified") -> Path:
    """The scale-to-zero example with minReplicas 0: it starts at zero replicas."""
    doc = yaml.safe_load((EXAMPLES / "modeldeployment-scale-to-zero.yaml").read_text())
    if mode == "unified":
        doc["spec"]["pools"] = {"unified": {"minReplicas": 0, "maxReplicas": 2}}
    else:
        doc["spec"]["mode"] = "disaggregated"
        doc["spec"]["pools"] = {"prefill": {"minReplicas": 0, "maxReplicas": 2},
                                "decode": {"minReplicas": 0, "maxReplicas": 2}}
    path = tmp_path / f"md-{mode}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _run(path: Path, requests: list[Any], **overrides: Any) -> tuple[Simulation, dict[str, Any]]:
    md, classes = load_manifests([path, CLASSES])
    wl = prepare(md, classes)
    sim = Simulation(requests, ModelDeploymentAutoscaler(wl), sim_config(wl, **overrides))
    return sim, sim.run().summary


def test_requests_at_zero_are_held_for_the_cold_start_and_all_served(tmp_path: Path) -> None:
    requests = make_requests(40, gap_s=0.5, start_s=5.0)
    sim, summary = _run(_from_zero(tmp_path), requests)
    assert summary["finished"] == 40 and summary["rejected_queue_full"] == summary["rejected_timeout"] == 0
    assert summary["activator_held"] > 0 and len(sim.activator_arrivals) == summary["activator_held"]
    # The first held request wakes the pool at once (the operator's demand handler), so it waits
    # exactly the replica's cold start; later ones wait what is left of it.
    cold = summary["cold_start_mean_s"]
    assert summary["cold_starts"] == 1 and max(sim.activator_waits) == pytest.approx(cold, abs=1e-6)
    assert summary["activator_wait_p50_s"] < cold
    first = next(d for d in sim.decisions if d["t_s"] == requests[0].arrival_s)
    assert first["desired"] == {"unified": 1}, "decided at the first request, not at the next tick"
    first_ttft = min(q.first_token_s - q.arrival_s for q in sim._finished if q.arrival_s == requests[0].arrival_s)
    assert first_ttft >= cold, "the cold start shows in the first request's TTFT"


def test_past_the_queue_limit_or_the_timeout_requests_are_refused_and_counted(tmp_path: Path) -> None:
    requests = make_requests(60, gap_s=0.1, start_s=5.0)
    _, summary = _run(_from_zero(tmp_path), requests, activator=ActivatorModel(queue_limit=25, hold_timeout_s=1e6))
    assert summary["rejected_queue_full"] == 35 and summary["rejected_timeout"] == 0
    assert summary["finished"] == 25
    _, summary = _run(_from_zero(tmp_path), requests, activator=ActivatorModel(queue_limit=10_000, hold_timeout_s=3.0))
    assert summary["rejected_timeout"] == 60 and summary["finished"] == 0, "nothing starts within 3 s"
    _, summary = _run(_from_zero(tmp_path), requests, activator=False)
    assert summary["finished"] == 60 and summary["activator_held"] == 0, "--no-activator: no limits"


def test_disaggregated_waits_for_prefill_and_decode_then_serves_everything(tmp_path: Path) -> None:
    requests = make_requests(30, gap_s=0.5, start_s=5.0)
    sim, summary = _run(_from_zero(tmp_path, "disaggregated"), requests)
    assert summary["finished"] == 30 and summary["activator_held"] > 0
    # Both pools are woken by the first request's demand, in one decision (one cold start, not two in a row).
    first = sim.decisions[0]
    assert first["t_s"] == requests[0].arrival_s and first["desired"]["prefill"] >= 1 and first["desired"]["decode"] >= 1


def test_simulate_cli_reports_the_activator(tmp_path: Path) -> None:
    from tidal.cli import app

    out = tmp_path / "summary.json"
    result = CliRunner().invoke(app, [
        "simulate", "-f", str(_from_zero(tmp_path)), "-f", str(CLASSES), "--duration", "120", "--no-progress",
        "--activator-queue-limit", "5", "--activator-timeout", "600", "--report", str(tmp_path / "r.html"),
        "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Refused: activator queue full (503)" in result.output
    summary = json.loads(out.read_text())
    assert summary["activator_held"] > 0 and summary["rejected_queue_full"] > 0
