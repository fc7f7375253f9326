"""Goodput per replica, replicas for a load, and the online correction of a wrong profile."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelSpec, SLOSpec
from tidal.policies.capacity import (
    CORRECTION_BOUNDS,
    LATENCY_MODELS,
    LIMIT_INFEASIBLE,
    LIMIT_KV,
    Correction,
    RequestMix,
    SLOTargets,
    corrected,
    goodput,
    replicas_for_load,
    slo_targets,
    wait_quantile_s,
)
from tidal.policies.interface import AcceleratorProfile
from tidal.policies.profile import Efficiencies, PerformanceProfile, build_profile

MIB = 2**20
H100 = AcceleratorProfile("H100-80GB", 2.99, 989.0, 3350.0, 81559 * MIB)
PROFILE = build_profile(ModelSpec(name="llama-3.1-8b", parameters_billions=8.03), H100)
SLO = SLOTargets(ttft_s=2.0, tpot_s=0.1, percentile=0.9)
ROLES = sorted(LATENCY_MODELS)
mixes = st.builds(RequestMix, st.floats(16, 8000), st.floats(1, 2000))
factors = st.floats(0.3, 3.0)


def slower(profile: PerformanceProfile, factor: float) -> PerformanceProfile:
    """A profile whose every step time is ``factor`` x ``profile``'s (the fake engine's truth)."""
    acc = replace(profile.accelerator, peak_tflops=profile.accelerator.peak_tflops / factor,
                  memory_bandwidth_gbps=profile.accelerator.memory_bandwidth_gbps / factor)
    eff = replace(profile.efficiencies,
                  launch_floor_per_layer_s=profile.efficiencies.launch_floor_per_layer_s * factor)
    return PerformanceProfile(profile.model, acc, profile.tp, eff)


@given(st.sampled_from(ROLES), mixes, st.floats(0, 200), st.floats(0, 200), factors, factors)
def test_latency_monotone_in_rate_and_in_the_correction(role, mix, r1, r2, f1, f2) -> None:
    model = LATENCY_MODELS[role]
    lo, hi = sorted((r1, r2))
    a = model(PROFILE, mix, lo, Correction(f1, f1), 0.9)
    b = model(PROFILE, mix, hi, Correction(f1, f1), 0.9)
    assert a.ttft_s <= b.ttft_s and a.tpot_s <= b.tpot_s
    flo, fhi = sorted((f1, f2))
    c = model(PROFILE, mix, lo, Correction(flo, flo), 0.9)
    d = model(PROFILE, mix, lo, Correction(fhi, fhi), 0.9)
    assert c.ttft_s <= d.ttft_s * (1 + 1e-9) and c.tpot_s <= d.tpot_s * (1 + 1e-9)


@given(st.sampled_from(ROLES), mixes)
def test_goodput_meets_the_slo_and_a_faster_rate_does_not(role, mix) -> None:
    gp = goodput(role, PROFILE, mix, SLO)
    assert gp.rate_rps > 0
    if gp.limit == LIMIT_INFEASIBLE:
        return
    at = LATENCY_MODELS[role](PROFILE, mix, gp.rate_rps, Correction(), SLO.percentile)
    assert at.ttft_s <= SLO.ttft_s and at.tpot_s <= SLO.tpot_s
    beyond = LATENCY_MODELS[role](PROFILE, mix, gp.rate_rps * 1.01 + 1e-6, Correction(), SLO.percentile)
    kv_cap = PROFILE.kv_capacity_tokens()
    assert (beyond.ttft_s > SLO.ttft_s or beyond.tpot_s > SLO.tpot_s or beyond.batch > 256
            or beyond.kv_tokens > 0.9 * kv_cap)


@given(st.sampled_from(ROLES), mixes, factors, factors)
def test_a_slower_engine_has_less_goodput(role, mix, f1, f2) -> None:
    lo, hi = sorted((f1, f2))
    fast = goodput(role, PROFILE, mix, SLO, Correction(lo, lo))
    slow = goodput(role, PROFILE, mix, SLO, Correction(hi, hi))
    if LIMIT_INFEASIBLE not in (fast.limit, slow.limit):
        assert slow.rate_rps <= fast.rate_rps * (1 + 1e-9)


def test_long_prompts_make_a_tight_ttft_infeasible_and_size_on_throughput() -> None:
    gp = goodput("prefill", PROFILE, RequestMix(100_000, 100), SLOTargets(0.5, 0.1))
    assert gp.limit == LIMIT_INFEASIBLE and 0 < gp.rate_rps < 1


def test_decode_pool_is_bounded_by_kv_for_long_contexts() -> None:
    assert goodput("decode", PROFILE, RequestMix(30_000, 100), SLO).limit == LIMIT_KV


@given(st.floats(0, 1e4), st.floats(0, 1e4), st.floats(0.01, 1000), st.integers(0, 5), st.integers(5, 100))
def test_replicas_for_load_bounded_and_monotone(l1, l2, gp, lo, hi) -> None:
    a, b = sorted((l1, l2))
    na, nb = replicas_for_load(a, gp, lo, hi), replicas_for_load(b, gp, lo, hi)
    assert lo <= na <= nb <= hi
    assert nb == min(max(math.ceil(b / gp - 1e-9), lo), hi)


@given(st.floats(0, 0.999), st.floats(0, 0.999), st.floats(0.001, 10), st.floats(0.5, 0.999))
def test_wait_quantile_grows_with_utilization(u1, u2, service, q) -> None:
    lo, hi = sorted((u1, u2))
    assert 0 <= wait_quantile_s(lo, service, q) <= wait_quantile_s(hi, service, q)
    assert wait_quantile_s(1.0, service, q) == math.inf


@pytest.mark.parametrize("truth", [1.4, 1 / 1.4, 0.6])
@pytest.mark.parametrize("role", ROLES)
def test_correction_converges_on_an_engine_40_percent_off(role, truth) -> None:
    """A fake engine whose step times are the profile's x ``truth`` reports TTFT and TPOT at the load
    each tick; starting from the profile (factor 1), the correction reaches ``truth`` within 5 %."""
    engine = slower(PROFILE, truth)
    mix = RequestMix(800, 200)
    corr = Correction()
    for tick in range(30):
        rate = [2.0, 6.0, 10.0][tick % 3]  # the load moves, the engine's speed does not
        seen = LATENCY_MODELS[role](engine, mix, rate, Correction(), SLO.percentile)
        corr = corrected(role, PROFILE, mix, rate, corr, SLO.percentile, seen.ttft_s, seen.tpot_s)
    learned = {"prefill": [corr.prefill], "decode": [corr.decode],
               "unified": [corr.prefill, corr.decode]}[role]
    for f in learned:
        assert f == pytest.approx(truth, rel=0.05)
    # and goodput follows the truth
    true_gp = goodput(role, engine, mix, SLO).rate_rps
    assert goodput(role, PROFILE, mix, SLO, corr).rate_rps == pytest.approx(true_gp, rel=0.10)


def test_correction_is_bounded_and_ignores_missing_latencies() -> None:
    mix = RequestMix(800, 200)
    corr = Correction()
    for _ in range(50):
        corr = corrected("unified", PROFILE, mix, 1.0, corr, 0.9, 1e6, 1e6)
    assert (corr.prefill, corr.decode) == pytest.approx((CORRECTION_BOUNDS[1],) * 2)
    assert corrected("unified", PROFILE, mix, 1.0, corr, 0.9, None, math.nan) == corr


def test_efficiencies_are_validated() -> None:
    with pytest.raises(ValueError, match="Efficiencies.compute"):
        Efficiencies(compute=1.5)


def test_slo_targets_from_a_modeldeployment_spec() -> None:
    targets = slo_targets(SLOSpec(ttft="500ms", tpot="50ms", percentile=95))
    assert (targets.ttft_s, targets.tpot_s, targets.percentile) == pytest.approx((0.5, 0.05, 0.95))
    assert slo_targets(SLOSpec(tpot="40ms")).ttft_s is None
