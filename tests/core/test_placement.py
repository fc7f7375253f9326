"""Placement never picks an accelerator class whose profile cannot meet the SLO."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelDeployment
from tidal.core.modeldeployment import decide_workload
from tidal.core.placement import feasible_preference, planner_mix
from tidal.policies.capacity import idle_violation, slo_targets
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation
from tidal.policies.profile import build_profile, model_shape

GB = 1e9
L4 = AcceleratorProfile("l4", 0.8, 121.0, 300.0, 24 * GB)
H100 = AcceleratorProfile("h100", 4.0, 989.0, 3350.0, 80 * GB)


def _md(params_b: float, gpus: int, ttft: str = "2s", **extra: Any) -> ModelDeployment:
    spec: dict[str, Any] = {
        "model": {"name": "m", "parametersBillions": params_b}, "engine": {"image": "img"},
        "slo": {"ttft": ttft, "tpot": "100ms"},
        "pools": {"unified": {"minReplicas": 1, "maxReplicas": 8, "gpusPerReplica": gpus}},
        "placement": {"acceleratorClasses": ["l4", "h100"]}, "autoscaling": {"predictor": "none"}, **extra}
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": spec})


def _decide(md: ModelDeployment, classes: dict[str, AcceleratorProfile], ready: int = 1):
    obs = Observation(0.0, {"unified": PoolObservation(ready_replicas=ready, request_rate_rps=50.0,
                                                       running_requests=10.0, waiting_requests=0.0)},
                      accelerators=classes, placement={"unified": {}})
    return decide_workload(md, obs, None)[0]


def test_a_cheaper_class_that_cannot_hold_the_model_is_passed_over_and_said() -> None:
    wd = _decide(_md(70, 4), {"l4": L4, "h100": H100})  # 140 GB of weights: 4 x 80 GB holds them, 4 x 24 GB not
    assert {k.accelerator for k, n in wd.by_child.items() if n} == {"h100"}
    said = [r for r in wd.decision.reasons if r.code == "accelerator-cannot-meet-slo"]
    assert len(said) == 1 and "'l4'" in said[0].message and "kv-cache" in said[0].message
    assert not wd.capacity_limits


def test_when_no_class_can_meet_the_slo_the_order_is_kept_and_it_is_a_capacity_limit() -> None:
    wd = _decide(_md(405, 1), {"l4": L4, "h100": H100})
    assert {k.accelerator for k, n in wd.by_child.items() if n} == {"l4"}, "cheapest first, as before"
    assert "accelerator-cannot-meet-slo" in {r.code for r in wd.capacity_limits}


@settings(max_examples=60, deadline=None)
@given(st.floats(1, 200), st.integers(1, 8), st.floats(10, 2000), st.floats(100, 5000), st.floats(8, 192),
       st.sampled_from(["200ms", "1s", "5s"]))
def test_placement_never_picks_a_class_that_cannot_meet_the_slo(params_b: float, gpus: int, tflops: float,
                                                                bandwidth: float, memory_gb: float, ttft: str) -> None:
    md = _md(params_b, gpus, ttft)
    classes = {"l4": AcceleratorProfile("l4", 0.5, tflops, bandwidth, memory_gb * GB), "h100": H100}
    kept, unfit = feasible_preference(md, classes, ["l4", "h100"], planner_mix(None))
    wd = _decide(md, classes)
    used = {k.accelerator for k, n in wd.by_child.items() if n}
    slo, shape = slo_targets(md.spec.slo), model_shape(md.spec.model)
    for name in used:
        fits = idle_violation("unified", build_profile(shape, classes[name], gpus), planner_mix(None), slo) is None
        assert fits or len(unfit) == 2, f"{name} placed although it cannot meet the SLO and another can"
    assert set(kept) | {r.message.split("'")[1] for r in unfit} == {"l4", "h100"}
