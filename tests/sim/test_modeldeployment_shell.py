"""The simulator's shell for a ModelDeployment: what it simulates the spec on, and what it refuses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tidal.policies.interface import Observation, PoolObservation
from tidal.sim.modeldeployment import (
    ManifestError,
    ModelDeploymentAutoscaler,
    load_manifests,
    nearest_hardware,
    nearest_model,
    prepare,
    sim_config,
    workload_decision,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLASSES = EXAMPLES / "accelerator-classes.yaml"


def test_example_classes_map_to_their_datasheet_hardware() -> None:
    _, classes = load_manifests([EXAMPLES / "modeldeployment-unified.yaml", CLASSES])
    assert {n: nearest_hardware(c) for n, c in classes.items()} == {
        "h100-80gb": "H100-80GB", "a100-80gb": "A100-80GB", "l4": "L4"}


def test_models_by_name_else_by_size() -> None:
    md, _ = load_manifests([EXAMPLES / "modeldeployment-unified.yaml", CLASSES])
    assert nearest_model(md) == "llama-3.1-8b"
    qwen, _ = load_manifests([EXAMPLES / "modeldeployment-scale-to-zero.yaml"])
    assert nearest_model(qwen) == "llama-3.2-3b"  # Qwen2.5-3B: nearest parameter count


def test_disaggregated_spec_and_config(tmp_path: Path) -> None:
    md, classes = load_manifests([EXAMPLES / "modeldeployment-disaggregated.yaml", CLASSES])
    wl = prepare(md, classes)
    cfg = sim_config(wl, nodes=2, gpu_hour_cost_usd=None)
    assert (cfg.mode, cfg.tp, cfg.model, cfg.accelerator) == ("disaggregated", 4, "llama-3.1-70b", "H100-80GB")
    assert (cfg.slo.ttft_s, cfg.slo.tpot_s, cfg.slo.percentile) == (1.0, 0.08, 0.9)
    assert cfg.gpu_hour_cost_usd == 4.0 and cfg.nodes == 2 and cfg.tick_s == 15.0
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text((EXAMPLES / "modeldeployment-disaggregated.yaml").read_text().replace(
        "      minReplicas: 2\n      maxReplicas: 8\n      gpusPerReplica: 4",
        "      minReplicas: 2\n      maxReplicas: 8\n      gpusPerReplica: 2"))
    with pytest.raises(ManifestError, match="gpusPerReplica"):
        prepare(*load_manifests([mixed, CLASSES]))
    with pytest.raises(ManifestError, match="exactly one ModelDeployment"):
        load_manifests([CLASSES])


def test_the_adapter_adds_what_the_operator_adds() -> None:
    md, classes = load_manifests([EXAMPLES / "modeldeployment-unified.yaml", CLASSES])
    shell = ModelDeploymentAutoscaler(prepare(md, classes))
    raw = Observation(30.0, {"unified": PoolObservation(ready_replicas=2, starting_replicas=1,
                                                        running_requests=60.0, waiting_requests=4.0)})
    seen = shell.observation(raw)
    # h100-80gb: 1.6x the A100's price for 2.2x its goodput at the default mix (cost per goodput)
    assert seen.placement == {"unified": {"h100-80gb": 3}} and seen.interval_s == 15.0
    assert set(seen.accelerators) == {"h100-80gb", "a100-80gb"}  # the spec's classes only, not l4
    decision, state = shell.decide(raw, None)
    wd = workload_decision(decision)
    assert decision.desired_replicas == {"unified": 4} and wd.kv_ttl_s is not None
    assert state is not None


def test_scale_to_zero_example_parks_in_an_idle_gap_and_wakes_for_the_next_burst() -> None:
    from tests.sim.conftest import make_requests
    from tidal.sim.runner import Simulation

    md, classes = load_manifests([EXAMPLES / "modeldeployment-scale-to-zero.yaml", CLASSES])
    wl = prepare(md, classes)
    # a 2-minute burst, 20 idle minutes (scaleToZeroAfter is 10m), another burst
    requests = make_requests(240, gap_s=0.5) + [replace(r, request_id=240 + r.request_id)
                                                for r in make_requests(240, gap_s=0.5, start_s=1500.0)]
    sim = Simulation(requests, ModelDeploymentAutoscaler(wl), sim_config(wl))
    result = sim.run()
    desired = dict(zip(result.timeline["t_s"], result.timeline["unified.desired"]))
    gap = [n for t, n in desired.items() if 120 + 600 + 120 < t < 1500]
    assert gap and gap[-1] == 0, "parked at zero before the second burst"
    assert max(n for t, n in desired.items() if t > 1500) >= 1, "woken by the second burst"
    codes = {r["code"] for d in result.decisions for r in d["reasons"]}
    assert {"scale-to-zero", "slo-goodput"} <= codes
    assert result.summary["finished"] == len(requests)
