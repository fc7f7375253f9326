"""Prefix (KV) cache of one replica, keyed by prompt block hashes, with LRU eviction and TTL pins.

Keys are the Mooncake trace's ``hash_ids``: one id per 512-token block of the
prompt; equal ids mean an identical prefix up to and including that block.
An entry is *referenced* while a running sequence uses it and *evictable* once
no sequence does. Evictable entries go to the back of an LRU queue; an entry
may also be *pinned* until a deadline (per-session KV time-to-live, as in
Continuum's tool-call-aware KV retention) and is then evicted only when no
unpinned entry is left -- the cache never blocks a running sequence, it
just loses the pin.

Memory is counted in engine KV blocks; every entry holds
``block_tokens // kv_block_tokens`` of them whether referenced or not.
``pinned_block_s`` integrates the blocks held only because of a pin: from the
release that pinned an entry until the pin expires, the entry is referenced
again, or it is evicted (the KV memory-seconds a TTL policy costs).

With ``residency_sample_rate`` the cache reports vLLM's KV-block residency histograms
(``--kv-cache-metrics``; vllm/v1/core/kv_cache_metrics.py) with vLLM's semantics: a sample of
blocks is followed from allocation; an *access* is a prefix-cache hit; each followed block keeps
its last four access times; when it is evicted it reports the gaps between them (start-to-start:
a hit happens when a turn is admitted) and its idle time before eviction (eviction time minus its
last access, or its allocation when never hit). vLLM draws a coin per engine block; an entry here
holds ``kv_blocks_per_entry`` engine blocks that share every access, so the entry draws how many of
them are sampled (binomial, from a seeded generator: the same replay reports the same histograms)
and reports each value that many times. One difference, on the short side: an entry is allocated
when its prompt has been computed (vLLM allocates when the prefill is scheduled), so a never-hit
block's idle time here lacks its prefill.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np

from tidal.predictors.kv_residency import VLLM_RESIDENCY_BUCKETS_S

MOONCAKE_HASH_BLOCK_TOKENS = 512  # Mooncake trace README: one hash id per 512-token block
RESIDENCY_ACCESS_HISTORY = 4
"""Access times a followed block keeps (vLLM ``BlockMetricsState.access_history``, a deque of 4):
at most three gaps per block."""


@dataclass
class _Followed:
    """A sampled entry's residency record (vLLM ``BlockMetricsState``)."""

    blocks: int
    """Engine blocks of the entry that were sampled: each reports every value."""
    last_access_s: float
    accesses: deque[float] = field(default_factory=lambda: deque(maxlen=RESIDENCY_ACCESS_HISTORY))


class ResidencyHistograms:
    """Bucket counts (not cumulative) of the two residency histograms, vLLM's bounds plus +Inf."""

    def __init__(self) -> None:
        n = len(VLLM_RESIDENCY_BUCKETS_S) + 1
        self.reuse_gap = np.zeros(n)
        self.idle_before_evict = np.zeros(n)

    @staticmethod
    def bucket(value_s: float) -> int:
        """Index of the bucket ``(lo, le]`` holding ``value_s`` (Prometheus: ``value <= le``)."""
        return bisect.bisect_left(VLLM_RESIDENCY_BUCKETS_S, value_s)

    def add(self, other: "ResidencyHistograms") -> None:
        self.reuse_gap += other.reuse_gap
        self.idle_before_evict += other.idle_before_evict


@dataclass
class _Entry:
    refs: int = 0
    pinned_until_s: float = float("-inf")
    pinned_since_s: float | None = None  # start of the pin being accounted, if any


class PrefixCache:
    """Block-hash prefix cache; all sizes in engine KV blocks."""

    def __init__(self, *, kv_blocks_per_entry: int,
                 block_tokens: int = MOONCAKE_HASH_BLOCK_TOKENS,
                 residency_sample_rate: float | None = None, residency_seed: tuple[int, ...] = (0,)) -> None:
        if residency_sample_rate is not None and not 0 < residency_sample_rate <= 1:
            raise ValueError(f"residency_sample_rate must be in (0, 1], got {residency_sample_rate!r}")
        self.kv_blocks_per_entry = kv_blocks_per_entry
        self.residency_sample_rate = residency_sample_rate
        self._residency_rng = np.random.default_rng(list(residency_seed)) if residency_sample_rate else None
        self._followed: dict[int, _Followed] = {}
        self._reported = ResidencyHistograms()
        self.block_tokens = block_tokens
        self._entries: dict[int, _Entry] = {}
        self._evictable: OrderedDict[int, None] = OrderedDict()  # LRU order, oldest first
        self.hits_blocks = 0
        self.lookups_blocks = 0
        self.evictions = 0
        self.pinned_evictions = 0
        self.pinned_block_s = 0.0

    def _close_pin(self, entry: _Entry, now_s: float) -> None:
        """Account the pinned time of ``entry`` up to ``now_s`` (or its expiry) and end it."""
        if entry.pinned_since_s is not None:
            end = min(now_s, entry.pinned_until_s)
            self.pinned_block_s += max(0.0, end - entry.pinned_since_s) * self.kv_blocks_per_entry
            entry.pinned_since_s = None

    def close_pins(self, now_s: float) -> None:
        """Account every open pin up to ``now_s`` (end of a replay)."""
        for entry in self._entries.values():
            self._close_pin(entry, now_s)

    @property
    def blocks(self) -> int:
        """KV blocks held by all entries (referenced or not)."""
        return len(self._entries) * self.kv_blocks_per_entry

    @property
    def evictable_blocks(self) -> int:
        return len(self._evictable) * self.kv_blocks_per_entry

    @property
    def referenced_blocks(self) -> int:
        return self.blocks - self.evictable_blocks

    def __contains__(self, hash_id: int) -> bool:
        return hash_id in self._entries

    def match_and_reference(self, hash_ids: tuple[int, ...], max_blocks: int,
                            now_s: float = float("inf")) -> int:
        """Reference the longest cached prefix of ``hash_ids[:max_blocks]``; return its length."""
        hit = 0
        for h in hash_ids[:max_blocks]:
            entry = self._entries.get(h)
            if entry is None:
                break
            if entry.refs == 0:
                self._evictable.pop(h, None)
                self._close_pin(entry, now_s)
            entry.refs += 1
            hit += 1
            followed = self._followed.get(h)
            if followed is not None:  # vLLM BlockPool.touch -> on_block_accessed
                followed.last_access_s = now_s
                followed.accesses.append(now_s)
        self.lookups_blocks += max_blocks
        self.hits_blocks += hit
        return hit

    def insert_referenced(self, hash_id: int, now_s: float = 0.0) -> bool:
        """Add (or reference) ``hash_id`` for a sequence that just computed it at ``now_s``.

        Returns True when a new entry was created (its memory moves from the
        sequence to the cache), False when it already existed (the sequence's
        copy is a duplicate and is freed by the caller).
        """
        entry = self._entries.get(hash_id)
        if entry is None:
            self._entries[hash_id] = _Entry(refs=1)
            if self._residency_rng is not None:  # vLLM on_block_allocated: a coin per engine block
                sampled = int(self._residency_rng.binomial(self.kv_blocks_per_entry, self.residency_sample_rate))
                if sampled:
                    self._followed[hash_id] = _Followed(sampled, now_s)
            return True
        if entry.refs == 0:
            self._evictable.pop(hash_id, None)
        entry.refs += 1
        return False

    def release(self, hash_ids: tuple[int, ...], now_s: float, pin_ttl_s: float | None) -> None:
        """Drop one reference from each id; unreferenced entries become evictable (MRU end)."""
        for h in hash_ids:
            entry = self._entries[h]
            entry.refs -= 1
            if entry.refs == 0:
                if pin_ttl_s is not None and pin_ttl_s > 0:
                    if entry.pinned_since_s is not None and entry.pinned_until_s < now_s:
                        self._close_pin(entry, now_s)  # the earlier pin expired unused
                    if entry.pinned_since_s is None:
                        entry.pinned_since_s = now_s
                    entry.pinned_until_s = max(entry.pinned_until_s, now_s + pin_ttl_s)
                self._evictable[h] = None
                self._evictable.move_to_end(h)

    def evict(self, blocks_needed: int, now_s: float) -> int:
        """Evict LRU unpinned entries (then pinned ones) until ``blocks_needed`` are freed."""
        freed = 0
        if blocks_needed <= 0:
            return 0
        for h in list(self._evictable):
            if freed >= blocks_needed:
                break
            if self._entries[h].pinned_until_s > now_s:
                continue
            self._drop(h, now_s)
            freed += self.kv_blocks_per_entry
        if freed < blocks_needed:
            for h in list(self._evictable):
                if freed >= blocks_needed:
                    break
                self._drop(h, now_s)
                self.pinned_evictions += 1
                freed += self.kv_blocks_per_entry
        return freed

    def take_residency(self) -> ResidencyHistograms:
        """The residency values reported (at evictions) since the last call, as bucket counts."""
        out, self._reported = self._reported, ResidencyHistograms()
        return out

    def _drop(self, hash_id: int, now_s: float) -> None:
        followed = self._followed.pop(hash_id, None)
        if followed is not None:  # vLLM on_block_evicted
            hist = self._reported
            times = list(followed.accesses)
            for before, after in zip(times, times[1:]):
                hist.reuse_gap[hist.bucket(after - before)] += followed.blocks
            hist.idle_before_evict[hist.bucket(now_s - followed.last_access_s)] += followed.blocks
        self._close_pin(self._entries[hash_id], now_s)
        del self._evictable[hash_id]
        del self._entries[hash_id]
        self.evictions += 1
