"""KV-TTL bench: the accounting replay's bookkeeping, the oracle's optimality and the engine replay."""

from __future__ import annotations

import math

import pytest

from tidal.bench.kv_ttl import (KVBenchSetup, TidalChooser, TurnEnd, TurnGraph, account_policy,
                                account_suite, hindsight_ttls, run_suite, session_parents, turn_graph,
                                verdict)
from tidal.sim.traces import synthetic_agent_sessions

SETUP = KVBenchSetup(replicas=2)


@pytest.fixture(scope="module")
def agent():
    requests = synthetic_agent_sessions(seed=3, sessions=40)
    return requests, session_parents(requests)


@pytest.fixture(scope="module")
def rows(agent):
    requests, parents = agent
    return account_suite(requests, parents, SETUP, per_category=True, closed_loop=True)


def test_lru_pins_nothing_and_longer_fixed_ttls_trade_memory_for_hits(rows) -> None:
    table, info = rows
    by = {r["policy"]: r for r in table}
    assert list(by) == ["lru", "fixed-10s", "fixed-60s", "fixed-300s", "hindsight", "tidal", "oracle"]
    assert by["lru"]["pinned_token_s"] == 0 and by["lru"]["net_benefit_tokens"] == 0
    fixed = [by[f"fixed-{t}s"] for t in (10, 60, 300)]
    assert [r["pinned_token_s"] for r in fixed] == sorted(r["pinned_token_s"] for r in fixed)
    assert [r["reprefill_tokens"] for r in fixed] == sorted((r["reprefill_tokens"] for r in fixed), reverse=True)
    assert info["returning_turns"] > 0 and 5 < info["break_even_hold_s"] < 15


def test_the_oracle_is_never_beaten(rows) -> None:
    # Per turn the oracle earns max(0, C (1 - price x pause)); any TTL earns at most that.
    table, _ = rows
    oracle = table[-1]["net_benefit_tokens"]
    assert oracle > 0
    assert all(r["net_benefit_tokens"] <= oracle + 1e-6 for r in table)
    assert table[-1]["of_oracle"] == 1.0


def test_hindsight_is_the_best_ttl_per_category_and_never_beats_the_oracle(rows) -> None:
    table, info = rows
    by = {r["policy"]: r for r in table}
    fixed = [by[f"fixed-{t}s"]["net_benefit_tokens"] for t in (10, 60, 300)]
    assert by["hindsight"]["net_benefit_tokens"] >= max(0.0, *fixed) - 1e-6
    assert by["hindsight"]["net_benefit_tokens"] <= by["oracle"]["net_benefit_tokens"] + 1e-6
    assert set(info["hindsight_ttls_s"]) == set(info["tidal_ttls_s"])


def test_hindsight_pins_only_what_pays() -> None:
    # Category "quick" comes back after 1 s (worth a pin at 10 s break-even); "gone" never does.
    graph = TurnGraph({1: 0}, {0: 1.0}, {0: "quick"}, {1: 4096})
    ends = [TurnEnd(0, 0.0, 4096, 1.0, 1, "quick", None, None),
            TurnEnd(2, 0.0, 4096, math.inf, None, None, None, None)]
    best = hindsight_ttls(ends, graph, 0.1, lambda e: e.next_tool or "gone")
    assert 1.0 <= best["quick"] < 1.2 and best["gone"] == 0.0


def test_turns_still_waiting_keep_the_chooser_from_pinning_on_early_short_pauses() -> None:
    # A few sessions came back within 2 s; ninety others have waited 30 s so far. Learnt from the
    # ended pauses alone the TTL would pin (every known pause is short); they are censored pauses.
    tidal = TidalChooser(TurnGraph({}, {}, {}, {}), price_per_s=0.1, per_category=False)
    for rid in range(10):
        tidal.turn_ended(rid, 0.0, None)
        tidal.learn(2.0, 2.0, None, rid)
    assert tidal.choice(None, None).ttl_s > 0  # what the ended pauses alone say
    tidal = TidalChooser(TurnGraph({}, {}, {}, {}), price_per_s=0.1, per_category=False)
    for rid in range(100):
        tidal.turn_ended(rid, 0.0, None)
    for rid in range(10):
        tidal.learn(2.0, 2.0, None, rid)
    assert tidal.choice(None, 30.0).ttl_s == 0.0
    tidal.expire(300.0)  # the engine replay's horizon: a turn waiting maxTTL is a long pause
    assert not tidal._waiting


def test_verdict_reads_the_target() -> None:
    rows = [{"policy": "lru", "net_benefit_tokens": 0.0}, {"policy": "fixed-10s", "net_benefit_tokens": 5.0},
            {"policy": "tidal", "net_benefit_tokens": 9.5}, {"policy": "oracle", "net_benefit_tokens": 10.0}]
    assert verdict(rows) == {"of_oracle": True, "beats_every_fixed": True}
    rows[2]["net_benefit_tokens"] = 4.0
    assert verdict(rows) == {"of_oracle": False, "beats_every_fixed": False}
    # A ceiling of 0 for any TTL (no TTL pays in hindsight): matching it is all a TTL can do.
    rows = [{"policy": "fixed-10s", "net_benefit_tokens": -5.0}, {"policy": "hindsight", "net_benefit_tokens": 0.0},
            {"policy": "tidal", "net_benefit_tokens": 0.0}, {"policy": "oracle", "net_benefit_tokens": 2.0}]
    assert verdict(rows) == {"of_oracle": False, "beats_every_fixed": True, "of_hindsight": True}


def test_learning_is_causal_and_sees_sessions_that_never_return(agent) -> None:
    requests, parents = agent
    graph = turn_graph(requests, parents)
    ends = [TurnEnd(0, 0.0, 512, 2.0, 1, "t", None, None), TurnEnd(1, 1.0, 512, math.inf, None, None, "t", 2.0),
            TurnEnd(2, 500.0, 512, math.inf, None, None, None, None)]
    learnt: list[tuple[float, int, float]] = []
    account_policy(ends, graph, lambda e: 0.0, lambda now, e, pause: learnt.append((now, e.request_id, pause)),
                   horizon_s=300.0)
    # turn 0's pause is known when turn 1 arrives (t=2); turn 1 never returns: known at t=301
    assert learnt == [(2.0, 0, 2.0), (301.0, 1, math.inf)]


def test_engine_replay_pins_in_the_prefix_cache(agent) -> None:
    requests, _ = agent
    head = requests[:150]
    table = run_suite(head, session_parents(head), SETUP)
    by = {r["policy"]: r for r in table}
    assert by["lru"]["pinned_token_s"] == 0 < by["fixed-60s"]["pinned_token_s"]
    assert all(r["finished"] == 150 for r in table)


def test_signal_ttl_learns_short_gaps_and_trusts_only_enough_of_them() -> None:
    from tidal.bench.kv_ttl import signal_ttl
    from tidal.policies.interface import KvResidency
    from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S

    def hist(values: dict[float, float]) -> tuple[tuple[float, float], ...]:
        total, out = 0.0, []
        for le in (*VLLM_RESIDENCY_BUCKETS_S, math.inf):
            total += values.get(le, 0.0)
            out.append((le, total))
        return tuple(out)

    price = 1 / 10.0
    many = signal_ttl(KvResidency(hist({1.0: 200.0}), hist({600.0: 10.0}), 600.0), price)
    assert many["ttl_s"] == many["learnt_ttl_s"] > 0 and many["prior_ttl_s"] == 0.0
    few = signal_ttl(KvResidency(hist({1.0: 10.0}), hist({}), 600.0), price)
    assert few["learnt_ttl_s"] > 0 and few["ttl_s"] == few["prior_ttl_s"] == 0.0, "below the trust threshold"


def test_signal_suite_scores_the_signal_as_the_core_publishes_it() -> None:
    from tidal.bench.kv_ttl import signal_suite, signal_ttl_timeline, timeline_chooser

    requests = synthetic_agent_sessions(seed=3, sessions=150)
    parents = session_parents(requests)
    setup = KVBenchSetup(replicas=1)  # one replica's cache evicts, so the histograms have values
    table, info = signal_suite(requests, parents, setup, closed_loop=True)
    by = {r["policy"]: r for r in table}
    assert {"signal-end", "signal-end-unguarded", "signal-online"} <= set(by)
    assert info["signal"]["censored"] + info["signal"]["reuse_gaps"] > 0, "the replay evicts and reports"
    for name in ("signal-end", "signal-online"):
        assert by[name]["net_benefit_tokens"] <= by["oracle"]["net_benefit_tokens"] + 1e-6
    timeline = signal_ttl_timeline(requests, setup)
    assert [t for t, _ in timeline] == sorted(t for t, _ in timeline)
    pick = timeline_chooser([(10.0, 0.0), (20.0, 3.0)])
    end = TurnEnd(0, 25.0, 512, 1.0, None, None, None, None)
    assert pick(end) == 3.0 and pick(replace_end(end, 15.0)) == 0.0 and pick(replace_end(end, 5.0)) == 0.0


def replace_end(e, end_s: float):
    from dataclasses import replace

    return replace(e, end_s=end_s)
