"""The hybrid histogram keep-alive policy: windows from idle times, and instance decisions."""

from __future__ import annotations

import pytest
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.policies.interface import POOL_FUNCTION, Observation, PoolObservation
from tidal.policies.keepalive import (
    HISTOGRAM_BIN_S,
    HISTOGRAM_RANGE_S,
    STABLE_WINDOW_S,
    IdleHistogram,
    KeepAlivePolicy,
    KeepAliveState,
    keepalive_window,
)

idle_times = st.lists(st.floats(0, 2 * HISTOGRAM_RANGE_S, allow_nan=False), max_size=60)


def histogram_of(values: list[float]) -> IdleHistogram:
    hist = IdleHistogram()
    for v in values:
        hist = hist.record(v)
    return hist


def obs(
    now: float,
    *,
    rate: float | None = 0.0,
    running: float | None = 0.0,
    ready: int = 1,
    available: bool = True,
) -> Observation:
    pool = PoolObservation(ready_replicas=ready, request_rate_rps=rate, running_requests=running)
    return Observation(now, {POOL_FUNCTION: pool}, metrics_available=available)


def test_periodic_function_is_unloaded_then_prewarmed_before_the_next_invocation() -> None:
    hist = histogram_of([30 * 60.0 + 10] * 20)  # invoked every ~30 minutes
    window = keepalive_window(hist)
    assert window.mode == "histogram"
    # Head and tail are the 30-minute bin; margins widen it by 10 % either way.
    assert window.prewarm_s == pytest.approx(30 * 60 * 0.9)
    assert window.end_s == pytest.approx(31 * 60 * 1.1)


def test_few_or_spread_idle_times_fall_back_to_standard_keep_alive() -> None:
    assert keepalive_window(histogram_of([60.0, 120.0])).mode == "standard"
    spread = histogram_of([i * HISTOGRAM_BIN_S + 1 for i in range(240)])
    window = keepalive_window(spread)
    assert window.mode == "standard"
    assert (window.prewarm_s, window.keepalive_s) == (0.0, HISTOGRAM_RANGE_S)


def test_mostly_out_of_range_idle_times_use_the_predicted_idle_time() -> None:
    window = keepalive_window(histogram_of([6 * 3600.0] * 8 + [60.0]))
    assert window.mode == "out-of-range"
    assert window.prewarm_s == pytest.approx(0.85 * 6 * 3600)
    assert window.keepalive_s == pytest.approx(0.30 * 6 * 3600)


def test_plain_bin_counts_are_accepted() -> None:
    counts = [0] * 240
    counts[10] = 50
    window = keepalive_window(counts)
    assert window.mode == "histogram"
    assert window.prewarm_s == pytest.approx(600 * 0.9)


@given(idle_times)
def test_windows_are_bounded(values: list[float]) -> None:
    window = keepalive_window(histogram_of(values))
    assert window.prewarm_s >= 0 and window.keepalive_s >= 0
    # Histogram branch: at most the range plus 10 %; out-of-range branch: 85 % + 30 % of an observed idle time.
    assert window.end_s <= max([HISTOGRAM_RANGE_S * 1.1] + [1.15 * v for v in values]) + 1e-6


@given(
    st.lists(st.floats(0, HISTOGRAM_RANGE_S - 1, allow_nan=False), min_size=5, max_size=40),
    st.floats(0, HISTOGRAM_RANGE_S - 1, allow_nan=False),
)
def test_longer_idle_times_never_shorten_the_learned_tail(
    values: list[float], extra: float
) -> None:
    """Adding one idle time longer than all others keeps or extends the end of the window when the
    histogram stays representative (monotonicity of the tail)."""
    base = keepalive_window(histogram_of(values))
    longer = keepalive_window(histogram_of(values + [max(values + [extra])]))
    if base.mode == longer.mode == "histogram":
        assert longer.end_s >= base.end_s - 1e-6


def test_histogram_is_bounded() -> None:
    hist = IdleHistogram()
    for _ in range(12_000):
        hist = hist.record(30.0)
    for _ in range(40):
        hist = hist.record(1e6)
    assert hist.total <= 10_000 + 40
    assert len(hist.recent_out_of_range) == 16


def test_policy_follows_a_periodic_function() -> None:
    """Invoked every 10 minutes: once learned, the function is unloaded after each invocation and
    brought back shortly before the next one."""
    policy = KeepAlivePolicy(concurrency_target=10, cold_start_s=30)
    state = None
    t = 0.0
    period, tick = 600.0, 15.0
    counts: dict[str, int] = {}
    while t < 40 * period:
        active = (t % period) < tick
        decision, state = policy.decide(
            obs(t, rate=1.0 if active else 0.0, running=3 if active else 0), state
        )
        if t > 30 * period:
            key = decision.reasons[0].code
            counts[key] = counts.get(key, 0) + 1
            phase_in_period = t % period
            # Zero between the end of the stable window and the pre-warm (540 s head minus 30 s cold start).
            if tick + STABLE_WINDOW_S <= phase_in_period < period * 0.9 - 30 - tick:
                assert decision.desired_replicas[POOL_FUNCTION] == 0, (t, decision)
            if phase_in_period >= period - tick:
                assert decision.desired_replicas[POOL_FUNCTION] >= 1, (t, decision)
        t += tick
    assert isinstance(state, KeepAliveState)
    assert policy.window(state).mode == "histogram"
    assert counts.get("unloaded-until-prewarm", 0) > 0 and counts.get("prewarm", 0) > 0


def test_concurrency_sets_instances_and_the_stable_window_holds_them() -> None:
    policy = KeepAlivePolicy(concurrency_target=10, max_instances=8, keep_alive_s=0)
    d, s = policy.decide(obs(0, rate=5, running=35), None)
    assert d.desired_replicas[POOL_FUNCTION] == 4
    d, s = policy.decide(obs(15, rate=5, running=5, ready=4), s)
    assert d.desired_replicas[POOL_FUNCTION] == 4  # dip inside the 60 s stable window
    d, s = policy.decide(obs(75, rate=5, running=5, ready=4), s)
    assert d.desired_replicas[POOL_FUNCTION] == 1
    d, s = policy.decide(obs(90, rate=100, running=1000), s)
    assert d.desired_replicas[POOL_FUNCTION] == 8  # capped at max


def test_fixed_keep_alive_then_zero() -> None:
    policy = KeepAlivePolicy(keep_alive_s=300)
    d, s = policy.decide(obs(0, rate=1, running=1), None)
    for t in (100, 200, 290):
        d, s = policy.decide(obs(t), s)
        assert d.desired_replicas[POOL_FUNCTION] == 1
    d, s = policy.decide(obs(310), s)
    assert d.desired_replicas[POOL_FUNCTION] == 0
    assert d.reasons[0].code == "keep-alive-expired"


def test_no_scale_to_zero_keeps_one() -> None:
    policy = KeepAlivePolicy(keep_alive_s=10, scale_to_zero=False)
    _, s = policy.decide(obs(0, rate=1, running=1), None)
    d, _ = policy.decide(obs(1000), s)
    assert d.desired_replicas[POOL_FUNCTION] == 1


pools = st.builds(
    PoolObservation,
    ready_replicas=st.integers(0, 20),
    starting_replicas=st.integers(0, 3),
    request_rate_rps=st.none() | st.floats(0, 1e3),
    running_requests=st.none() | st.floats(0, 1e4),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 600), pools, st.booleans()), min_size=1, max_size=25),
    st.integers(0, 3),
    st.integers(1, 30),
    st.booleans(),
)
def test_decisions_stay_in_bounds_and_missing_metrics_never_scale_down(
    steps: list[tuple[float, PoolObservation, bool]],
    min_i: int,
    max_extra: int,
    zero: bool,
) -> None:
    min_i = 0 if zero else min_i
    policy = KeepAlivePolicy(
        concurrency_target=10,
        min_instances=min_i,
        max_instances=min_i + max_extra,
        scale_to_zero=zero,
        activity_window_s=60,
    )
    state, now = None, 0.0
    for dt, pool, available in steps:
        now += dt
        decision, state = policy.decide(Observation(now, {POOL_FUNCTION: pool}, available), state)
        n = decision.desired_replicas[POOL_FUNCTION]
        assert policy.floor <= n <= policy.max_instances
        if not zero:
            assert n >= 1
        unknown = not available or (pool.request_rate_rps is None and pool.running_requests is None)
        if unknown:
            assert n == min(max(pool.current_replicas, policy.floor), policy.max_instances)


def test_rejects_bad_configuration_naming_the_field() -> None:
    with pytest.raises(ValueError, match="concurrencyTarget"):
        KeepAlivePolicy(concurrency_target=0)
    with pytest.raises(ValueError, match="minInstances"):
        KeepAlivePolicy(min_instances=5, max_instances=2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 900), st.booleans()), min_size=1, max_size=60))
def test_cached_window_equals_the_window_learned_from_the_histogram(
    steps: list[tuple[float, bool]],
) -> None:
    policy = KeepAlivePolicy(concurrency_target=10)
    state, now = None, 0.0
    for dt, active in steps:
        now += dt
        _, state = policy.decide(
            obs(now, rate=1.0 if active else 0.0, running=1 if active else 0), state
        )
        # The cache is None until an idle time is learned; then it equals a fresh computation.
        assert (state.learned or policy.learn(state.histogram)) == policy.learn(state.histogram)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 20000), st.booleans()), min_size=1, max_size=40))
def test_state_round_trips_through_its_dict_form(steps: list[tuple[float, bool]]) -> None:
    import json

    from tidal.policies.keepalive import state_from_dict, state_to_dict

    policy = KeepAlivePolicy(concurrency_target=10)
    state, now = None, 0.0
    for dt, active in steps:
        now += dt
        _, state = policy.decide(
            obs(now, rate=1.0 if active else 0.0, running=1 if active else 0), state
        )
    restored = state_from_dict(json.loads(json.dumps(state_to_dict(state))))
    assert restored is not None
    assert restored.histogram == state.histogram
    assert (restored.last_active_s, restored.anchor_s, restored.was_active) == (
        state.last_active_s,
        state.anchor_s,
        state.was_active,
    )
    assert (restored.ranks, restored.idle_since_s, restored.last_seen_s) == (
        state.ranks,
        state.idle_since_s,
        state.last_seen_s,
    )
    # The restored policy decides the next idle tick (past the stable window) exactly as the original.
    later = obs(now + 1000)
    assert (
        policy.decide(later, restored)[0].desired_replicas
        == policy.decide(later, state)[0].desired_replicas
    )


def test_garbage_state_is_ignored() -> None:
    from tidal.policies.keepalive import state_from_dict

    assert state_from_dict({"version": 99}) is None
    assert state_from_dict({"version": 1, "bins": "x"}) is None
    assert state_from_dict("nope") is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1, 400), st.floats(0, 500)), min_size=1, max_size=30),
    st.floats(0, 1200),
    st.floats(0, 1200),
)
def test_a_longer_keep_alive_never_keeps_fewer_instances(steps, a: float, b: float) -> None:
    short, long_ = (KeepAlivePolicy(concurrency_target=10, keep_alive_s=k) for k in sorted((a, b)))
    s_state = l_state = None
    now = 0.0
    for dt, running in steps:
        now += dt
        o = obs(now, rate=1.0 if running > 0 else 0.0, running=running)
        d_short, s_state = short.decide(o, s_state)
        d_long, l_state = long_.decide(o, l_state)
        assert d_short.desired_replicas[POOL_FUNCTION] <= d_long.desired_replicas[POOL_FUNCTION]


# --- instance ranks, cost-chosen end, learning period ----------------------------------------


def fn_obs(
    now: float, *, peak: int, running: int = 0, gaps: tuple[float, ...] = (), ready: int = 0
) -> Observation:
    """What the serverless simulator hands over: a FunctionPoolObservation with the extras."""
    from tidal.sim.serverless.observation import FunctionPoolObservation

    pool = FunctionPoolObservation(
        ready_replicas=ready,
        request_rate_rps=0.0,
        running_requests=float(running),
        waiting_requests=0.0,
        arrivals_since_last_tick=peak,
        peak_in_flight_since_last_tick=peak,
        idle_gaps_s=gaps,
    )
    return Observation(now, {POOL_FUNCTION: pool})


def test_a_burst_between_ticks_is_kept_for_the_keep_alive_window() -> None:
    """The bug this replaces: 5 instances started for a burst that ended before the tick were
    sized from the in-flight count at the tick (0) and removed, then cold-started again."""
    policy = KeepAlivePolicy(concurrency_target=1, keep_alive_s=600)
    d, s = policy.decide(fn_obs(15, peak=5, running=0), None)
    assert d.desired_replicas[POOL_FUNCTION] == 5
    assert d.details["idle_timeout_s"] == 600
    for t in (30, 300, 600):
        d, s = policy.decide(fn_obs(t, peak=0, ready=5), s)
        assert d.desired_replicas[POOL_FUNCTION] == 5, t
    d, s = policy.decide(fn_obs(630, peak=0, ready=5), s)
    assert d.desired_replicas[POOL_FUNCTION] == 0


def test_higher_ranks_age_out_separately() -> None:
    """Rank k is kept for the window after it was last needed, not after the function was."""
    policy = KeepAlivePolicy(concurrency_target=1, keep_alive_s=100)
    _, s = policy.decide(fn_obs(0, peak=4), None)
    for t in range(15, 200, 15):
        d, s = policy.decide(fn_obs(t, peak=1), s)
    # Ranks 2-4 were last needed at 0 (gone after 100 s); rank 1 is needed every tick.
    assert d.desired_replicas[POOL_FUNCTION] == 1


def test_idle_times_of_extra_instances_are_learned() -> None:
    """Rank 2 is needed every 5 minutes while rank 1 is busy throughout: its 5-minute idle times
    land in the histogram (rank 1 shows none at tick resolution)."""
    policy = KeepAlivePolicy(concurrency_target=1)
    state = None
    for t in range(0, 3 * 3600, 15):
        _, state = policy.decide(fn_obs(t, peak=2 if t % 300 == 0 else 1), state)
    assert isinstance(state, KeepAliveState)
    assert state.histogram.counts[5] > 20
    assert sum(state.histogram.counts) == state.histogram.counts[5]


def test_periodic_burst_is_prewarmed_at_its_size() -> None:
    """A burst of 3 every 10 minutes: once learned, all 3 ranks are unloaded after the stable
    window and pre-warmed before the next burst."""
    policy = KeepAlivePolicy(concurrency_target=1, cold_start_s=10)
    state, prewarmed = None, []
    for t in range(0, 4 * 3600, 15):
        d, state = policy.decide(fn_obs(t, peak=3 if t % 600 == 0 else 0), state)
        if t > 3 * 3600 and t % 600 == 585:
            prewarmed.append(d.desired_replicas[POOL_FUNCTION])
        if t > 3 * 3600 and t % 600 == 300:
            assert d.desired_replicas[POOL_FUNCTION] == 0, t
    assert prewarmed and all(n == 3 for n in prewarmed)


def _cost(counts: list[int], oob: int, head: int, k: int, cost: float) -> float:
    bin_s = 60.0
    end, h = (k + 1) * bin_s, head * bin_s
    held = sum(
        c * min(max((i + 0.5) * bin_s - h, 0.0), end - h) for i, c in enumerate(counts) if i >= head
    )
    misses = sum(c for i, c in enumerate(counts) if i > k) + oob
    return held + oob * (end - h) + cost * misses


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=30),
    st.integers(0, 5),
    st.floats(0, 5000),
    st.data(),
)
def test_cheapest_end_is_the_cheapest(counts: list[int], oob: int, cost: float, data) -> None:
    """Against brute force over every edge, with the cost written out directly."""
    from tidal.policies.keepalive import cheapest_end_bin

    head = data.draw(st.integers(0, len(counts) - 1))
    got = cheapest_end_bin(counts, oob, head, 60.0, cost)
    assert head <= got < len(counts)
    best = min(_cost(counts, oob, head, k, cost) for k in range(head, len(counts)))
    assert _cost(counts, oob, head, got, cost) == pytest.approx(best)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=30),
    st.integers(0, 5),
    st.floats(0, 5000),
    st.floats(0, 5000),
)
def test_a_dearer_cold_start_never_ends_the_window_earlier(
    counts: list[int], oob: int, a: float, b: float
) -> None:
    from tidal.policies.keepalive import cheapest_end_bin

    low, high = sorted((a, b))
    shorter = cheapest_end_bin(counts, oob, 0, 60.0, low)
    assert shorter <= cheapest_end_bin(counts, oob, 0, 60.0, high)


def test_cost_rule_cuts_a_long_rare_tail_and_keeps_a_common_one() -> None:
    # 97 short idle times and 3 of ~3 hours: keeping 3 h for them is dearer than 3 cold starts.
    rare = histogram_of([30.0] * 97 + [3 * 3600.0] * 3)
    assert keepalive_window(rare).end_s > 3 * 3600  # the paper's p99 keeps them
    assert keepalive_window(rare, cold_start_cost_s=600).end_s == pytest.approx(60 * 1.1)
    # Half the idle times are ~5 min: cheaper to hold than a cold start worth 10 min...
    common = histogram_of([30.0] * 50 + [5 * 60.0 + 5] * 50)
    assert keepalive_window(common, cold_start_cost_s=600).end_s == pytest.approx(6 * 60 * 1.1)
    # ...but ~20 min idle times are not: each would hold 20 minutes to save 10 minutes' worth.
    longer = histogram_of([30.0] * 50 + [20 * 60.0 + 5] * 50)
    assert keepalive_window(longer, cold_start_cost_s=600).end_s == pytest.approx(60 * 1.1)


def test_paper_mode_is_available() -> None:
    policy = KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None)
    hist = histogram_of([30.0] * 97 + [3 * 3600.0] * 3)
    assert policy.learn(hist) == keepalive_window(hist)
    assert policy.learn(IdleHistogram()).end_s == HISTOGRAM_RANGE_S


def test_short_windows_wait_for_enough_history() -> None:
    """A learned window shorter than the platform default is used only after TRUST_SAMPLES idle
    times from TRUST_HISTORY_S of watching; before that the default is the floor."""
    from tidal.policies.keepalive import DEFAULT_KEEP_ALIVE_S, TRUST_HISTORY_S

    policy = KeepAlivePolicy(concurrency_target=1)
    state = None
    t = 0
    while t < TRUST_HISTORY_S + 600:
        _, state = policy.decide(fn_obs(t, peak=1 if t % 60 == 0 else 0, gaps=(30.0,)), state)
        assert isinstance(state, KeepAliveState)
        end = policy.window(state).end_s
        if t < TRUST_HISTORY_S:
            assert end >= DEFAULT_KEEP_ALIVE_S, t
        t += 15
    assert policy.window(state).end_s < DEFAULT_KEEP_ALIVE_S


def test_prewarm_by_cost_off_keeps_the_papers_head_with_the_cost_chosen_end() -> None:
    # 3 % of idle times fall between the stable window and the 5th percentile (240 s): at a dear
    # cold start the cost rule stays loaded through them; the paper's head unloads and pre-warms.
    hist = histogram_of([90.0] * 3 + [250.0] * 60 + [1000.0] * 37)
    by_cost = keepalive_window(hist, cold_start_cost_s=10_000.0, hold_s=60.0)
    paper_head = keepalive_window(hist, cold_start_cost_s=10_000.0, hold_s=60.0, prewarm_by_cost=False)
    assert by_cost.prewarm_s == 0.0
    assert paper_head.prewarm_s == pytest.approx(240.0 * 0.9)
    assert paper_head.end_s == pytest.approx(by_cost.end_s)  # the same cost-chosen end
    # When the paper's head is inside the hold it stays loaded, as the cost rule does.
    short = histogram_of([20.0] * 10 + [250.0] * 90)
    assert keepalive_window(short, cold_start_cost_s=10_000.0, hold_s=60.0, prewarm_by_cost=False).prewarm_s == 0.0
    assert KeepAlivePolicy(prewarm_by_cost=False).learn(hist).prewarm_s == pytest.approx(216.0)


def test_learning_floor_for_the_first_instance_only() -> None:
    """``learning_floor_all_ranks`` False: while learning, a one-off burst's extra instances follow
    the learned window and only the function's first instance is kept through the floor (a burst
    of 485 instances with 11 idle times held them all for 2.7 h in the Pareto bench)."""
    from tidal.policies.keepalive import DEFAULT_KEEP_ALIVE_S

    def kept_after_burst(policy: KeepAlivePolicy) -> list[int]:
        state, out = None, []
        for t in range(0, 900, 15):
            peak = 5 if t < 60 else 0
            d, state = policy.decide(fn_obs(t, peak=peak, gaps=(20.0,) * 6 if t == 30 else ()), state)
            out.append(d.desired_replicas[POOL_FUNCTION])
        return out

    every = kept_after_burst(KeepAlivePolicy(concurrency_target=1))
    first = kept_after_burst(KeepAlivePolicy(concurrency_target=1, learning_floor_all_ranks=False))
    at = int(300 // 15)  # 5 minutes in: past the learned 1-minute window, inside the 10-minute floor
    assert every[at] == 5 and first[at] == 1
    assert every[int((DEFAULT_KEEP_ALIVE_S + 120) // 15)] == 0 == first[int((DEFAULT_KEEP_ALIVE_S + 120) // 15)]


def test_trust_samples_sets_how_many_idle_times_the_learned_window_waits_for() -> None:
    """``trust_samples`` (the Pareto bench sweeps the paper's 5 against the default 20): with 8 idle
    times from 25 minutes of watching, the learned 1-minute window is used at 5, not at 20."""
    from tidal.policies.keepalive import DEFAULT_KEEP_ALIVE_S, MIN_IDLE_SAMPLES, TRUST_HISTORY_S

    def end_after(policy: KeepAlivePolicy) -> float:
        state = None
        for t in range(0, int(TRUST_HISTORY_S) + 300, 15):
            busy = t % 180 == 0 and t < 180 * 8
            _, state = policy.decide(fn_obs(t, peak=1 if busy else 0, gaps=(30.0,) if busy else ()), state)
        assert isinstance(state, KeepAliveState) and 5 <= state.histogram.total < 20
        return policy.window(state).end_s

    assert end_after(KeepAlivePolicy(concurrency_target=1)) >= DEFAULT_KEEP_ALIVE_S
    assert end_after(KeepAlivePolicy(concurrency_target=1, trust_samples=MIN_IDLE_SAMPLES)) < DEFAULT_KEEP_ALIVE_S
    with pytest.raises(ValueError, match="trust_samples"):
        KeepAlivePolicy(trust_samples=-1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 600), st.integers(0, 300)), min_size=1, max_size=120))
def test_rank_steps_stay_ordered_and_bounded(steps: list[tuple[int, int]]) -> None:
    from tidal.policies.keepalive import MAX_RANK_STEPS

    policy = KeepAlivePolicy(concurrency_target=1, max_instances=1000)
    state, now = None, 0.0
    for dt, peak in steps:
        now += dt
        d, state = policy.decide(fn_obs(now, peak=peak), state)
        assert isinstance(state, KeepAliveState)
        ranks = state.ranks
        assert len(ranks) <= MAX_RANK_STEPS
        assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(ranks, ranks[1:]))
        # Never fewer instances than needed now; never more than ever needed.
        assert d.desired_replicas[POOL_FUNCTION] >= min(peak, 1000)
        assert d.desired_replicas[POOL_FUNCTION] <= max([p for _, p in steps] + [0])


def test_worth_persisting_when_windows_change_or_the_function_goes_idle() -> None:
    from tidal.policies.keepalive import worth_persisting

    policy = KeepAlivePolicy(concurrency_target=1)
    _, a = policy.decide(fn_obs(0, peak=1), None)
    assert worth_persisting(None, a)
    _, b = policy.decide(fn_obs(15, peak=1), a)
    assert not worth_persisting(a, b)  # still busy, nothing learned
    _, c = policy.decide(fn_obs(30, peak=0), b)
    assert worth_persisting(b, c)  # went idle


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, HISTOGRAM_RANGE_S - 1, allow_nan=False), min_size=5, max_size=60),
    st.floats(64, 8192),
    st.floats(64, 8192),
)
def test_larger_instances_never_keep_longer(values: list[float], a: float, b: float) -> None:
    """The cold start is priced in GB-seconds: the same idle times on larger instances never
    give a later end (the held memory costs more per second)."""
    small, large = sorted((a, b))
    policy = KeepAlivePolicy()
    hist = histogram_of(values)
    assert policy.learn(hist, large).end_s <= policy.learn(hist, small).end_s + 1e-6


def test_cold_start_price_follows_instance_memory() -> None:
    from tidal.policies.keepalive import COLD_START_COST_GB_S, DEFAULT_KEEP_ALIVE_S

    policy = KeepAlivePolicy()
    assert policy.cold_start_cost_s(2048) == pytest.approx(COLD_START_COST_GB_S / 2)
    assert policy.cold_start_cost_s() == DEFAULT_KEEP_ALIVE_S  # memory unknown
    assert KeepAlivePolicy(memory_mb=512).cold_start_cost_s() == pytest.approx(
        COLD_START_COST_GB_S * 2
    )
    assert KeepAlivePolicy(cold_start_cost_gb_s=None).cold_start_cost_s(512) is None


def test_the_operator_prices_cold_starts_with_the_spec_memory() -> None:
    from tidal.api.validation import parse_spec
    from tidal.controllers.serverlessfunction import KIND, policy_for

    spec = parse_spec(
        KIND,
        {"container": {"image": "example/fn:1"}, "memory": "2Gi", "slo": {"latency": "1s"}},
    )
    policy = policy_for(spec)  # type: ignore[arg-type]
    assert policy.memory_mb == 2048
    assert policy.cold_start_cost_s() == pytest.approx(policy.cold_start_cost_s(2048))


def test_more_of_the_same_idle_times_are_not_written_every_tick() -> None:
    """A busy function learns an idle time of an extra instance every few ticks; when the windows
    stay the same the state is not worth a write (the operator writes a ConfigMap for it)."""
    from tidal.policies.keepalive import worth_persisting

    policy = KeepAlivePolicy(concurrency_target=1)
    state, learned_without_write = None, 0
    for t in range(0, 3 * 3600, 15):
        _, new = policy.decide(fn_obs(t, peak=2 if t % 300 == 0 else 1), state)
        if state is not None and t > 2 * 3600 and new.histogram != state.histogram:
            learned_without_write += not worth_persisting(state, new)
        state = new
    assert learned_without_write > 5


def test_bursts_with_short_inner_gaps_are_unloaded_and_prewarmed() -> None:
    """A burst every 10 minutes: most idle times are gaps inside a burst (under a minute), the rest
    ~9.5 minutes. The paper's 5th percentile is 0 (no pre-warm); holding ~9.5 minutes costs more
    than a cold start worth ~6 minutes. The stable-window hold covers the short gaps, so the
    cheapest plan unloads after it and pre-warms before the next burst."""
    hist = histogram_of([20.0] * 200 + [570.0] * 40)
    assert keepalive_window(hist).prewarm_s == 0
    keep_only = keepalive_window(hist, cold_start_cost_s=370)
    assert keep_only.prewarm_s == 0 and keep_only.end_s == pytest.approx(66)
    window = keepalive_window(hist, cold_start_cost_s=370, hold_s=60)
    assert window.prewarm_s == pytest.approx(540 * 0.9)
    assert window.end_s == pytest.approx(600 * 1.1)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, HISTOGRAM_RANGE_S - 1, allow_nan=False), min_size=5, max_size=60))
def test_the_chosen_window_never_costs_more_than_staying_loaded(values: list[float]) -> None:
    """Whatever the choice (stay loaded, or unload after the hold and pre-warm), its expected cost
    over the recorded idle times is at most that of the cheapest stay-loaded window."""
    from tidal.policies.keepalive import _prewarm_option, cheapest_end_bin

    hist = histogram_of(values)
    if hist.total < 5:
        return
    counts, oob = list(hist.counts), hist.out_of_range
    stay = _cost(counts, oob, 0, cheapest_end_bin(counts, oob, 0, 60.0, 600.0), 600.0)
    option = _prewarm_option(counts, oob, 60.0, 5.0, 60.0, 600.0)
    if option is not None:
        head, end, cost = option
        assert head >= 1 and end >= head
        held = sum(c * min((i + 0.5) * 60.0, 60.0) for i, c in enumerate(counts)) + oob * 60.0
        missed = sum(counts[1:head])
        assert cost == pytest.approx(held + 600.0 * missed + _cost(counts, oob, head, end, 600.0))
    window = keepalive_window(hist, cold_start_cost_s=600.0, hold_s=60.0)
    if window.mode == "histogram":
        chosen = stay if window.prewarm_s == 0 else option[2]  # type: ignore[index]
        assert chosen <= stay + 1e-6


def test_a_restart_never_shortens_a_keep_alive() -> None:
    """Saved at the start of a burst, busy at 3 instances until a crash, restarted idle 100 s later:
    without resuming, the ranks' ages come from the save and all three go at once."""
    from tidal.policies.keepalive import resumed, state_from_dict, state_to_dict

    policy = KeepAlivePolicy(keep_alive_s=300.0)

    def tick(now: float, running: float, instances: int, state):
        obs = PoolObservation(ready_replicas=instances, running_requests=running, request_rate_rps=running)
        return policy.decide(Observation(now, {POOL_FUNCTION: obs}), state)

    _, state = tick(0.0, 0.0, 0, None)
    _, saved = tick(15.0, 3.0, 3, state)  # the burst starts: worth_persisting says write
    stored = state_from_dict(state_to_dict(saved))
    naive, _ = tick(700.0, 0.0, 3, stored)
    assert naive.desired_replicas[POOL_FUNCTION] == 0, "the ages from the save are past the keep-alive"
    decision, after = tick(700.0, 0.0, 3, resumed(stored, 700.0, 3))
    assert decision.desired_replicas[POOL_FUNCTION] == 3
    assert tick(995.0, 0.0, 3, after)[0].desired_replicas[POOL_FUNCTION] == 3
    assert tick(1005.0, 0.0, 3, after)[0].desired_replicas[POOL_FUNCTION] == 0  # one keep-alive after the restart


def test_the_papers_tail_percentile_is_a_knob() -> None:
    # 95 idle times of 2 minutes and 5 of 3 hours: p99 keeps through the long ones, p90 does not.
    hist = histogram_of([120.0] * 95 + [3 * 3600.0] * 5)
    paper = KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None)
    shorter = KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None, tail_percentile=90.0)
    assert paper.learn(hist).end_s > 3 * 3600.0 > shorter.learn(hist).end_s
    with pytest.raises(ValueError, match="tail_percentile"):
        KeepAlivePolicy(head_percentile=50.0, tail_percentile=10.0)


def test_the_keep_alive_while_learning_follows_the_cold_start_price() -> None:
    default = KeepAlivePolicy()
    assert default.learning_keep_alive_s() == 600.0  # the platforms' 10 minutes at 750 GB-s
    assert KeepAlivePolicy(cold_start_cost_gb_s=1500.0).learning_keep_alive_s() == 1200.0
    assert KeepAlivePolicy(cold_start_cost_gb_s=1e9).learning_keep_alive_s() == HISTOGRAM_RANGE_S
    assert KeepAlivePolicy(cold_start_cost_gb_s=1500.0, learning_follows_cost=False).learning_keep_alive_s() == 600.0
    assert KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None).learning_keep_alive_s() is None
    # Too few idle times: the window is the keep-alive while learning.
    few = histogram_of([60.0, 90.0])
    assert KeepAlivePolicy(cold_start_cost_gb_s=3000.0).learn(few).end_s == 2400.0


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 1e6), st.floats(0, 1e6), st.one_of(st.none(), st.floats(0, 2 * HISTOGRAM_RANGE_S)))
def test_extra_instances_while_learning_are_bounded_and_follow_the_price(
    a: float, b: float, cap: float | None
) -> None:
    """The keep-alive while learning of a burst's extra instances: at most the first instance's
    and the cap, and a dearer cold start never shortens either."""
    low, high = (KeepAlivePolicy(cold_start_cost_gb_s=c, extra_ranks_learning_cap_s=cap) for c in sorted((a, b)))
    for p in (low, high):
        extra, first = p.extra_ranks_learning_keep_alive_s(), p.learning_keep_alive_s()
        assert extra is not None and first is not None
        assert extra <= first and (cap is None or extra <= cap)
    assert low.extra_ranks_learning_keep_alive_s() <= high.extra_ranks_learning_keep_alive_s()  # type: ignore[operator]
    assert low.learning_keep_alive_s() <= high.learning_keep_alive_s()  # type: ignore[operator]


def burst_then_idle(policy: KeepAlivePolicy, size: int, gaps: int, until_s: int) -> list[int]:
    """Instances decided every 15 s after a one-off burst of ``size`` in the first minute that
    left ``gaps`` short idle times of 20 s."""
    state, out = None, []
    for t in range(0, until_s, 15):
        peak = size if t < 60 else 0
        d, state = policy.decide(fn_obs(t, peak=peak, gaps=(20.0,) * gaps if t == 30 else ()), state)
        out.append(d.desired_replicas[POOL_FUNCTION])
    return out


def test_a_one_off_bursts_extra_instances_leave_after_the_cap_while_the_first_stays() -> None:
    """At 16 times the default price the keep-alive while learning is 2.7 h; a one-off burst's
    extra instances are held the platforms' 10 minutes (the cap) and only the first instance the
    2.7 h (the Pareto bench's one-off 485-instance burst held them all through the hour)."""
    from tidal.policies.keepalive import COLD_START_COST_GB_S, DEFAULT_KEEP_ALIVE_S

    dear = 16 * COLD_START_COST_GB_S
    for gaps in (2, 11):  # fewer than 5 idle times (no window yet) and fewer than 20 (not trusted)
        capped = burst_then_idle(KeepAlivePolicy(concurrency_target=1, cold_start_cost_gb_s=dear,
                                                 max_instances=500), 485, gaps, 3 * 3600)
        uncapped = burst_then_idle(KeepAlivePolicy(concurrency_target=1, cold_start_cost_gb_s=dear,
                                                   max_instances=500, extra_ranks_learning_cap_s=None),
                                   485, gaps, 3 * 3600)
        inside_cap, past_cap = int(300 // 15), int((DEFAULT_KEEP_ALIVE_S + 120) // 15)
        assert capped[inside_cap] == uncapped[inside_cap] == 485
        assert capped[past_cap] == 1 and uncapped[past_cap] == 485
        two_hours = int(2 * 3600 // 15)
        assert capped[two_hours] == 1  # the first instance: the price's keep-alive while learning
        assert capped[-1] == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(0, 25), st.floats(0, 1.0))
def test_the_cap_changes_nothing_at_or_below_the_default_price(size: int, gaps: int, f: float) -> None:
    from tidal.policies.keepalive import COLD_START_COST_GB_S

    for price in (COLD_START_COST_GB_S, f * COLD_START_COST_GB_S):
        kw = {"concurrency_target": 1, "cold_start_cost_gb_s": price}
        assert burst_then_idle(KeepAlivePolicy(**kw), size, gaps, 1500) == burst_then_idle(
            KeepAlivePolicy(**kw, extra_ranks_learning_cap_s=None), size, gaps, 1500)


def grown_after_release(policy: KeepAlivePolicy) -> list[int]:
    """Instances decided after a 30-instance burst at 1800 s on a busy function whose learned hold
    is about a minute; at 2490 s forty idle times of 630 s lengthen the hold to 726 s, which
    covers the burst's released instances (690 s old) again."""
    state, out = None, []
    for t in range(0, 2520, 15):
        gaps: tuple[float, ...] = (20.0,)
        if t == 2490:
            gaps = (630.0,) * 40
        d, state = policy.decide(fn_obs(t, peak=30 if t == 1800 else 1, gaps=gaps), state)
        out.append(d.desired_replicas[POOL_FUNCTION])
    return out


def test_restart_by_cost_does_not_bring_back_instances_no_idle_time_outlasts() -> None:
    """``restart_by_cost``: a keep-alive that grew does not start again the instances it let go
    when no recorded idle time outlasts their age (a busy function started 590 instances an hour
    after letting them go in the Pareto bench); off, the grown hold counts them again."""
    # Pre-warm off: the grown window would otherwise pre-warm them, which it may (a bet on the
    # idle times it has seen, chosen for unloaded instances).
    kw = {"concurrency_target": 1, "memory_mb": 1280.0, "cold_start_cost_gb_s": 12000.0,
          "max_instances": 50, "prewarm": False}
    before = grown_after_release(KeepAlivePolicy(**kw))
    after = grown_after_release(KeepAlivePolicy(**kw, restart_by_cost=True))
    released = int((1800 + 300) // 15)
    assert before[released] == after[released] == 1
    assert before[-1] == 30 and after[-1] == 1
    assert before[: released + 1] == after[: released + 1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.floats(16, 3000)), min_size=1, max_size=60))
def test_restart_by_cost_never_keeps_more_and_hybrid_ignores_it(steps: list[tuple[int, float]]) -> None:
    """The restart rule only ever removes instances a grown hold would have started again (at
    each tick from the same state), and the paper's policy (no price) is unaffected by it."""
    for base in (KeepAlivePolicy(concurrency_target=1, memory_mb=512.0, cold_start_cost_gb_s=6000.0),
                 KeepAlivePolicy(concurrency_target=1, cold_start_cost_gb_s=None, few_samples_keep_alive_s=None)):
        on = replace(base, restart_by_cost=True)
        s_on = None
        for i, (peak, gap) in enumerate(steps):
            o = fn_obs(i * 15.0, peak=peak, gaps=(gap,) if peak else ())
            d_on, s_next = on.decide(o, s_on)
            d_off, _ = base.decide(o, replace(s_on, released_before_s=None) if s_on is not None else None)
            assert d_on.desired_replicas[POOL_FUNCTION] <= d_off.desired_replicas[POOL_FUNCTION]
            if base.cold_start_cost_gb_s is None:
                assert d_on.desired_replicas == d_off.desired_replicas
            s_on = s_next


def test_released_before_round_trips_and_is_absent_when_unset() -> None:
    from tidal.policies.keepalive import state_from_dict, state_to_dict

    assert "releasedBeforeS" not in state_to_dict(KeepAliveState())
    back = state_from_dict(state_to_dict(KeepAliveState(released_before_s=123.0)))
    assert back is not None and back.released_before_s == 123.0


@settings(max_examples=80, deadline=None)
@given(idle_times, st.floats(0, 1), st.floats(0, 1), st.floats(0, 50_000))
def test_a_likelier_late_prewarm_never_turns_staying_loaded_into_prewarming(
    values: list[float], a: float, b: float, cost: float
) -> None:
    """``prewarm_late_fraction`` only adds to the pre-warm option's cost: where a smaller share
    stays loaded, a larger one does too, and 0 is the rule without it."""
    hist = histogram_of(values)
    low, high = sorted((a, b))
    kw = {"cold_start_cost_s": cost, "hold_s": STABLE_WINDOW_S}
    if keepalive_window(hist, prewarm_late_fraction=low, **kw).prewarm_s == 0.0:
        assert keepalive_window(hist, prewarm_late_fraction=high, **kw).prewarm_s == 0.0
    assert keepalive_window(hist, prewarm_late_fraction=0.0, **kw) == keepalive_window(hist, **kw)


def test_a_late_prewarm_share_keeps_a_cheap_instance_loaded_at_a_high_price() -> None:
    """Idle times of 3 minutes after a 60 s hold: pre-warming is the cheaper choice when it is
    always on time; charged 0.34 % of a cold start worth 53 h (128 MB at 24,000 GB-s) per pre-warm,
    staying loaded is (docs/bench.md: 3 cold starts an hour from pre-warms one tick late)."""
    hist = histogram_of([185.0] * 200)
    policy = KeepAlivePolicy(cold_start_cost_gb_s=24_000.0)
    assert policy.learn(hist, memory_mb=128.0).prewarm_s > 0
    late = KeepAlivePolicy(cold_start_cost_gb_s=24_000.0, prewarm_late_fraction=0.0034)
    assert late.learn(hist, memory_mb=128.0).prewarm_s == 0.0
    with pytest.raises(ValueError, match="prewarm_late_fraction"):
        KeepAlivePolicy(prewarm_late_fraction=2.0)
