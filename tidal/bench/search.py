"""Fewest replicas per pool that meet the SLO on one window: the search both references share.

The search assumes what the simulator shows and queueing theory predicts: with more
replicas of a pool, no request of a fixed window gets slower (monotonicity). It then
needs only a few replays per window: it gallops from a guess (the neighbouring window's
answer, or the largest answer so far) and bisects the last step.

Disaggregated deployments are searched one pool at a time, because the pools' effects
separate: prefill replicas set TTFT (the first token is out once its KV reaches a decode
instance, whatever the decode load), decode replicas set TPOT. So prefill is searched on
TTFT attainment with the decode count held, then decode on both-met attainment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tidal.bench.probe import Score, WindowProbe
from tidal.policies.interface import POOL_DECODE, POOL_PREFILL


def fewest_meeting(meets: Callable[[int], bool], lo: int, hi: int, guess: int) -> int | None:
    """Smallest ``n`` in ``[lo, hi]`` with ``meets(n)`` for a monotone ``meets``; ``None`` when
    even ``hi`` fails. Galloping from ``guess`` costs O(log |answer - guess|) calls."""
    guess = min(max(guess, lo), hi)
    if meets(guess):
        ok, step = guess, 1
        while ok > lo:
            cand = max(lo, ok - step)
            if not meets(cand):
                return _bisect(meets, cand, ok)
            ok, step = cand, step * 2
        return ok
    bad, step = guess, 1
    while bad < hi:
        cand = min(hi, bad + step)
        if meets(cand):
            return _bisect(meets, bad, cand)
        bad, step = cand, step * 2
    return None


def _bisect(meets: Callable[[int], bool], bad: int, ok: int) -> int:
    while ok - bad > 1:
        mid = (bad + ok) // 2
        if meets(mid):
            ok = mid
        else:
            bad = mid
    return ok


@dataclass(frozen=True)
class WindowAnswer:
    """The replicas chosen for one window; ``met`` is False when the cap was not enough."""

    replicas: Mapping[str, int]
    met: bool
    score: Score


def fewest_replicas(probe: WindowProbe, start_s: float, end_s: float, pools: tuple[str, ...],
                    lo: Mapping[str, int], hi: int, guess: Mapping[str, int]) -> WindowAnswer:
    """Fewest replicas per pool (each in ``[lo[pool], hi]``) meeting the target on the window."""
    target = probe.slo.attainment
    if len(pools) == 1:
        (pool,) = pools

        def meets_one(n: int) -> bool:
            return probe.score(start_s, end_s, {pool: n}).both_fraction >= target

        n = fewest_meeting(meets_one, lo[pool], hi, guess[pool])
        chosen = {pool: hi if n is None else n}
        return WindowAnswer(chosen, n is not None, probe.score(start_s, end_s, chosen))
    held_decode = min(max(guess[POOL_DECODE], lo[POOL_DECODE]), hi)

    def meets_prefill(p: int) -> bool:
        return (probe.score(start_s, end_s, {POOL_PREFILL: p, POOL_DECODE: held_decode})
                .ttft_fraction >= target)

    prefill = fewest_meeting(meets_prefill, lo[POOL_PREFILL], hi, guess[POOL_PREFILL])
    p = hi if prefill is None else prefill

    def meets_decode(d: int) -> bool:
        return (probe.score(start_s, end_s, {POOL_PREFILL: p, POOL_DECODE: d}).both_fraction
                >= target)

    decode = fewest_meeting(meets_decode, lo[POOL_DECODE], hi, held_decode)
    chosen = {POOL_PREFILL: p, POOL_DECODE: hi if decode is None else decode}
    return WindowAnswer(chosen, prefill is not None and decode is not None,
                        probe.score(start_s, end_s, chosen))
