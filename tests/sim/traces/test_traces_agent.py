"""Synthetic agent sessions: growing shared prefixes, pause model, reproducibility."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.sim.traces import (
    KV_BLOCK_TOKENS,
    AgentModel,
    Lognormal,
    ToolPause,
    load_trace,
    session_pauses,
    synthetic_agent_sessions,
)


def by_session(requests):
    sessions = defaultdict(list)
    for r in requests:
        sessions[r.session_id].append(r)
    return {s: sorted(turns, key=lambda r: r.turn) for s, turns in sessions.items()}


def test_reproducible_for_a_seed_and_different_across_seeds() -> None:
    a = synthetic_agent_sessions(seed=3, sessions=50)
    assert a == synthetic_agent_sessions(seed=3, sessions=50)
    assert a != synthetic_agent_sessions(seed=4, sessions=50)
    assert [r.arrival_s for r in a] == sorted(r.arrival_s for r in a)
    assert [r.request_id for r in a] == list(range(len(a)))


def test_each_turn_extends_the_previous_context_and_reuses_its_full_blocks() -> None:
    for turns in by_session(synthetic_agent_sessions(seed=1, sessions=40)).values():
        assert [r.turn for r in turns] == list(range(len(turns)))
        for before, after in itertools.pairwise(turns):
            assert after.prompt_tokens > before.prompt_tokens + before.output_tokens
            assert after.arrival_s > before.arrival_s
            full_before = before.prompt_tokens // KV_BLOCK_TOKENS
            assert after.hash_ids[:full_before] == before.hash_ids[:full_before]
            # The partial last block of the earlier prompt is never reused.
            if before.prompt_tokens % KV_BLOCK_TOKENS:
                assert before.hash_ids[-1] not in after.hash_ids
        for r in turns:
            assert len(r.hash_ids) == math.ceil(r.prompt_tokens / KV_BLOCK_TOKENS)


def test_system_prompt_blocks_are_shared_by_all_sessions_and_nothing_else_is() -> None:
    model = AgentModel(system_prompt_tokens=3 * KV_BLOCK_TOKENS + 100)
    sessions = by_session(synthetic_agent_sessions(seed=2, sessions=30, model=model))
    assert all(turns[0].hash_ids[:3] == (0, 1, 2) for turns in sessions.values())
    owners = defaultdict(set)
    for sid, turns in sessions.items():
        for r in turns:
            for h in r.hash_ids[3:]:
                owners[h].add(sid)
    assert all(len(sids) == 1 for sids in owners.values())


def test_pauses_follow_each_tools_lognormal() -> None:
    tools = (ToolPause("fast", 0.5, median_s=0.1, sigma=0.5), ToolPause("slow", 0.5, 10.0, 1.0))
    model = AgentModel(tools=tools, mean_turns=10)
    pauses = session_pauses(synthetic_agent_sessions(seed=5, sessions=800, model=model))
    for tool in tools:
        logs = np.log(pauses[tool.name])
        assert len(logs) > 1000
        assert np.median(pauses[tool.name]) == pytest.approx(tool.median_s, rel=0.1)
        assert logs.std() == pytest.approx(tool.sigma, rel=0.1)


def test_turn_gap_is_assumed_response_time_plus_recorded_pause() -> None:
    model = AgentModel(assumed_ttft_s=0.2, assumed_tpot_s=0.01)
    for turns in by_session(synthetic_agent_sessions(seed=6, sessions=20, model=model)).values():
        assert turns[0].pause_s == 0.0 and turns[0].tool is None
        for before, after in itertools.pairwise(turns):
            expected = 0.2 + 0.01 * before.output_tokens + after.pause_s
            assert after.arrival_s - before.arrival_s == pytest.approx(expected)
            assert after.tool is not None


def test_session_starts_are_poisson_at_the_given_rate() -> None:
    model = AgentModel(session_rate_rps=2.0, mean_turns=1.0)
    requests = synthetic_agent_sessions(seed=7, sessions=4000, model=model)
    starts = np.array([r.arrival_s for r in requests if r.turn == 0])
    gaps = np.diff(starts)
    assert 1 / gaps.mean() == pytest.approx(2.0, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.06)


def test_turn_counts_are_geometric_with_the_given_mean_and_cap() -> None:
    model = AgentModel(mean_turns=5.0, max_turns=12)
    turns = [
        len(t)
        for t in by_session(synthetic_agent_sessions(seed=8, sessions=3000, model=model)).values()
    ]
    assert max(turns) == 12
    # Mean of min(Geometric(1/5), 12) = 5 * (1 - 0.8**12).
    assert np.mean(turns) == pytest.approx(5 * (1 - 0.8**12), rel=0.05)


def test_context_limit_ends_sessions_early() -> None:
    model = AgentModel(max_context_tokens=6000, mean_turns=30)
    requests = synthetic_agent_sessions(seed=9, sessions=50, model=model)
    assert max(r.prompt_tokens for r in requests) <= 6000


def test_default_token_means_are_of_the_order_of_mooncake_toolagent() -> None:
    """Mooncake FAST'25 tool&agent trace: mean input 8,596, mean output 182 tokens."""
    requests = synthetic_agent_sessions(seed=10, sessions=1500)
    assert np.mean([r.output_tokens for r in requests]) == pytest.approx(182, rel=0.15)
    assert 8_596 / 2 < np.mean([r.prompt_tokens for r in requests]) < 8_596 * 2


@pytest.mark.parametrize(
    "kwargs",
    [{"session_rate_rps": 0}, {"mean_turns": 0.5}, {"tools": ()}, {"max_context_tokens": 0}],
)
def test_bad_parameters_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError):
        AgentModel(**kwargs)


def test_bad_tool_is_rejected() -> None:
    with pytest.raises(ValueError, match="tool 'x'"):
        ToolPause("x", weight=1.0, median_s=0.0, sigma=1.0)


def test_agent_name_in_load_trace_is_seeded() -> None:
    assert load_trace("agent", seed=1) == load_trace("agent", seed=1)
    assert load_trace("agent", seed=1) != load_trace("agent", seed=2)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    system=st.integers(min_value=0, max_value=5000),
    median=st.floats(min_value=1, max_value=3000),
)
def test_hash_ids_always_cover_the_prompt(seed: int, system: int, median: float) -> None:
    model = AgentModel(system_prompt_tokens=system, tool_result_tokens=Lognormal(median, 0.5))
    for r in synthetic_agent_sessions(seed=seed, sessions=5, model=model):
        assert len(r.hash_ids) == math.ceil(r.prompt_tokens / KV_BLOCK_TOKENS)
        assert len(set(r.hash_ids)) == len(r.hash_ids)
