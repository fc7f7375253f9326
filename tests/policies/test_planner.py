"""SLOPlanner: bounds, monotonicity in load, holds on missing/partial metrics, closed-loop correction."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelSpec
from tidal.policies.capacity import LATENCY_MODELS, Correction, RequestMix, SLOTargets, goodput
from tidal.policies.guards import REASON_HOLD_PARTIAL
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation
from tidal.policies.planner import (
    PLANNER_FACTORIES,
    PLANNER_NAME,
    REASON_GOODPUT,
    REASON_HOLD_NO_METRICS,
    SLOPlanner,
    make_slo_planner,
)
from tidal.policies.profile import build_profile
from tidal.policies.utilization import REASON_STABILIZED
from tests.policies.test_capacity import slower

MIB = 2**20
H100 = AcceleratorProfile("H100-80GB", 2.99, 989.0, 3350.0, 81559 * MIB)
A40 = AcceleratorProfile("A40", 0.80, 149.7, 696.0, 46068 * MIB)
MODEL = ModelSpec(name="llama-3.1-8b", parameters_billions=8.03)
MIX = RequestMix(1000, 250)


def planner(lo: int = 1, hi: int = 64, acc: AcceleratorProfile = A40, **params):
    return make_slo_planner(lo, hi, model=MODEL, accelerator=acc, slo_ttft_s=2.0, slo_tpot_s=0.1,
                            percentile=0.9, **params)


def pool(ready: int, rate: float | None, *, waiting: float = 0.0, starting: int = 0, unobserved: int = 0,
         ttft: float | None = None, tpot: float | None = None, mix: RequestMix = MIX,
         role: str = "unified") -> PoolObservation:
    """One pool's metrics as an engine reports them: a prefill pool counts the prompts and emits the
    first token, a decode pool the remaining output tokens."""
    prompt = {"unified": mix.prompt_tokens, "prefill": mix.prompt_tokens, "decode": 0.0}[role]
    output = {"unified": mix.output_tokens, "prefill": 1.0, "decode": mix.output_tokens - 1.0}[role]
    return PoolObservation(
        ready_replicas=ready, starting_replicas=starting, unobserved_replicas=unobserved,
        request_rate_rps=rate,
        prompt_tokens_rps=None if rate is None else rate * prompt,
        output_tokens_rps=None if rate is None else rate * output,
        running_requests=None if rate is None else 0.0, waiting_requests=None if rate is None else waiting,
        ttft_s=ttft, tpot_s=tpot)


def unified(p: PoolObservation, now_s: float = 0.0) -> Observation:
    return Observation(now_s, {"unified": p})


def disaggregated(ready_p: int, ready_d: int, rate: float | None, now_s: float = 0.0) -> Observation:
    return Observation(now_s, {"prefill": pool(ready_p, rate, role="prefill"),
                               "decode": pool(ready_d, rate, role="decode")})


@given(st.integers(0, 40), st.one_of(st.none(), st.floats(0, 500)), st.floats(0, 1000), st.integers(0, 3),
       st.integers(3, 40), st.integers(0, 3))
def test_replicas_within_bounds(ready, rate, waiting, lo, hi, unobserved) -> None:
    policy = planner(lo, hi)
    d, state = policy.decide(unified(pool(ready, rate, waiting=waiting, unobserved=min(unobserved, ready))), None)
    n = d.desired_replicas["unified"]
    assert lo <= n <= hi or (n == ready and ready > hi)  # a partial pool above max is held, never cut
    json.loads(json.dumps(state))  # the state is JSON-friendly


@given(st.floats(0, 300), st.floats(0, 300), st.integers(0, 20), st.floats(0, 200))
def test_monotone_non_decreasing_in_load(r1, r2, ready, waiting) -> None:
    lo, hi = sorted((r1, r2))
    policy = planner(0, 64)
    n_lo = policy.decide(unified(pool(ready, lo, waiting=waiting)), None)[0].desired_replicas["unified"]
    n_hi = policy.decide(unified(pool(ready, hi, waiting=waiting)), None)[0].desired_replicas["unified"]
    assert n_lo <= n_hi


@given(st.floats(0, 300), st.integers(0, 20), st.integers(0, 20))
def test_disaggregated_pools_monotone_and_bounded(rate, ready_p, ready_d) -> None:
    policy = planner(1, 32)
    d1, _ = policy.decide(disaggregated(ready_p, ready_d, rate), None)
    d2, _ = policy.decide(disaggregated(ready_p, ready_d, rate * 2), None)
    for p in ("prefill", "decode"):
        assert 1 <= d1.desired_replicas[p] <= d2.desired_replicas[p] <= 32


@given(st.integers(0, 40), st.integers(0, 5), st.booleans())
def test_missing_metrics_never_go_below_what_is_serving(ready, starting, unavailable) -> None:
    obs = Observation(0.0, {"unified": pool(ready, None, starting=starting)}, metrics_available=not unavailable)
    d, _ = planner(0, 64).decide(obs, None)
    assert d.desired_replicas["unified"] == min(ready + starting, 64)
    assert d.reasons[0].code == REASON_HOLD_NO_METRICS


@given(st.integers(1, 40), st.floats(0, 5), st.data())
def test_partial_metrics_never_scale_down(ready, rate, data) -> None:
    unobserved = data.draw(st.integers(1, ready))
    d, _ = planner(0, 64).decide(unified(pool(ready, rate, unobserved=unobserved)), None)
    assert d.desired_replicas["unified"] >= ready


def test_partial_pool_without_load_is_held_and_says_why() -> None:
    d, _ = planner(0, 64).decide(unified(pool(6, 0.0, unobserved=2)), None)
    assert d.desired_replicas["unified"] == 6
    assert [r.code for r in d.reasons] == [REASON_HOLD_PARTIAL]
    d, _ = planner(0, 64).decide(unified(pool(6, 0.0)), None)
    assert d.desired_replicas["unified"] < 6  # fully observed, the same pool would shrink


def test_garbage_rates_are_unknown_not_zero() -> None:
    obs = unified(pool(8, -3.0))
    d, _ = planner(0, 64).decide(obs, None)
    assert d.desired_replicas["unified"] == 8


def test_sizes_on_goodput_and_says_so() -> None:
    policy = planner(1, 64)
    d, _ = policy.decide(unified(pool(2, 20.0)), None)
    profile = build_profile(MODEL, A40)
    gp = goodput("unified", profile, MIX, SLOTargets(2.0, 0.1, 0.9)).rate_rps
    assert d.desired_replicas["unified"] == math.ceil(20.0 / gp)
    assert d.reasons[0].code == REASON_GOODPUT and "goodput" in d.reasons[0].message
    plan = d.details["plan"]["unified"]
    assert plan.goodput_rps == pytest.approx(gp) and plan.load_rps == 20.0


def test_waiting_requests_add_load() -> None:
    policy = planner(1, 64)
    base = policy.decide(unified(pool(2, 20.0)), None)[0].desired_replicas["unified"]
    backlog = policy.decide(unified(pool(2, 20.0, waiting=3000.0)), None)[0].desired_replicas["unified"]
    assert backlog > base


def test_sizes_on_arrivals_when_completions_saturate() -> None:
    """Engines count completions: an overloaded pool completes what it can while the rest piles up.
    The planner sizes on completions plus the growth in flight, not on the saturated completions."""
    policy = planner(1, 64)
    saturated = pool(2, 10.0)
    piling = PoolObservation(**{**saturated.__dict__, "in_flight_change_rps": 20.0})
    d, _ = policy.decide(unified(piling), None)
    assert d.details["plan"]["unified"].load_rps == pytest.approx(30.0)
    assert d.desired_replicas["unified"] > policy.decide(unified(saturated), None)[0].desired_replicas["unified"]


def test_mix_is_per_completed_request() -> None:
    """Tokens are counted as computed: while a backlog builds, tokens per *arrival* under-state the
    prompt; per completion they do not."""
    policy = planner(1, 64)
    piling = PoolObservation(**{**pool(2, 10.0).__dict__, "in_flight_change_rps": 30.0})
    _, st_ = policy.decide(unified(piling), None)
    assert st_["mix"] == pytest.approx([MIX.prompt_tokens, MIX.output_tokens])


def test_scale_down_is_stabilised_then_happens() -> None:
    policy = planner(1, 64, scale_down_stabilization_s=300.0)
    d, st_ = policy.decide(unified(pool(10, 30.0), 0.0), None)
    high = d.desired_replicas["unified"]
    d, st_ = policy.decide(unified(pool(high, 1.0), 60.0), st_)
    assert d.desired_replicas["unified"] == high and d.reasons[0].code == REASON_STABILIZED
    d, st_ = policy.decide(unified(pool(high, 1.0), 400.0), st_)
    assert d.desired_replicas["unified"] < high


def test_mix_is_remembered_without_traffic() -> None:
    policy = planner(0, 64)
    _, st_ = policy.decide(unified(pool(2, 5.0, mix=RequestMix(4000, 50))), None)
    assert st_["mix"] == pytest.approx([4000, 50])
    _, st2 = policy.decide(unified(pool(2, 0.0), 15.0), st_)
    assert st2["mix"] == pytest.approx([4000, 50])


@pytest.mark.parametrize("truth", [1.4, 0.6])
@pytest.mark.parametrize("mode", ["unified", "disaggregated"])
def test_closed_loop_converges_to_the_true_engines_sizing(truth, mode) -> None:
    """A fake engine whose step times are the profile's x ``truth`` serves the planner's replicas; its
    TTFT/TPOT feed back. The planner ends at the replicas a planner knowing the truth would choose."""
    profile = build_profile(MODEL, A40)
    engine = slower(profile, truth)
    slo = SLOTargets(2.0, 0.1, 0.9)
    pools = ("unified",) if mode == "unified" else ("prefill", "decode")
    policy = planner(1, 200, scale_down_stabilization_s=0.0)
    replicas = {p: 4 for p in pools}
    state = None
    rate = 40.0
    for tick in range(40):
        obs_pools = {}
        for p in pools:
            lat = LATENCY_MODELS[p](engine, MIX, rate / replicas[p], Correction(), slo.percentile)
            obs_pools[p] = pool(replicas[p], rate, ttft=lat.ttft_s if math.isfinite(lat.ttft_s) else 60.0,
                                tpot=lat.tpot_s if math.isfinite(lat.tpot_s) else 10.0, role=p)
        d, state = policy.decide(Observation(tick * 15.0, obs_pools), state)
        replicas = dict(d.desired_replicas)
    for p in pools:
        ideal = math.ceil(rate / goodput(p, engine, MIX, slo).rate_rps)
        assert abs(replicas[p] - ideal) <= max(1, round(0.05 * ideal)), (p, replicas[p], ideal)


def test_factory_validates_and_names_the_policy() -> None:
    assert planner().name == PLANNER_NAME
    assert PLANNER_FACTORIES[PLANNER_NAME] is make_slo_planner
    with pytest.raises(TypeError):
        planner(bogus=1)
    with pytest.raises(ValueError, match="percentile"):
        make_slo_planner(1, 4, model=MODEL, accelerator=H100, slo_ttft_s=1.0, slo_tpot_s=0.05, percentile=90)
    with pytest.raises(ValueError, match="min_replicas"):
        SLOPlanner({"unified": build_profile(MODEL, H100)}, SLOTargets(1.0, None), min_replicas=5, max_replicas=2)


def test_prefill_pool_learns_from_the_ttft_measured_at_decode() -> None:
    """In disaggregated serving the first token leaves the decode engine: a prefill pool reporting no
    TTFT learns its factor from the decode pool's."""
    slow = pool(2, 10.0, role="decode", ttft=30.0)
    obs = Observation(0.0, {"prefill": pool(2, 10.0, role="prefill"), "decode": slow})
    _, state = planner(1, 64).decide(obs, None)
    assert state["correction"]["prefill"][0] > 1.0
    quiet = Observation(0.0, {"prefill": pool(2, 10.0, role="prefill"), "decode": pool(2, 10.0, role="decode")})
    _, state = planner(1, 64).decide(quiet, None)
    assert state["correction"]["prefill"][0] == 1.0


@given(st.floats(0, 100), st.integers(0, 10), st.one_of(st.none(), st.floats(0.01, 30)))
def test_deterministic_and_does_not_mutate_its_state(rate, ready, ttft) -> None:
    policy = planner(1, 64)
    _, state = policy.decide(unified(pool(ready, rate, ttft=ttft, tpot=0.05)), None)
    frozen = json.dumps(state, sort_keys=True)
    obs = unified(pool(ready, rate * 1.5, ttft=ttft, tpot=0.05), 15.0)
    d1, s1 = policy.decide(obs, state)
    d2, s2 = policy.decide(obs, state)
    assert json.dumps(state, sort_keys=True) == frozen
    assert d1 == d2 and s1 == s2


def test_prewarm_sizes_for_the_forecast_and_is_cancelled_when_it_falls() -> None:
    from dataclasses import replace

    policy = planner(1, 64, scale_down_stabilization_s=300.0)
    quiet, st_ = policy.decide(unified(pool(2, 2.0), 0.0), None)
    ahead, st_ = policy.decide(replace(unified(pool(2, 2.0), 15.0), forecast_rps=30.0), st_)
    assert ahead.desired_replicas["unified"] > quiet.desired_replicas["unified"]
    assert ahead.reasons[0].code == "prewarm" and "forecast 30" in ahead.reasons[0].message
    fallen, st_ = policy.decide(replace(unified(pool(2, 2.0, starting=ahead.desired_replicas["unified"] - 2), 30.0),
                                        forecast_rps=2.0), st_)
    assert fallen.desired_replicas["unified"] == quiet.desired_replicas["unified"], \
        "pre-warm is not held through the scale-down window"
    assert all(r <= quiet.desired_replicas["unified"] for _, r in st_["recommendations"]["unified"])
