"""KV-cache TTL policy: bounds, zero when pauses outlast the maximum, monotonicity (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelSpec
from tidal.policies.interface import AcceleratorProfile
from tidal.policies.kv_ttl import (
    auto_ttl,
    break_even_hold_s,
    capacity_bound_ttl_s,
    choose_ttl,
    choose_ttl_by_category,
    deployment_price_per_s,
    empirical_cdf,
)
from tidal.predictors.pauses import SessionPausePredictor

H100 = AcceleratorProfile(name="h100", hourly_cost=4.0, peak_tflops=989.0, memory_bandwidth_gbps=3350.0,
                          memory_bytes=80e9)

pauses_st = st.lists(st.floats(min_value=0.01, max_value=5_000.0, allow_nan=False), min_size=1, max_size=40)
price_st = st.floats(min_value=1e-4, max_value=2.0, allow_nan=False)
max_ttl_st = st.floats(min_value=0.0, max_value=3_600.0, allow_nan=False)


@settings(max_examples=80, deadline=None)
@given(pauses_st, price_st, max_ttl_st, st.floats(min_value=0.0, max_value=4_000.0))
def test_ttl_within_bounds(pauses: list[float], price: float, max_ttl: float, capacity: float) -> None:
    choice = choose_ttl(empirical_cdf(pauses), price_per_s=price, max_ttl_s=max_ttl, capacity_ttl_s=capacity)
    assert 0.0 <= choice.ttl_s <= min(max_ttl, capacity) + 1e-9
    assert 0.0 <= choice.hit_probability <= 1.0
    assert choice.expected_hold_s <= choice.ttl_s + 1e-9
    assert choice.net_benefit >= 0.0


@settings(max_examples=60, deadline=None)
@given(pauses_st, price_st, max_ttl_st)
def test_zero_when_every_pause_exceeds_the_maximum(pauses: list[float], price: float, max_ttl: float) -> None:
    longer = [max_ttl + 1.0 + p for p in pauses]
    assert choose_ttl(empirical_cdf(longer), price_per_s=price, max_ttl_s=max_ttl).ttl_s == 0.0


@settings(max_examples=80, deadline=None)
@given(pauses_st, price_st, price_st, max_ttl_st)
def test_ttl_never_grows_with_the_price_of_memory(pauses: list[float], p1: float, p2: float, max_ttl: float) -> None:
    # net(T) = F(T) - price * E[min(X, T)] has decreasing differences in (T, price): Topkis.
    low, high = sorted((p1, p2))
    cdf = empirical_cdf(pauses)
    assert (choose_ttl(cdf, price_per_s=high, max_ttl_s=max_ttl).ttl_s
            <= choose_ttl(cdf, price_per_s=low, max_ttl_s=max_ttl).ttl_s)


@settings(max_examples=80, deadline=None)
@given(pauses_st, price_st, st.floats(min_value=1.0, max_value=3_600.0), st.integers(1, 40))
def test_ttl_never_grows_with_more_sessions_that_do_not_come_back_in_time(
        pauses: list[float], price: float, max_ttl: float, extra: int) -> None:
    # Mixing in pauses beyond the maximum adds -w * price * T to net(T): decreasing differences in (T, w).
    base = choose_ttl(empirical_cdf(pauses), price_per_s=price, max_ttl_s=max_ttl)
    more = choose_ttl(empirical_cdf(pauses + [max_ttl * 2 + 1.0] * extra), price_per_s=price, max_ttl_s=max_ttl)
    assert more.ttl_s <= base.ttl_s


def test_short_pauses_are_held_just_past_their_end() -> None:
    choice = choose_ttl(empirical_cdf([1.0, 1.5, 2.0]), price_per_s=0.1, max_ttl_s=300.0)
    assert 2.0 <= choice.ttl_s <= 2.1 and choice.hit_probability == 1.0
    assert choice.net_benefit == pytest.approx(1.0 - 0.1 * 1.5, abs=0.01)


def test_a_pause_longer_than_the_break_even_hold_is_not_worth_holding() -> None:
    # Holding 20 s at 0.1 re-prefills per second costs twice the re-prefill it saves.
    assert choose_ttl(empirical_cdf([20.0]), price_per_s=0.1, max_ttl_s=300.0).ttl_s == 0.0
    assert choose_ttl(empirical_cdf([5.0]), price_per_s=0.1, max_ttl_s=300.0).ttl_s > 5.0


def test_free_memory_holds_to_the_maximum_when_some_pauses_end_there() -> None:
    choice = choose_ttl(empirical_cdf([10.0, 250.0]), price_per_s=0.0, max_ttl_s=300.0)
    assert 250.0 <= choice.ttl_s <= 260.0


def test_capacity_bound_caps_the_expected_pinned_kv() -> None:
    cdf = empirical_cdf([100.0])
    # 1 turn end/s x 10k tokens x E[min(X, T)] <= 0.5 x 400k tokens -> E[min(X, T)] <= 20 s.
    bound = capacity_bound_ttl_s(cdf, turn_end_rate_rps=1.0, mean_context_tokens=10_000, kv_capacity_tokens=400_000)
    assert 19.0 <= bound <= 20.0
    assert capacity_bound_ttl_s(cdf, turn_end_rate_rps=0.0, mean_context_tokens=1.0,
                                kv_capacity_tokens=1.0, max_ttl_s=300.0) == 300.0
    assert choose_ttl(cdf, price_per_s=0.0, max_ttl_s=300.0, capacity_ttl_s=bound).ttl_s <= bound


def test_categories_get_their_own_ttl() -> None:
    choices = choose_ttl_by_category({"file_read": empirical_cdf([0.05, 0.1, 0.2]),
                                      "human": empirical_cdf([40.0, 90.0, 300.0])},
                                     price_per_s=0.1, max_ttl_s=300.0)
    assert 0.2 <= choices["file_read"].ttl_s < 1.0 and choices["human"].ttl_s == 0.0


def test_learned_pauses_move_the_ttl_from_the_prior() -> None:
    prior = auto_ttl(300.0, 0.1)
    predictor = SessionPausePredictor()
    for i in range(200):
        predictor.observe(float(i), 2.0 + (i % 5) * 0.2, "code_exec")
    learned = auto_ttl(300.0, 0.1, predictor, "code_exec")
    assert prior.ttl_s == 0.0  # the prior's pauses (median 30 s) outlast a 10 s break-even hold
    assert 2.5 <= learned.ttl_s <= 10.0


def test_break_even_hold_from_the_profile() -> None:
    price = deployment_price_per_s(ModelSpec(name="llama-3.1-8b", parametersBillions=8.0), H100)
    assert 5.0 <= 1.0 / price <= 15.0  # ~9 s for an 8B model on one H100 (defaults.py)
    assert deployment_price_per_s() == pytest.approx(0.1)
    assert break_even_hold_s(2e-5, 4e5) == pytest.approx(8.0)


@pytest.mark.parametrize("kwargs", [{"price_per_s": -1.0, "max_ttl_s": 1.0}, {"price_per_s": 1.0, "max_ttl_s": -1.0},
                                    {"price_per_s": 1.0, "max_ttl_s": math.inf}])
def test_bad_input_names_the_field(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="price_per_s|max_ttl_s"):
        choose_ttl(empirical_cdf([1.0]), **kwargs)


def test_grid_does_not_depend_on_the_bound() -> None:
    cdf = empirical_cdf(np.geomspace(0.1, 100.0, 50).tolist())
    wide = choose_ttl(cdf, price_per_s=0.05, max_ttl_s=3_600.0)
    narrow = choose_ttl(cdf, price_per_s=0.05, max_ttl_s=wide.ttl_s + 1e-6)
    assert narrow.ttl_s == pytest.approx(wide.ttl_s, abs=1e-5)
