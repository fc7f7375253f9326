"""A mixed cluster: several accelerator classes in limited numbers, placed per class by the core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.sim.conftest import make_requests
from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment
from tidal.core.placement import REASON_CLASS_FULL
from tidal.policies.interface import Decision, Observation
from tidal.sim.hardware import TFLOPS, get_accelerator
from tidal.sim.modeldeployment import ManifestError, ModelDeploymentAutoscaler, mixed_config, prepare
from tidal.sim.runner import SimClass, SimConfig, Simulation

CLUSTER = (SimClass("big", "H100-80GB", 1, 3.0, gpus_per_node=2), SimClass("small", "L40S", 1, 1.0))


@dataclass
class ByClass:
    """Test policy: a fixed split per class, recording what it observed."""

    split: dict[str, int]
    name: str = "by-class"
    seen: list[Observation] = field(default_factory=list)

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        self.seen.append(observation)
        placement = {p: dict(self.split) for p in observation.pools}
        return Decision({p: sum(self.split.values()) for p in observation.pools},
                        details={"placement": placement}), state


def test_pods_run_on_their_class_and_each_class_is_billed_at_its_price() -> None:
    policy = ByClass({"big": 3, "small": 2})
    sim = Simulation(make_requests(300, gap_s=0.2), policy, SimConfig(classes=CLUSTER, tick_s=5.0))
    result = sim.run()
    pods = list(sim.cluster.pods.values())
    assert all(p.node is None or p.node.klass == p.klass for p in pods), "only a node of its class takes a pod"
    assert sum(1 for p in pods if p.klass == "big" and p.node is None) == 1, "2 GPUs of big: the third Pending"
    assert {p.klass for p in pods if p.engine is not None} == {"big", "small"}
    assert {type(p.engine.perf).__name__ for p in pods if p.engine} == {"StepTimeModel"}
    engines = {p.klass: p.engine for p in pods if p.engine is not None}
    assert engines["big"].perf is sim._perf["big"] and engines["small"].perf is sim._perf["small"]
    by = result.summary["by_class"]
    assert by["big"]["cost_usd"] == pytest.approx(by["big"]["gpu_hours"] * 3.0)
    assert by["small"]["cost_usd"] == pytest.approx(by["small"]["gpu_hours"] * 1.0)
    assert result.summary["cost_usd"] == pytest.approx(by["big"]["cost_usd"] + by["small"]["cost_usd"])
    assert result.summary["finished"] == 300
    # The observation carries the replicas per class and the free GPUs, as an AcceleratorClass status would.
    last = policy.seen[-1]
    assert last.placement == {"unified": {"big": 3, "small": 2}}
    assert last.accelerators["big"].free_gpus == 0 and last.accelerators["small"].free_gpus == 2
    assert last.accelerators["big"].free_by_node == (0,) and last.accelerators["small"].free_by_node == (2,)


def _md(classes: list[str]) -> ModelDeployment:
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
        "engine": {"image": "img"}, "slo": {"ttft": "1s", "tpot": "100ms", "percentile": 90},
        "pools": {"unified": {"minReplicas": 1, "maxReplicas": 12}},
        "placement": {"acceleratorClasses": classes}, "autoscaling": {"predictor": "none"}}})


def _class(name: str, hardware: str, cost: float) -> AcceleratorClass:
    hw = get_accelerator(hardware)
    return AcceleratorClass.model_validate({"metadata": {"name": name}, "spec": {
        "memory": str(int(hw.memory_bytes)), "peakTflops": hw.peak_bf16_flops / TFLOPS,
        "memoryBandwidthGbps": hw.memory_bandwidth_bps / 1e9, "hourlyCost": cost}})


def test_the_core_spills_to_the_next_class_when_the_preferred_one_is_full() -> None:
    classes = {"h100": _class("h100", "H100-80GB", 2.99), "l40s": _class("l40s", "L40S", 1.1)}
    wl = prepare(_md(["l40s", "h100"]), classes)
    assert wl.accelerator_class == "h100", "cheapest per goodput for 8B chat at these prices"
    cfg = mixed_config(wl, classes, {"h100": 1, "l40s": 1}, {"h100": 1}, tick_s=15.0)
    assert [(c.name, c.accelerator, c.gpus_per_node) for c in cfg.classes] == [("l40s", "L40S", None),
                                                                              ("h100", "H100-80GB", 1)]
    shell = ModelDeploymentAutoscaler(wl)
    decisions: list[Any] = []

    class Spy(ModelDeploymentAutoscaler):
        def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
            decision, state = shell.decide(observation, state)
            decisions.append(decision.details["workload"])
            return decision, state

    requests = make_requests(3000, gap_s=0.04, prompt=900, output=200)  # 25 req/s: more than one H100
    result = Simulation(requests, Spy(wl), cfg).run()
    by = result.summary["by_class"]
    assert by["h100"]["gpu_hours"] > 0 and by["l40s"]["gpu_hours"] > 0
    assert any(r.code == REASON_CLASS_FULL and "'h100'" in r.message for wd in decisions for r in wd.capacity_limits)
    assert max(sum(n for k, n in wd.by_child.items() if k.accelerator == "h100") for wd in decisions) <= 1, \
        "never more H100 replicas than the one free GPU (no Pending pods while the L40S has room)"


def test_mixed_config_names_what_it_cannot_simulate() -> None:
    classes = {"h100": _class("h100", "H100-80GB", 2.99), "l40s": _class("l40s", "L40S", 1.1)}
    wl = prepare(_md(["l40s", "h100"]), classes)
    with pytest.raises(ManifestError, match="a100"):
        mixed_config(wl, classes, {"a100": 1})
    with pytest.raises(ManifestError, match="at least one class"):
        mixed_config(wl, classes, {"h100": 0})


def test_a_two_gpu_replica_never_waits_on_gpus_spread_one_per_node() -> None:
    """Four H100 nodes with one GPU each hold four free GPUs but no 2-GPU replica: the core counts free
    GPUs per node (status.freeByNode), places on the L40S node, and no pod waits Pending."""
    classes = {"h100": _class("h100", "H100-80GB", 2.99), "l40s": _class("l40s", "L40S", 1.1)}
    md = _md(["l40s", "h100"])
    spec = md.model_dump(by_alias=True, exclude_none=True)["spec"]
    spec["pools"]["unified"]["gpusPerReplica"] = 2
    wl = prepare(ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": spec}), classes)
    cfg = mixed_config(wl, classes, {"h100": 4, "l40s": 1}, {"h100": 1, "l40s": 8}, tick_s=15.0)
    sim = Simulation(make_requests(1500, gap_s=0.04, prompt=900, output=200), ModelDeploymentAutoscaler(wl), cfg)
    result = sim.run()
    pods = list(sim.cluster.pods.values())
    assert pods and all(p.klass == "l40s" for p in pods), "nothing is started where no node has 2 GPUs free"
    assert result.summary["finished"] == 1500
