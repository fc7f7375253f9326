"""The simulated prefix cache reports vLLM's KV-block residency histograms with vLLM's semantics
(vllm/v1/core/kv_cache_metrics.py): hits are accesses, gaps run start to start between them, a
followed block keeps its last four accesses, values are reported when it is evicted, and the
sampling is seeded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S
from tidal.sim.prefix_cache import PrefixCache, ResidencyHistograms

BOUNDS = (*VLLM_RESIDENCY_BUCKETS_S, math.inf)


def _at(value_s: float) -> int:
    return ResidencyHistograms.bucket(value_s)


def _cache(rate: float | None = 1.0, seed: tuple[int, ...] = (0,)) -> PrefixCache:
    return PrefixCache(kv_blocks_per_entry=32, residency_sample_rate=rate, residency_seed=seed)


def _turn(cache: PrefixCache, start_s: float, end_s: float) -> None:
    """One turn of a session re-reading block 7: hit at its start, released at its end."""
    assert cache.match_and_reference((7,), 1, start_s) == 1
    cache.release((7,), end_s, None)


def test_gaps_run_start_to_start_and_the_first_pause_is_no_gap() -> None:
    cache = _cache()
    cache.insert_referenced(7, 0.0)          # turn 0 computes the block (allocation: no access)
    cache.release((7,), 2.0, None)
    _turn(cache, 3.0, 4.0)                   # first hit: pause 1 s, but no earlier access -> no gap
    _turn(cache, 10.0, 12.0)                 # gap 7 s (pause 6 s + the previous turn's 1 s)
    assert cache.take_residency().reuse_gap.sum() == 0, "nothing is reported before the eviction"
    cache.evict(32, 100.0)
    reported = cache.take_residency()
    expected_gap = np.zeros(len(BOUNDS))
    expected_gap[_at(7.0)] = 32              # every one of the entry's 32 engine blocks was sampled
    assert np.array_equal(reported.reuse_gap, expected_gap)
    expected_idle = np.zeros(len(BOUNDS))
    expected_idle[_at(90.0)] = 32            # eviction at 100 s, last access at 10 s
    assert np.array_equal(reported.idle_before_evict, expected_idle)
    assert cache.take_residency().idle_before_evict.sum() == 0, "each value is reported once"


def test_only_the_last_four_accesses_count() -> None:
    cache = _cache()
    cache.insert_referenced(7, 0.0)
    cache.release((7,), 0.5, None)
    for start in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
        _turn(cache, start, start + 0.1)
    cache.evict(32, 40.0)
    gaps = cache.take_residency().reuse_gap
    assert gaps.sum() == 3 * 32              # accesses 4, 8, 16, 32: three gaps
    assert [i for i in range(len(BOUNDS)) if gaps[i]] == sorted({_at(4.0), _at(8.0), _at(16.0)})


def test_a_never_hit_block_reports_its_idle_time_from_allocation() -> None:
    cache = _cache()
    cache.insert_referenced(3, 5.0)
    cache.release((3,), 6.0, None)
    cache.evict(32, 65.0)
    reported = cache.take_residency()
    assert reported.reuse_gap.sum() == 0 and reported.idle_before_evict[_at(60.0)] == 32


def test_sampling_is_binomial_per_engine_block_and_seeded() -> None:
    def reported(seed: tuple[int, ...]) -> np.ndarray:
        cache = _cache(0.01, seed)
        for h in range(4000):
            cache.insert_referenced(h, 0.0)
            cache.release((h,), 1.0, None)
        cache.evict(4000 * 32, 10.0)
        return cache.take_residency().idle_before_evict

    first = reported((0, 1))
    assert np.array_equal(first, reported((0, 1))), "same seed, same histograms"
    assert not np.array_equal(first, reported((0, 2)))
    assert first.sum() == pytest.approx(4000 * 32 * 0.01, rel=0.15)  # 1 % of the engine blocks


def test_without_a_rate_nothing_is_followed() -> None:
    cache = _cache(None)
    cache.insert_referenced(7, 0.0)
    cache.release((7,), 1.0, None)
    cache.evict(32, 5.0)
    assert cache.take_residency().idle_before_evict.sum() == 0
    with pytest.raises(ValueError):
        _cache(0.0)
