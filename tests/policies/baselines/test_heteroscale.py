"""HeteroScale-style baseline: decode TPS proportional control, prefill at a fixed P/D ratio."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policies.baselines.helpers import json_roundtrip
from tidal.policies.baselines.catalog import PROFILED_BASELINE_FACTORIES
from tidal.policies.baselines.heteroscale import HeteroScaleStyle
from tidal.policies.interface import (POOL_DECODE, POOL_PREFILL, POOL_UNIFIED, Observation,
                                      PoolObservation)


def disagg(t, tps, decode_ready=2, prefill_ready=1):
    return Observation(t, {
        POOL_PREFILL: PoolObservation(ready_replicas=prefill_ready, output_tokens_rps=None),
        POOL_DECODE: PoolObservation(ready_replicas=decode_ready, output_tokens_rps=tps)})


def policy(**kw) -> HeteroScaleStyle:
    kw.setdefault("target_decode_tps_per_replica", 1000.0)
    kw.setdefault("pd_ratio", 0.5)
    kw.setdefault("max_replicas", 20)
    return HeteroScaleStyle(**kw)


def test_decode_follows_tps_and_prefill_follows_the_ratio() -> None:
    decision, _ = policy().decide(disagg(0.0, 5200.0), None)
    assert decision.desired_replicas == {POOL_DECODE: 6, POOL_PREFILL: 3}
    assert [r.code for r in decision.reasons] == ["heteroscale-decode-tps", "heteroscale-pd-ratio"]


def test_within_the_band_keeps_the_decode_count() -> None:
    decision, _ = policy().decide(disagg(0.0, 2150.0, decode_ready=2), None)
    assert decision.desired_replicas[POOL_DECODE] == 2
    assert decision.reasons[0].code == "heteroscale-within-band"


def test_unified_pool_scales_on_its_own_output_tps() -> None:
    o = Observation(0.0, {POOL_UNIFIED: PoolObservation(ready_replicas=1,
                                                        output_tokens_rps=2500.0)})
    decision, _ = policy().decide(o, None)
    assert decision.desired_replicas == {POOL_UNIFIED: 3}


def test_missing_tps_and_calls_within_the_period_hold() -> None:
    p = policy()
    decision, state = p.decide(disagg(0.0, None, decode_ready=4, prefill_ready=2), None)
    assert decision.desired_replicas == {POOL_DECODE: 4, POOL_PREFILL: 2}
    decision, _ = p.decide(disagg(5.0, 9000.0), json_roundtrip(state))
    assert decision.desired_replicas == {POOL_DECODE: 4, POOL_PREFILL: 2}


def test_bad_parameters_name_the_field() -> None:
    with pytest.raises(ValueError, match="target_decode_tps_per_replica"):
        HeteroScaleStyle(target_decode_tps_per_replica=0)
    with pytest.raises(ValueError, match="pd_ratio"):
        HeteroScaleStyle(target_decode_tps_per_replica=10, pd_ratio=0)
    assert PROFILED_BASELINE_FACTORIES["heteroscale"](
        1, 4, target_decode_tps_per_replica=10).name == "heteroscale"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 1e5)), st.integers(0, 30),
                          st.integers(0, 30)), min_size=1, max_size=30),
       st.integers(0, 3), st.integers(3, 30), st.floats(0.1, 4))
def test_within_bounds_json_state_and_no_mutation(steps, lo, hi, ratio) -> None:
    p, state = policy(min_replicas=lo, max_replicas=hi, pd_ratio=ratio), None
    for i, (tps, dr, pr) in enumerate(steps):
        o = disagg(i * 15.0, tps, dr, pr)
        before = copy.deepcopy(state)
        decision, new_state = p.decide(o, state)
        assert state == before
        assert all(lo <= n <= hi for n in decision.desired_replicas.values())
        if tps is None:
            assert decision.desired_replicas == {
                POOL_PREFILL: min(max(pr, lo), hi), POOL_DECODE: min(max(dr, lo), hi)}
        state = json_roundtrip(new_state)
