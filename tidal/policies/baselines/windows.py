"""Time-bucketed metric windows of the rivals, as pure functions over JSON-friendly state.

Two different window semantics are reproduced:

- :func:`knative_record` / :func:`knative_average` are Knative's
  ``TimedFloat64Buckets`` (``pkg/autoscaler/aggregation/bucketing.go``): values recorded in
  the same bucket add up; a gap shorter than the window counts as zeros; the average is over
  the buckets since the first write (a partial window after a start or a full window without
  data) and over the buckets up to the last write when data stopped arriving; nothing for a
  whole window gives 0, and ``knative_is_empty`` tells the collector to report "no data".
- :func:`aibrix_record` / :func:`aibrix_average` are AIBrix's ``types.TimeWindow``
  (``pkg/controller/podautoscaler/types/metrics.go``): one value per bucket (the last write
  wins), buckets older than the window are dropped at write time only, and the average is
  the plain mean of the values kept -- stale values stay until the next write.

State is a dict of plain lists and floats so the shells can persist it as JSON.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from tidal.policies.baselines import defaults as d


def bucket_start(t_s: float, granularity_s: float) -> float:
    """``time.Truncate(granularity)`` for times in seconds."""
    return math.floor(t_s / granularity_s + d.TIME_SLACK_S) * granularity_s


def _round_digits(x: float, digits: int) -> float:
    p = 10.0 ** digits
    return math.floor(x * p + 0.5) / p  # math.Round: half away from zero (x >= 0 here)


def knative_empty() -> dict[str, Any]:
    return {"first": None, "last": None, "buckets": []}


def knative_record(state: Mapping[str, Any] | None, t_s: float, value: float, window_s: float,
                   granularity_s: float) -> dict[str, Any]:
    """``TimedFloat64Buckets.Record``: add ``value`` to the bucket of ``t_s``."""
    st = dict(state) if state else knative_empty()
    bt = bucket_start(t_s, granularity_s)
    first, last = st["first"], st["last"]
    buckets = [list(b) for b in st["buckets"]]
    if last is None or bt > last:
        if last is None or bt - last >= window_s:
            first, buckets = bt, []                    # a window without writes: start over
        else:                                          # ring slots reused by the new times
            buckets = [b for b in buckets if b[0] > bt - window_s]
        if first is None:
            first = bt
        last = bt
    elif bt < last:
        if bt + window_s <= last:
            return st                                  # older than a window: ignored
        if first is None or bt < first:
            first = bt
    for b in buckets:
        if b[0] == bt:
            b[1] += value
            break
    else:
        buckets.append([bt, value])
        buckets.sort(key=lambda b: b[0])
    return {"first": first, "last": last, "buckets": buckets}


def knative_is_empty(state: Mapping[str, Any] | None, now_s: float, window_s: float,
                     granularity_s: float) -> bool:
    """``IsEmpty``: no data recorded for more than a window."""
    if not state or state.get("last") is None:
        return True
    return bucket_start(now_s, granularity_s) - state["last"] > window_s


def knative_average(state: Mapping[str, Any] | None, now_s: float, window_s: float,
                    granularity_s: float) -> float:
    """``TimedFloat64Buckets.WindowAverage`` at ``now_s``."""
    if not state or state.get("last") is None:
        return 0.0
    now = bucket_start(now_s, granularity_s)
    first, last = state["first"], state["last"]
    n_buckets = math.ceil(window_s / granularity_s - d.TIME_SLACK_S)
    since_first = int(round((last - first) / granularity_s)) + 1
    gap = now - last
    if gap <= 0:
        total = sum(v for _, v in state["buckets"])
        return _round_digits(total / min(since_first, n_buckets), d.KNATIVE_ROUND_DIGITS)
    if gap < window_s:
        total = sum(v for t, v in state["buckets"] if t > now - window_s)
        valid = min(since_first, n_buckets - int(round(gap / granularity_s)))
        return _round_digits(total / valid, d.KNATIVE_ROUND_DIGITS)
    return 0.0


def aibrix_record(buckets: list[list[float]] | None, t_s: float, value: float, window_s: float,
                  granularity_s: float) -> list[list[float]]:
    """``TimeWindow.Record``: set the bucket of ``t_s`` and drop buckets older than the window."""
    b_now = math.floor(t_s / granularity_s + d.TIME_SLACK_S)
    cutoff = math.floor((t_s - window_s) / granularity_s + d.TIME_SLACK_S)
    kept = [[b, v] for b, v in (buckets or []) if b >= cutoff and b != b_now]
    kept.append([b_now, value])
    kept.sort(key=lambda x: x[0])
    return kept


def aibrix_average(buckets: list[list[float]] | None) -> float:
    """``TimeWindow.Avg``: mean of the kept values (0 when none)."""
    if not buckets:
        return 0.0
    return sum(v for _, v in buckets) / len(buckets)
