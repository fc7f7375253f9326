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
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

MOONCAKE_HASH_BLOCK_TOKENS = 512  # Mooncake trace README: one hash id per 512-token block


@dataclass
class _Entry:
    refs: int = 0
    pinned_until_s: float = float("-inf")
    pinned_since_s: float | None = None  # start of the pin being accounted, if any


class PrefixCache:
    """Block-hash prefix cache; all sizes in engine KV blocks."""

    def __init__(self, *, kv_blocks_per_entry: int,
                 block_tokens: int = MOONCAKE_HASH_BLOCK_TOKENS) -> None:
        self.kv_blocks_per_entry = kv_blocks_per_entry
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
        self.lookups_blocks += max_blocks
        self.hits_blocks += hit
        return hit

    def insert_referenced(self, hash_id: int) -> bool:
        """Add (or reference) ``hash_id`` for a sequence that just computed it.

        Returns True when a new entry was created (its memory moves from the
        sequence to the cache), False when it already existed (the sequence's
        copy is a duplicate and is freed by the caller).
        """
        entry = self._entries.get(hash_id)
        if entry is None:
            self._entries[hash_id] = _Entry(refs=1)
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

    def _drop(self, hash_id: int, now_s: float) -> None:
        self._close_pin(self._entries[hash_id], now_s)
        del self._evictable[hash_id]
        del self._entries[hash_id]
        self.evictions += 1
