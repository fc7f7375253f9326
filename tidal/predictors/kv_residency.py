"""Session pauses from vLLM's KV-block residency histograms: bucket increments -> pause samples.

vLLM (``--kv-cache-metrics``, vllm/v1/core/kv_cache_metrics.py) follows a sample of KV blocks:
each sampled block keeps its last four access times (an access is a prefix-cache hit), and when
the block is evicted it reports the gaps between them (``vllm:kv_block_reuse_gap_seconds``) and
the time since its last access (``vllm:kv_block_idle_before_evict_seconds``). Read as pauses:

* a **reuse gap** is a pause that ended: the block's session came back after it. It runs from
  one turn's start to the next's (a hit happens when a turn is scheduled), so it is the pause
  plus the turn's own queueing, prefill and decode: longer than the pause, never shorter;
* an **idle-before-evict** time is a right-censored pause: the block was evicted after idling
  that long, so its session came back, if at all, later.

Blocks, not sessions, are counted: a session's long context has more blocks, which is the
weighting the TTL trade wants (saved prefill and held memory both scale with the context).

Histogram buckets -> samples. Prometheus buckets say only that a value lies in ``(lo, le]``:

* an ended gap is placed at its bucket's **upper** edge ``le``. A TTL at ``le`` catches every
  pause of the bucket and one at ``lo`` catches none, so the upper edge is where the TTL choice
  must see the bucket to keep its pauses; and the gap overstates the pause anyway (above);
* a censored time is placed at its bucket's **lower** edge ``lo``: all the bucket guarantees is
  that the pause outlasted ``lo`` (the Kaplan-Meier estimate, tidal/predictors/pauses.py, then
  keeps it at risk through ``lo``'s bin only, which understates rather than invents survival);
* the ``+Inf`` bucket of either (beyond vLLM's last bound, 30 min) is censored at its lower edge:
  longer than any TTL ``maxTTL`` allows by default.

Pure: both shells' observations reach it through the decision core (tidal/core/modeldeployment.py).
"""

from __future__ import annotations

import math

from tidal.policies.interface import Cumulative, KvResidency
from tidal.predictors.pauses import SessionPausePredictor

VLLM_RESIDENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0,
                            30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)
"""Bucket bounds of vLLM's three KV-block residency histograms (vllm/v1/metrics/loggers.py,
``kv_cache_residency_buckets``), ``+Inf`` implied. The simulator reports with the same bounds."""


def bucket_counts(cumulative: Cumulative) -> list[tuple[float, float, float]]:
    """``(lo, le, count)`` per bucket from cumulative ``(le, count <= le)`` pairs (validated by
    tidal/policies/guards.py ``kv_residency_problem``); a count below zero from float rounding is 0."""
    out, lo, before = [], 0.0, 0.0
    for le, total in cumulative:
        out.append((lo, le, max(0.0, total - before)))
        lo, before = le, max(before, total)
    return out


def learn_residency(predictor: SessionPausePredictor, now_s: float, residency: KvResidency,
                    weight: float = 1.0) -> tuple[float, float]:
    """Feed one observation's increments to ``predictor``: reuse gaps as ended pauses at their
    bucket's upper edge, idle-before-evict times (and ``+Inf`` buckets) as right-censored pauses at
    their lower edge, each count times ``weight``. Returns the (ended, censored) weight learnt."""
    ended = censored = 0.0
    for lo, le, count in bucket_counts(residency.reuse_gap):
        if count <= 0:
            continue
        if math.isinf(le):
            predictor.observe_censored(now_s, lo, count * weight)
            censored += count * weight
        else:
            predictor.observe(now_s, le, weight=count * weight)
            ended += count * weight
    for lo, _le, count in bucket_counts(residency.idle_before_evict):
        if count > 0:
            predictor.observe_censored(now_s, lo, count * weight)
            censored += count * weight
    return ended, censored
