"""SLO attainment and latency quantiles from Prometheus histogram bucket rates. Pure arithmetic.

The engines export TTFT and inter-token latency as cumulative histograms. The adapter reads one
instant vector per histogram, ``sum by (le) (rate(<h>_bucket[w]))``, and everything else is
computed here from those bucket rates, so one query serves both the percentile latency (any
``spec.slo.percentile``) and the fraction of requests within the target (any ``spec.slo.ttft``),
and one fleet-wide query serves every workload whatever its SLO.

Both computations interpolate linearly inside a bucket, the way Prometheus' ``histogram_quantile``
does (promql/quantile.go, ``bucketQuantile``): :func:`histogram_quantile` is that function
transcribed, and :func:`fraction_within` is its inverse (the cumulative fraction at a latency), so
``fraction_within(b, histogram_quantile(q, b)) == q`` inside the finite buckets.

Approximations (docs/metrics.md, "SLO attainment"):

* The combined attainment is the minimum of the TTFT and TPOT attainments. The fraction of
  requests meeting *both* targets is not observable from two separate histograms; it lies between
  ``max(0, a_ttft + a_tpot - 1)`` (Fréchet lower bound) and ``min(a_ttft, a_tpot)``, so the minimum
  is an upper bound, exact when one target is (nearly) always met or misses coincide.
* Both engines observe the inter-token histogram once per output token, so TPOT attainment is the
  fraction of inter-token gaps within the target, not of requests whose mean TPOT is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

Bucket = tuple[float, float]
"""(upper bound ``le`` in seconds, cumulative rate or count of observations at or below it)."""


def normalise_buckets(buckets: Iterable[Bucket]) -> tuple[Bucket, ...] | None:
    """Buckets sorted by bound, equal bounds merged, counts made non-decreasing; ``None`` if unusable.

    Mirrors what ``histogram_quantile`` does before interpolating: equal bounds (``"1"`` and ``"1.0"``
    from two exposition formats) are summed (``coalesceBuckets``), and a cumulative count that drops
    (float noise in ``rate()`` of each bucket) is raised to the previous one (``ensureMonotonic``).
    A histogram without a ``+Inf`` bucket, with fewer than two buckets, or with a NaN count, is not
    usable (Prometheus returns NaN for it).
    """
    merged: dict[float, float] = {}
    for bound, count in buckets:
        if math.isnan(bound) or math.isnan(count):
            return None
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return None
    out: list[Bucket] = []
    running = -math.inf
    for bound, count in ordered:
        running = max(running, count)
        out.append((bound, running))
    return tuple(out)


def total_observations(buckets: Sequence[Bucket]) -> float | None:
    """The rate of observations (the ``+Inf`` bucket); ``None`` for an unusable histogram."""
    norm = normalise_buckets(buckets)
    return None if norm is None else norm[-1][1]


def histogram_quantile(q: float, buckets: Iterable[Bucket]) -> float:
    """Prometheus 2.x ``histogram_quantile`` on classic buckets: NaN when there is nothing to rank.

    The rank ``q * total`` is located in the first bucket whose cumulative count reaches it and
    interpolated linearly from the previous bound (0 for the first bucket); a rank in the ``+Inf``
    bucket returns the highest finite bound.
    """
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    norm = normalise_buckets(buckets)
    if norm is None:
        return math.nan
    total = norm[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    # sort.Search over all but the +Inf bucket: the first bucket whose count reaches the rank.
    index = next((i for i in range(len(norm) - 1) if norm[i][1] >= rank), len(norm) - 1)
    if index == len(norm) - 1:
        return norm[-2][0]
    end, count = norm[index]
    if index == 0 and end <= 0:
        return end
    start = 0.0
    if index > 0:
        start, below = norm[index - 1]
        count -= below
        rank -= below
    if count == 0:
        return math.nan  # only for q = 0 on an empty first bucket; Go's 0/0 makes Prometheus say NaN too
    return start + (end - start) * (rank / count)


def fraction_within(target_s: float, buckets: Iterable[Bucket]) -> float | None:
    """Fraction (0..1) of observations at or below ``target_s``; ``None`` when there were none.

    Linear inside the bucket that holds the target, as :func:`histogram_quantile` assumes. Beyond the
    highest finite bound only that bound's count is known to be within, so the result is a lower
    bound there (the engines' highest bounds are 80 s and more, far above any latency SLO).
    """
    if math.isnan(target_s):
        raise ValueError("target must be a number of seconds, got NaN")
    norm = normalise_buckets(buckets)
    if norm is None:
        return None
    total = norm[-1][1]
    if not total > 0:
        return None
    within = norm[-2][1]
    start, below = 0.0, 0.0
    for end, count in norm[:-1]:
        if target_s <= end:
            if end <= start:
                within = count if target_s >= end else below
            elif target_s <= start:
                within = below
            else:
                within = below + (count - below) * (target_s - start) / (end - start)
            break
        start, below = end, count
    return min(1.0, max(0.0, within / total))


@dataclass(frozen=True)
class Attainment:
    """Per-signal attainment of one pool: ``None`` where the SLO sets no target or nothing was observed."""

    ttft: float | None = None
    tpot: float | None = None

    @property
    def combined(self) -> float | None:
        """The minimum of the known parts (an upper bound on joint attainment, see the module docstring)."""
        known = [v for v in (self.ttft, self.tpot) if v is not None]
        return min(known) if known else None


def pool_attainment(ttft_buckets: Sequence[Bucket] | None, tpot_buckets: Sequence[Bucket] | None,
                    ttft_target_s: float | None, tpot_target_s: float | None) -> Attainment:
    """Attainment of each stated target from its histogram's bucket rates."""
    ttft = (fraction_within(ttft_target_s, ttft_buckets)
            if ttft_target_s is not None and ttft_buckets is not None else None)
    tpot = (fraction_within(tpot_target_s, tpot_buckets)
            if tpot_target_s is not None and tpot_buckets is not None else None)
    return Attainment(ttft=ttft, tpot=tpot)


def workload_attainment(pools: Mapping[str, Attainment]) -> float | None:
    """The lowest combined attainment over the pools that observed requests; ``None`` if none did.

    Every request passes every pool of a workload (unified: one pool; disaggregated: prefill then
    decode), so the workload can meet its SLO no more often than its worst pool.
    """
    known = [a.combined for a in pools.values() if a.combined is not None]
    return min(known) if known else None
