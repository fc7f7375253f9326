"""Pre-deployment profiles swept on the simulator's engine, and the rivals built from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tidal.bench.policies import POLICIES, PolicyContext, PolicySpec, build_policy
from tidal.bench.probe import Feasibility
from tidal.bench.profiling import (decode_point, heteroscale_targets, prefill_ttft_s,
                                   profile_engine, workload_lengths)
from tidal.bench.run import BenchPlan, sim_config
from tidal.bench.workloads import TRACES, perturbed
from tidal.policies.baselines.heteroscale import HeteroScaleStyle
from tidal.policies.baselines.planner import DynamoStylePlanner
from tidal.policies.baselines.profile import DecodeProfile, PerformanceProfile, PrefillProfile
from tidal.sim.traces import LLMRequest

CONFIG = sim_config("8b-h100", "azure-conv", "disaggregated", 0)


def test_prefill_sweep_follows_dynamo_isl_steps_and_ttft_grows_with_the_prompt() -> None:
    prefill = profile_engine(CONFIG).prefill
    # range(100, 131072 - 512, (131072 - 512 - 100) // 16)
    assert prefill.isl_tokens[:3] == (100.0, 8253.0, 16406.0)
    assert len(prefill.isl_tokens) == 17               # 16 steps, both ends: as range() gives
    assert all(b > a for a, b in zip(prefill.ttft_s, prefill.ttft_s[1:]))
    for isl, ttft, thpt in zip(prefill.isl_tokens, prefill.ttft_s,
                               prefill.throughput_tokens_per_s):
        assert thpt == pytest.approx(isl / ttft)


def test_decode_sweep_itl_grows_with_load_and_context() -> None:
    decode = profile_engine(CONFIG).decode
    itl = np.asarray(decode.itl_s)
    thpt = np.asarray(decode.throughput_tokens_per_s)
    assert decode.concurrency[0] == 1.0 and len(decode.context_tokens) >= 6
    assert decode.context_tokens[0] == 350.0          # isl 100 + osl 500 / 2
    assert np.all(np.diff(itl, axis=1) >= 0)          # more requests in flight: slower tokens
    assert np.all(np.diff(itl[:, 0]) > 0)             # longer context: slower tokens
    assert np.all(thpt[:, -1] > thpt[:, 0])           # batching raises throughput


def test_a_decode_point_is_what_the_engine_does() -> None:
    bench_itl, bench_thpt = decode_point(_bench(), 1000, 8)
    assert 0 < bench_itl < 0.1
    assert bench_thpt == pytest.approx(8 / bench_itl, rel=0.01)
    assert prefill_ttft_s(_bench(), 4000) > prefill_ttft_s(_bench(), 400)


def _bench():
    from tidal.bench.profiling import _Bench
    return _Bench(CONFIG.model, CONFIG.accelerator, CONFIG.tp,
                  dataclasses.replace(CONFIG.engine, enable_prefix_cache=False))


def test_a_perturbed_engine_gets_the_unperturbed_profile_and_it_is_measured_once() -> None:
    slow, fast = perturbed("8b-h100", 0.4)
    base = profile_engine(CONFIG)
    for setup in (slow, fast):
        config = sim_config(setup, "azure-conv", "unified", 0)
        assert config.engine.engine_speed != 1.0
        assert profile_engine(config) is base


def _flat_profile() -> PerformanceProfile:
    return PerformanceProfile(
        PrefillProfile((100.0, 4000.0), (0.1, 0.4), (1000.0, 10000.0)),
        DecodeProfile((100.0, 4000.0), (1.0, 16.0, 64.0),
                      ((0.02, 0.05, 0.2), (0.02, 0.05, 0.2)),
                      ((50.0, 500.0, 1200.0), (50.0, 500.0, 1200.0))))


def test_heteroscale_targets_balance_prefill_and_decode_time_per_request() -> None:
    targets = heteroscale_targets(_flat_profile(), 4000.0, 100.0, 0.05)
    assert targets.target_decode_tps_per_replica == 500.0
    # prefill 4000 / 10000 = 0.4 s per request; decode 100 / 500 = 0.2 s -> 2 prefill per decode
    assert targets.pd_ratio == pytest.approx(2.0)
    with pytest.raises(ValueError, match="itl_target_s"):
        heteroscale_targets(_flat_profile(), 4000.0, 100.0, 0.0)
    with pytest.raises(ValueError, match="no requests"):
        workload_lengths([])


def _ctx(mode: str, params: dict | None = None) -> PolicyContext:
    requests = (LLMRequest(arrival_s=0.0, prompt_tokens=1000, output_tokens=100),
                LLMRequest(arrival_s=1.0, prompt_tokens=3000, output_tokens=300))
    return PolicyContext(requests=requests, config=sim_config("8b-h100", "azure-conv", mode, 0),
                         slo=TRACES["azure-conv"].slo, limits=Feasibility(10_000, 400_000),
                         min_replicas=1, max_replicas=9, params=params or {})


def test_the_bench_builds_both_rivals_from_the_profile_and_the_workload_slo() -> None:
    planner = build_policy(PolicySpec("dynamo-planner"), _ctx("unified")).autoscaler
    assert isinstance(planner, DynamoStylePlanner)
    assert planner.profile is profile_engine(CONFIG)
    assert (planner.ttft_s, planner.itl_s) == (1.0, 0.1)
    assert (planner.min_replicas, planner.max_replicas) == (1, 9)
    built = build_policy(PolicySpec("heteroscale"), _ctx("disaggregated"))
    hetero = built.autoscaler
    assert isinstance(hetero, HeteroScaleStyle)
    expected = heteroscale_targets(profile_engine(CONFIG), 2000.0, 200.0, 0.1)
    assert hetero.target_decode_tps_per_replica == expected.target_decode_tps_per_replica
    assert hetero.pd_ratio == expected.pd_ratio
    assert built.notes["pd_ratio"] == round(expected.pd_ratio, 3)
    # --policies parameters still override what the profile gave
    assert build_policy(PolicySpec("heteroscale", (("pd_ratio", 0.5),)),
                        _ctx("disaggregated", {"pd_ratio": 0.5})).autoscaler.pd_ratio == 0.5


def test_heteroscale_runs_only_in_disaggregated_mode() -> None:
    assert not POLICIES["heteroscale"].runs_in("unified")
    assert POLICIES["dynamo-planner"].runs_in("unified")
    plan = BenchPlan(traces=("azure-conv",), modes=("unified", "disaggregated"),
                     policies=(PolicySpec("heteroscale"), PolicySpec("dynamo-planner")))
    assert [(c.mode, c.policy.name) for c in plan.cells()] == [
        ("unified", "dynamo-planner"), ("disaggregated", "heteroscale"),
        ("disaggregated", "dynamo-planner")]
