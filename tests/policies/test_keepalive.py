"""The hybrid histogram keep-alive policy: windows from idle times, and instance decisions."""

from __future__ import annotations

import pytest
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
    policy = KeepAlivePolicy(concurrency_target=10, max_instances=8)
    d, s = policy.decide(obs(0, rate=5, running=35), None)
    assert d.desired_replicas[POOL_FUNCTION] == 4
    d, s = policy.decide(obs(15, rate=5, running=5), s)
    assert d.desired_replicas[POOL_FUNCTION] == 4  # dip inside the 60 s stable window
    d, s = policy.decide(obs(75, rate=5, running=5), s)
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
def test_cached_window_equals_the_window_of_the_histogram(steps: list[tuple[float, bool]]) -> None:
    policy = KeepAlivePolicy(concurrency_target=10)
    state, now = None, 0.0
    for dt, active in steps:
        now += dt
        _, state = policy.decide(
            obs(now, rate=1.0 if active else 0.0, running=1 if active else 0), state
        )
        assert policy.window(state) == keepalive_window(state.histogram)


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
