"""``kvCache.ttl: auto`` in the decision core, learning pauses from the engines' KV-block residency
histograms (``PoolObservation.kv_residency``): trusted only with enough gaps, never moved by
unusable increments, persisted across a restart, counted once however often the core ticks."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.test_modeldeployment import ACCS, _md, _obs, _restart
from tests.predictors.test_kv_residency import _hist
from tidal.core.modeldeployment import decide_workload, kv_ttl_seconds
from tidal.core.state import CoreState
from tidal.policies.defaults import KV_SIGNAL_MIN_GAPS
from tidal.policies.guards import REASON_KV_RESIDENCY_INVALID
from tidal.policies.interface import KvResidency, PoolObservation

WINDOW_S = 60.0
INTERVAL_S = 15.0


SHORT = KvResidency(_hist({1.0: 20.0, 2.0: 8.0}), _hist({600.0: 2.0}), WINDOW_S)
"""Mostly 1-2 s reuse gaps (agents' tool calls), a few blocks idle for minutes before eviction."""


def _tick(md: Any, now: float, residency: KvResidency | None, state: CoreState | None) -> Any:
    pool = PoolObservation(ready_replicas=1, running_requests=4.0, waiting_requests=0.0, request_rate_rps=2.0,
                           kv_residency=residency)
    return decide_workload(md, _obs(now, {"unified": pool}, {"unified": {"b": 1}}, interval_s=INTERVAL_S), state)


def _run(md: Any, residencies: list[KvResidency | None], state: CoreState | None = None,
         start: float = 0.0) -> tuple[list[Any], CoreState]:
    out = []
    for i, r in enumerate(residencies):
        wd, state = _tick(md, start + INTERVAL_S * i, r, state)
        out.append(wd)
    assert state is not None
    return out, state


def test_short_gaps_raise_the_ttl_only_once_there_are_enough_of_them() -> None:
    md = _md()
    decisions, state = _run(md, [SHORT] * 40)
    ttls = [wd.kv_ttl_s for wd in decisions]
    per_tick = 28.0 * INTERVAL_S / WINDOW_S  # each window's increments weighted interval / window
    trusted = next(i for i, _ in enumerate(ttls) if (i + 1) * per_tick >= KV_SIGNAL_MIN_GAPS)
    assert all(t == kv_ttl_seconds(md) == 0.0 for t in ttls[:trusted]), "the prior until enough gaps"
    assert 1.0 <= ttls[-1] <= 10.0, "short gaps: pin about as long as they last"
    # decayed with the predictor's 6-hour half-life over the 10 minutes
    assert state.kv_pauses is not None and state.kv_pauses.ended_weight() == pytest.approx(40 * per_tick, rel=0.02)


def test_overlapping_windows_are_counted_once() -> None:
    """Ticks 15 s apart read 60 s windows: each increment counts a quarter, so a run learns about
    as many gaps as the engines reported, whatever the tick interval."""
    _, state = _run(_md(), [SHORT] * 8)
    assert state.kv_pauses is not None
    assert state.kv_pauses.ended_weight() == pytest.approx(8 * 28.0 / 4, rel=0.01)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["nan", "negative", "falling", "no-inf", "window"]), st.integers(0, 30))
def test_unusable_increments_are_not_learnt_and_never_move_the_ttl(kind: str, at: int) -> None:
    good, bad = list(SHORT.reuse_gap), list(SHORT.reuse_gap)
    if kind == "nan":
        bad[-1] = (math.inf, math.nan)
    elif kind == "negative":
        bad[0] = (bad[0][0], -5.0)
    elif kind == "falling":
        bad[-1] = (math.inf, 1.0)
    elif kind == "no-inf":
        bad = bad[:-1]
    broken = KvResidency(tuple(bad), SHORT.idle_before_evict, -1.0 if kind == "window" else WINDOW_S)
    assert tuple(good) == SHORT.reuse_gap
    md = _md()
    clean, _ = _run(md, [SHORT] * 40)
    dirty, state = _run(md, [SHORT] * at + [broken] + [SHORT] * (40 - at))
    ttls = [wd.kv_ttl_s for wd in dirty]
    assert ttls[at] == (ttls[at - 1] if at else kv_ttl_seconds(md)), "an unusable tick keeps the TTL"
    assert ttls[:at] + ttls[at + 1:] == [wd.kv_ttl_s for wd in clean], "and teaches nothing"
    reasons = [r for r in dirty[at].decision.reasons if r.code == REASON_KV_RESIDENCY_INVALID]
    assert len(reasons) == 1 and reasons[0].pool == "unified" and "the KV TTL stays" in reasons[0].message
    assert not any(r.code == REASON_KV_RESIDENCY_INVALID for wd in clean for r in wd.decision.reasons)


def test_fixed_ttl_off_and_sglang_ignore_the_signal() -> None:
    for md, want in ((_md(kvCache={"ttl": "45s"}), 45.0), (_md(kvCache={"ttl": "off"}), None)):
        decisions, state = _run(md, [SHORT] * 20)
        assert {wd.kv_ttl_s for wd in decisions} == {want} and state.kv_pauses is None


def test_without_the_signal_auto_is_the_prior() -> None:
    md = _md()
    decisions, state = _run(md, [None] * 10)
    assert {wd.kv_ttl_s for wd in decisions} == {kv_ttl_seconds(md)} and state.kv_pauses is None


def test_learnt_pauses_survive_a_restart() -> None:
    md = _md()
    straight, _ = _run(md, [SHORT] * 30)
    first, state = _run(md, [SHORT] * 15)
    second, _ = _run(md, [SHORT] * 15, _restart(state), start=15 * INTERVAL_S)
    assert [wd.kv_ttl_s for wd in first + second] == [wd.kv_ttl_s for wd in straight]
    assert straight[-1].kv_ttl_s > 0


def test_long_idle_times_keep_the_ttl_at_zero() -> None:
    """Blocks mostly evicted after idling minutes, few gaps: sessions rarely come back in time."""
    rarely = KvResidency(_hist({20.0: 10.0, 60.0: 10.0}), _hist({120.0: 200.0}), WINDOW_S)
    decisions, _ = _run(_md(), [rarely] * 40)
    assert decisions[-1].kv_ttl_s == 0.0


def test_the_accelerator_prices_the_hold() -> None:
    """The TTL is priced on the most preferred class (``a``: the cheapest per goodput), as
    ``kv_ttl_seconds`` with it; a class with 8x the memory holds KV more cheaply, so it pins longer."""
    md = _md()
    decisions, state = _run(md, [SHORT] * 40)
    assert decisions[-1].kv_ttl_s == kv_ttl_seconds(md, state.kv_pauses, ACCS["a"])
    roomy = replace(ACCS["a"], memory_bytes=8 * ACCS["a"].memory_bytes)
    assert kv_ttl_seconds(md, state.kv_pauses, roomy) >= decisions[-1].kv_ttl_s
