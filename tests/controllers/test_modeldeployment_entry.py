"""A ModelDeployment's entry behind the activator: which are fronted, when the entry is ready, the
slice, and the activator's demand as the core's observation (parks and wakes with it)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.activator.demand import DemandReport, annotation_key
from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.activator_routing import SERVICE_NAME_LABEL, ActivatorEndpoints
from tidal.controllers.modeldeployment_entry import (
    EntryDemand,
    entry_demand,
    entry_observation,
    entry_path,
    entry_ready,
    fronted_by_activator,
    render_entry_activator_slice,
)
from tidal.core.modeldeployment import decide_workload
from tidal.core.state import CoreState
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation

ACCS = {"a": AcceleratorProfile("a", 1.0, 100.0, 1000.0, 80e9)}


def _md(mode: str = "unified", **extra: Any) -> ModelDeployment:
    pools = ({"unified": {"minReplicas": 1, "maxReplicas": 4}} if mode == "unified"
             else {"prefill": {"minReplicas": 1, "maxReplicas": 4}, "decode": {"minReplicas": 1, "maxReplicas": 4}})
    spec: dict[str, Any] = {"model": {"name": "m", "parametersBillions": 8}, "engine": {"image": "img"},
                            "slo": {"ttft": "500ms"},
                            "mode": mode, "pools": pools, "placement": {"acceleratorClasses": ["a"]},
                            "autoscaling": {"predictor": "none"}}
    spec.update(extra)
    return ModelDeployment.model_validate({"metadata": {"name": "chat", "namespace": "team-a"}, "spec": spec})


def _annotations(*replicas: tuple[list[float], int, float]) -> dict[str, str]:
    return {annotation_key(f"activator-{i}"): DemandReport(tuple(a), held, sent).to_json()
            for i, (a, held, sent) in enumerate(replicas)}


def test_only_workloads_that_can_be_at_zero_are_fronted() -> None:
    assert not fronted_by_activator(_md())
    assert fronted_by_activator(_md(autoscaling={"predictor": "none", "scaleToZero": True}))
    assert fronted_by_activator(_md(pools={"unified": {"minReplicas": 0, "maxReplicas": 2}}))
    assert fronted_by_activator(_md("disaggregated", pools={"prefill": {"minReplicas": 1, "maxReplicas": 2},
                                                          "decode": {"minReplicas": 0, "maxReplicas": 2}}))
    target = {"minReplicas": 0, "maxReplicas": 2, "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                      "name": "x"}}
    assert not fronted_by_activator(_md(pools={"unified": target}))  # no entry Service in target mode


def test_the_entry_is_ready_only_with_the_whole_path() -> None:
    unified, pd = _md(), _md("disaggregated")
    assert entry_path(unified) == ("unified",) and entry_path(pd) == ("prefill", "decode")
    assert not entry_ready(unified, {"unified": 0}, 0) and entry_ready(unified, {"unified": 1}, 0)
    assert not entry_ready(pd, {"prefill": 1, "decode": 0}, 2)
    assert not entry_ready(pd, {"prefill": 0, "decode": 3}, 2)
    assert not entry_ready(pd, {"prefill": 1, "decode": 1}, 0), "no Ready router: nobody answers"
    assert entry_ready(pd, {"prefill": 1, "decode": 1}, 1)


def test_the_slice_adds_the_activator_to_the_entry_service() -> None:
    obj = render_entry_activator_slice(_md(), "uid-1", ActivatorEndpoints(("10.0.0.7", "10.0.0.5"), 8012))
    assert obj["metadata"]["name"] == "chat-activator" and obj["metadata"]["namespace"] == "team-a"
    assert obj["metadata"]["labels"][SERVICE_NAME_LABEL] == "chat"  # the entry Service is named after the MD
    assert obj["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "tidal.dev"
    assert obj["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert [e["addresses"] for e in obj["endpoints"]] == [["10.0.0.5"], ["10.0.0.7"]]
    assert obj["ports"] == [{"name": "http", "port": 8012, "protocol": "TCP"}]


def test_demand_is_windowed_like_the_simulator() -> None:
    now = 1000.0
    arrivals = [939.0, 940.0, 955.0, 995.0, 995.5, 999.9, 1000.0]  # 939 is outside, 1000 is the next bucket
    demand = entry_demand(_annotations((arrivals[:4], 0, 900.0), (arrivals[4:], 2, 995.5)),
                          now_s=now, window_s=60.0, interval_s=10.0)
    assert demand.rate_rps == 5 / 60.0
    assert demand.peak_rps == 3 / 10.0  # 995, 995.5, 999.9 in [990, 1000)
    assert demand.held == 2  # the report sent within the last interval
    assert entry_demand({}, now_s=now, window_s=60.0, interval_s=10.0) == EntryDemand(0.0, 0.0, 0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 200.0), max_size=64), st.floats(60.0, 200.0))
def test_rate_counts_the_window_and_the_peak_bounds_it(arrivals: list[float], now: float) -> None:
    arrivals = [round(t, 6) for t in arrivals]  # the annotation's resolution
    demand = entry_demand(_annotations((arrivals, 0, 0.0)), now_s=now, window_s=60.0, interval_s=10.0)
    assert demand.rate_rps == sum(1 for t in arrivals if now - 60.0 <= t < now) / 60.0
    assert demand.peak_rps >= demand.rate_rps


def test_a_pool_at_zero_is_observed_whole_and_a_running_one_keeps_its_metrics() -> None:
    pd = _md("disaggregated")
    zero = {"prefill": PoolObservation(ready_replicas=0), "decode": PoolObservation(ready_replicas=0)}
    seen = entry_observation(pd, zero, EntryDemand(0.5, 1.2, 7))
    assert seen["prefill"] == PoolObservation(ready_replicas=0, running_requests=0.0, waiting_requests=7.0,
                                              request_rate_rps=0.5, entry_request_rate_rps=0.5,
                                              in_flight_change_rps=0.0,
                                              peak_request_rate_rps=1.2, prompt_tokens_rps=0.0,
                                              output_tokens_rps=0.0)
    assert seen["decode"].request_rate_rps == 0.0 and seen["decode"].waiting_requests == 0.0
    running = {"unified": PoolObservation(ready_replicas=2, running_requests=3.0, waiting_requests=1.0,
                                          request_rate_rps=0.4)}
    seen = entry_observation(_md(), running, EntryDemand(0.1, 0.5, 2))
    assert seen["unified"].entry_request_rate_rps == 0.4, "the larger of engines' and activator's, never a sum"
    assert seen["unified"].waiting_requests == 3.0 and seen["unified"].request_rate_rps == 0.4
    starting = {"unified": PoolObservation(ready_replicas=0, starting_replicas=1, running_requests=0.0,
                                           waiting_requests=0.0, request_rate_rps=0.0, peak_request_rate_rps=0.0)}
    seen = entry_observation(_md(), starting, EntryDemand(0.1, 0.5, 6))
    assert (seen["unified"].entry_request_rate_rps, seen["unified"].peak_request_rate_rps,
            seen["unified"].waiting_requests) == (0.1, 0.5, 6.0), "while it starts, the held requests are the load"
    assert seen["unified"].request_rate_rps == 0.0, "the request rate stays the engines' completions"
    piling = {"unified": PoolObservation(ready_replicas=1, running_requests=4.0, waiting_requests=2.0,
                                         request_rate_rps=0.2, in_flight_change_rps=0.3)}
    seen = entry_observation(_md(), piling, EntryDemand(0.1, 0.5, 0))
    assert seen["unified"].entry_request_rate_rps == 0.5, "the engines' arrivals: completions plus the growth"
    unknown = {"unified": PoolObservation(ready_replicas=2)}
    seen = entry_observation(_md(), unknown, EntryDemand(0.1, 0.5, 2))
    assert seen["unified"].entry_request_rate_rps == 0.1 and seen["unified"].waiting_requests is None


def test_the_core_parks_and_wakes_on_the_activator_signal() -> None:
    """The operator's path end to end, pure: annotations -> entry_observation -> decide_workload."""
    md = _md(autoscaling={"predictor": "none", "scaleToZero": True, "scaleToZeroAfter": "1m"},
             pools={"unified": {"minReplicas": 1, "maxReplicas": 4}})
    state: CoreState | None = None

    def tick(now: float, replicas: int, annotations: dict[str, str]) -> dict[str, int]:
        nonlocal state
        engines = (PoolObservation(ready_replicas=replicas, running_requests=0.0, waiting_requests=0.0,
                                   request_rate_rps=0.0) if replicas else PoolObservation(ready_replicas=0))
        demand = entry_demand(annotations, now_s=now, window_s=60.0, interval_s=10.0)
        pools = entry_observation(md, {"unified": engines}, demand)
        wd, state = decide_workload(md, Observation(now, pools, True, accelerators=ACCS,
                                                    placement={"unified": {"a": replicas}}), state)
        return dict(wd.decision.desired_replicas)

    assert tick(0.0, 1, {}) == {"unified": 1}
    assert tick(61.0, 1, {}) == {"unified": 0}, "no request for scaleToZeroAfter: parked"
    assert tick(71.0, 0, {}) == {"unified": 0}
    assert tick(81.0, 0, _annotations(([80.5], 1, 80.5))) == {"unified": 1}, "a held request wakes it"
