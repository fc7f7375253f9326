"""``spec.autoscaling.policy`` in the core: each value has its own effect, pre-warm is monotone in the
forecast and never negative, Pending pods stop further scale-up, and each rule's memory survives the
JSON round trip the operator persists."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelDeployment
from tidal.core.modeldeployment import decide_workload
from tidal.core.policies import decide_pools
from tidal.core.state import CoreState, ForecastView
from tidal.controllers.modeldeployment import pools_of
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation

H100 = AcceleratorProfile("h100", 4.0, 989.0, 3350.0, 80e9)
ACCS = {"h100": H100}


def _md(**spec_extra: Any) -> ModelDeployment:
    spec: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
        "engine": {"image": "img"}, "slo": {"ttft": "1s", "tpot": "100ms"},
        "pools": {"unified": {"minReplicas": 1, "maxReplicas": 16}},
        "placement": {"acceleratorClasses": ["h100"]}, "autoscaling": {"predictor": "none"},
    }
    spec.update(spec_extra)
    return ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "ns"}, "spec": spec})


def _busy(ready: int = 2, rate: float | None = 60.0, **extra: Any) -> PoolObservation:
    tokens = dict(prompt_tokens_rps=rate * 1000, output_tokens_rps=rate * 200) if rate is not None else {}
    values: dict[str, Any] = dict(ready_replicas=ready, request_rate_rps=rate, running_requests=40.0,
                                  waiting_requests=0.0, **tokens)
    values.update(extra)
    return PoolObservation(**values)


def _obs(now: float, pool: PoolObservation, forecast: float | None = None) -> Observation:
    return Observation(now, {"unified": pool}, accelerators=ACCS, placement={"unified": {"h100": pool.current_replicas}},
                       interval_s=15.0, forecast_rps=forecast)


def _pools(md: ModelDeployment, obs: Observation, state: CoreState | None = None) -> dict[str, int]:
    return decide_pools(md, pools_of(md), obs, state or CoreState(), H100, 300.0).desired


def test_tidal_sizes_on_goodput_under_the_slo() -> None:
    wd, state = decide_workload(_md(), _obs(0.0, _busy()), None)
    assert [r.code for r in wd.decision.reasons] == ["slo-goodput"]
    assert wd.policy == "tidal"
    assert wd.decision.desired_replicas["unified"] > 2, "60 req/s of 1,000-token prompts needs more than 2 H100s"
    assert state.planner["mix"] == [1000.0, 200.0]
    assert "recommendations" not in state.planner, "the window lives in state.recommendations"


def test_tidal_without_a_request_rate_falls_back_to_in_flight_and_says_so() -> None:
    wd, _ = decide_workload(_md(), _obs(0.0, _busy(ready=1, rate=None, running_requests=64.0)), None)
    codes = [r.code for r in wd.decision.reasons]
    assert "planner-fallback" in codes and "utilization-target" in codes
    assert wd.decision.desired_replicas["unified"] == 4


def test_tidal_without_an_accelerator_class_falls_back_and_says_so() -> None:
    obs = replace(_obs(0.0, _busy(ready=1, running_requests=64.0)), accelerators={})
    wd, _ = decide_workload(_md(), obs, None)
    assert any(r.code == "planner-fallback" and "AcceleratorClass" in r.message for r in wd.decision.reasons)


def test_static_holds_every_pool_at_min_replicas() -> None:
    md = _md(autoscaling={"policy": "static", "predictor": "none"},
             pools={"unified": {"minReplicas": 3, "maxReplicas": 16}})
    wd, _ = decide_workload(md, _obs(0.0, _busy(ready=8, running_requests=500.0)), None)
    assert wd.decision.desired_replicas == {"unified": 3}
    assert wd.policy == "static"


def test_hpa_and_kpa_run_the_rivals_rules_with_their_memory_persisted() -> None:
    for policy in ("hpa", "kpa"):
        md = _md(autoscaling={"policy": policy, "predictor": "none"})
        state = None
        for t in range(0, 120, 15):
            wd, state = decide_workload(md, _obs(float(t), _busy(ready=1, running_requests=64.0)), state)
        assert wd.decision.desired_replicas["unified"] >= 4, policy
        assert wd.policy == policy
        parts = json.loads(json.dumps(state.to_parts()))
        restored, problems = CoreState.from_parts(parts["forecaster"], parts["coldStart"], parts["countedPods"],
                                                  parts["policy"])
        assert not problems and restored.baseline == state.baseline, policy


def test_scale_down_delay_is_the_hpa_policy_stabilisation_window() -> None:
    def after_quiet(delay: str) -> int:
        md = _md(autoscaling={"policy": "hpa", "predictor": "none", "scaleDownDelay": delay})
        state = None
        wd, state = decide_workload(md, _obs(0.0, _busy(ready=8, running_requests=128.0)), None)
        for t in range(15, 120, 15):
            wd, state = decide_workload(md, _obs(float(t), _busy(ready=8, running_requests=16.0)), state)
        return wd.decision.desired_replicas["unified"]

    assert after_quiet("0s") < 8
    assert after_quiet("10m") == 8


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 200), st.floats(0, 200), st.floats(0.1, 100))
def test_replicas_are_monotone_in_the_forecast_and_prewarm_only_adds(low: float, extra: float, rate: float) -> None:
    md = _md()
    observed = _pools(md, _obs(0.0, _busy(rate=rate)))
    lower = _pools(md, _obs(0.0, _busy(rate=rate), forecast=low))
    higher = _pools(md, _obs(0.0, _busy(rate=rate), forecast=low + extra))
    assert 1 <= lower["unified"] <= higher["unified"] <= 16
    assert lower["unified"] >= observed["unified"], "pre-warm never provisions below the observed load"


def test_prewarm_uses_the_forecast_median_only_when_on() -> None:
    from tidal.core.modeldeployment import _policy_observation

    view = ForecastView(rps=30.0, lower_rps=5.0, upper_rps=60.0, horizon_s=60.0)
    md = _md()
    assert _policy_observation(md, pools_of(md), _obs(0.0, _busy()), view).forecast_rps == 30.0
    off = _md(autoscaling={"predictor": "none", "prewarm": False})
    assert _policy_observation(off, pools_of(off), _obs(0.0, _busy()), view).forecast_rps is None
    assert _policy_observation(md, pools_of(md), _obs(0.0, _busy()), None).forecast_rps is None
    sized = decide_pools(md, pools_of(md), _obs(0.0, _busy(rate=1.0), forecast=30.0), CoreState(), H100, 300.0)
    assert sized.reasons[0].code == "prewarm" and "forecast 30" in sized.reasons[0].message


def test_pending_pods_stop_further_scale_up() -> None:
    pool = _busy(ready=2, rate=150.0, pending_replicas=2)
    wd, _ = decide_workload(_md(), _obs(0.0, pool), None)
    assert wd.decision.desired_replicas["unified"] == 4, "held at ready + pending"
    assert [r.code for r in wd.decision.reasons] == ["pods-pending"]
    assert any(r.code == "pods-pending" for r in wd.capacity_limits)
    scheduled = replace(pool, pending_replicas=0, starting_replicas=2)
    wd, _ = decide_workload(_md(), _obs(0.0, scheduled), None)
    assert wd.decision.desired_replicas["unified"] > 4, "scale-up resumes once they are scheduled"


def test_wanting_more_than_max_replicas_is_a_capacity_limit() -> None:
    md = _md(pools={"unified": {"minReplicas": 1, "maxReplicas": 2}})
    wd, _ = decide_workload(md, _obs(0.0, _busy(ready=2, rate=100.0)), None)
    assert wd.decision.desired_replicas["unified"] == 2
    assert any(r.code == "max-replicas" for r in wd.capacity_limits)


@settings(max_examples=40, deadline=None)
@given(st.floats(0, 300), st.floats(0, 300), st.integers(1, 8))
def test_tidal_is_monotone_in_the_observed_request_rate(low: float, high: float, ready: int) -> None:
    low, high = sorted((low, high))
    want = [decide_workload(_md(), _obs(0.0, _busy(ready=ready, rate=r)), None)[0].decision.desired_replicas["unified"]
            for r in (low, high)]
    assert 1 <= want[0] <= want[1] <= 16


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(1.0, 2000.0), min_size=0, max_size=6), st.sampled_from([5.0, 15.0, 60.0]))
def test_the_prewarm_lead_is_never_negative_nor_shorter_than_a_forecast_step(starts_s: list[float],
                                                                              interval: float) -> None:
    from tidal.policies.interface import ReplicaStart

    md = _md(autoscaling={"predictor": "holt-winters"})
    state, forecasts = None, 0
    for i in range(8):
        starts = tuple(ReplicaStart(f"u{j}", "unified", "h100", "n", 1.0, 1.0, 0.0, s)
                       for j, s in enumerate(starts_s[:i]))
        obs = replace(_obs(i * 60.0, _busy(rate=5.0 + i)), starts=starts, interval_s=interval)
        wd, state = decide_workload(md, obs, state)
        if wd.forecast is not None:
            forecasts += 1
            assert wd.forecast.horizon_s >= max(interval, 60.0) > 0
            assert wd.cold_start_s is None or wd.forecast.horizon_s >= wd.cold_start_s >= 0
    assert forecasts > 0, "the property was checked on at least one forecast"


def test_every_reason_for_a_pool_is_kept() -> None:
    wd, _ = decide_workload(_md(), _obs(0.0, _busy(running_requests=-1.0)), None)
    codes = [r.code for r in wd.decision.reasons if r.pool == "unified"]
    assert codes[0] == "slo-goodput" and "hold-invalid-metrics" in codes, codes


def test_hpa_with_min_replicas_zero_decides_and_is_woken_only_by_demand() -> None:
    """Kubernetes' HPA needs minReplicas >= 1 and leaves a target at 0 replicas alone: a pool that may
    be at zero keeps at least one replica under load and stays at zero until demand reaches it."""
    md = _md(pools={"unified": {"minReplicas": 0, "maxReplicas": 16}},
             autoscaling={"predictor": "none", "policy": "hpa"})
    busy, _ = decide_workload(md, _obs(0.0, _busy(ready=2)), None)
    assert busy.decision.desired_replicas["unified"] >= 1
    idle, _ = decide_workload(md, _obs(0.0, PoolObservation(ready_replicas=0, request_rate_rps=0.0,
                                                             entry_request_rate_rps=0.0)), None)
    assert idle.decision.desired_replicas["unified"] == 0
    woken, _ = decide_workload(md, _obs(0.0, PoolObservation(ready_replicas=0, entry_request_rate_rps=2.0)), None)
    assert woken.decision.desired_replicas["unified"] == 1
