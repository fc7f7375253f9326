"""Keep-alive and pre-warm decisions for serverless functions (pool ``function``).

Why this shape: fixed keep-alive (AWS Lambda ~10 min, Azure Functions 20 min) ignores each
function's invocation pattern. The hybrid histogram policy of Shahrad et al., "Serverless in the
Wild" (USENIX ATC'20, section 4.2) learns the distribution of *idle times* (gaps between
invocations) per function and derives two windows from it:

* **pre-warm window**: after an invocation the function can be unloaded, and is loaded again
  this long after it (the head of the idle-time distribution, 5th percentile, minus a 10 % margin);
* **keep-alive window**: once loaded, keep it this long (up to the tail, 99th percentile, plus a
  10 % margin).

The histogram has 1-minute bins over 4 hours. When it is not representative (too few samples,
or a flat histogram: coefficient of variation of the bin counts below 2) the policy falls back to
standard keep-alive over the histogram's range; when most idle times fall beyond the range the
paper forecasts the next idle time with ARIMA and pre-warms at 85 % of it, keeping alive for 30 %
(15 % either side). The paper applies the windows to an application that runs one instance.

tidal's deviations, each measured on the serverless simulator (docs/simulator.md):

* **Instance ranks.** A function here runs as many instances as it has invocations in flight
  (/ concurrency). The policy treats each *rank* (the k-th concurrent instance) as one of the
  paper's applications: the idle times of all ranks go into one histogram, and rank ``k`` is
  kept while the time since it was last needed is inside its windows. Needs come from the peak
  in-flight count between ticks when the observation carries it, so an instance started for a
  burst between ticks is kept like any other instead of being removed at the next tick.
* **Cost-chosen end.** With ``cold_start_cost_gb_s`` set (the default), the keep-alive end is
  the bin edge that minimises the expected instance-seconds held plus the cold start's price in
  instance-seconds (:data:`COLD_START_COST_GB_S` / instance GB) per idle time that outlasts the
  window (:func:`cheapest_end_bin`), instead of the 99th percentile; the flat-histogram fallback
  uses the same rule instead of keeping the whole 4 h range. The start is chosen the same way:
  stay loaded from the invocation, or (every instance being kept for the 60 s stable window
  anyway) unload after that and pre-warm at the 5th percentile of the idle times the stable
  window does not cover. The paper's head over all idle times is 0 whenever 5 % of them are
  short gaps inside a burst, which leaves a function that bursts every 10 minutes without
  pre-warming.
* **Learning period.** Until :data:`TRUST_SAMPLES` idle times are known and the function has
  been watched for :data:`TRUST_HISTORY_S`, the window never ends before the platform default
  (10 min), instead of the paper's 4 h: a short history has not seen the long idle times yet.
  That keep-alive while learning follows the cold-start price for the function's first instance;
  a burst's extra instances keep at most the 10 minutes (:data:`EXTRA_RANKS_LEARNING_CAP_S`).
* **Forecast.** We forecast out-of-range idle times with the median of the recent ones instead
  of ARIMA (no statsmodels at run time; the median is ARIMA's forecast for a stationary series
  without autocorrelation).
* **SLO floor.** With ``slo_tail_percentile`` (``spec.slo`` when the function's cold start exceeds
  its latency target, so every invocation that waits one misses it) the learned window covers at
  least that percentile of the idle times (:func:`slo_floor_bins`); the cost-chosen end stays when
  it is longer.

``KeepAlivePolicy(cold_start_cost_gb_s=None, few_samples_keep_alive_s=None)`` is the paper's
policy (p5/p99, 4 h fallback) applied per rank.

Pure: the ServerlessFunction controller (operator) and the serverless simulator call the same
:class:`KeepAlivePolicy`. Public API:

* :func:`keepalive_window` (idle histogram -> :class:`KeepAliveWindow`), :class:`IdleHistogram`
  and :meth:`IdleHistogram.record` for callers that see exact idle times;
* :class:`KeepAlivePolicy`, an :class:`~tidal.policies.interface.Autoscaler`.

What the observation must carry (pool ``function``, :data:`POOL_FUNCTION`):

* ``ready_replicas`` / ``starting_replicas`` / ``pending_replicas``: instances now (held on
  missing metrics);
* ``request_rate_rps`` and/or ``running_requests`` (+ optional ``waiting_requests``): a tick is
  *active* when the rate or the in-flight count is above zero. Both ``None`` (or
  ``Observation.metrics_available`` False) means unknown: the policy holds, never scales to zero.
* optionally the extras of :class:`~tidal.sim.serverless.observation.FunctionPoolObservation`
  (read with ``getattr``): ``peak_in_flight_since_last_tick``, ``arrivals_since_last_tick``,
  ``idle_gaps_s`` (exact idle times of the function), ``idle_since_s`` and ``memory_mb`` (else
  the policy's ``memory_mb``).

The decision is the number of ranks to keep (a Deployment's replica count can express it) plus
``details["idle_timeout_s"]``: how long an instance stays after its last execution, which a FaaS
platform can apply per instance in continuous time (the serverless simulator does).

``activity_window_s`` (constructor) says how long one invocation stays visible in the
observation: the PromQL ``rate()`` window for the operator, the tick length for a simulator that
reports per-tick counts. Without exact idle times, the function's idle times are measured between
the estimated last invocation (last active tick minus that window) and the next active tick, so
they are accurate to one tick. The state returned by :meth:`KeepAlivePolicy.decide` is a frozen
:class:`KeepAliveState` (bounded: 240 bins, 16 out-of-range samples, 64 rank steps); persist it
as you like.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from tidal.policies.baselines.keepalive_fixed import DETAIL_IDLE_TIMEOUT_S, OPENWHISK_KEEP_ALIVE_S
from tidal.policies.interface import POOL_FUNCTION, Decision, Observation, PoolObservation, Reason

HISTOGRAM_BIN_S = 60.0
"""Shahrad et al. (ATC'20): idle-time histogram bins of one minute."""
HISTOGRAM_RANGE_S = 4 * 3600.0
"""Shahrad et al.: the histogram covers 4 hours of idle time (240 bins)."""
HEAD_PERCENTILE = 5.0
"""Shahrad et al.: the pre-warm window comes from the 5th percentile of idle times."""
TAIL_PERCENTILE = 99.0
"""Shahrad et al.: the keep-alive window extends to the 99th percentile of idle times."""
WINDOW_MARGIN = 0.10
"""Shahrad et al.: 10 % margin (head shortened, tail lengthened) to absorb noise."""
CV_THRESHOLD = 2.0
"""Shahrad et al.: a histogram whose bin counts have a coefficient of variation below 2 is not
representative (idle times spread out); use standard keep-alive instead."""
OOB_PREWARM_FRACTION = 0.85
"""Shahrad et al. (time-series branch): pre-warm at 85 % of the predicted idle time."""
OOB_KEEPALIVE_FRACTION = 0.30
"""Shahrad et al. (time-series branch): keep alive for 15 % either side of the prediction."""
OOB_FRACTION_THRESHOLD = 0.5
"""tidal's choice: use the out-of-range branch once at least half of the idle times exceed the
histogram range (the paper switches when out-of-bound idle times dominate)."""
MIN_IDLE_SAMPLES = 5
"""tidal's choice: fewer idle times than this are not a distribution; use standard keep-alive."""
OOB_MEMORY = 16
"""Recent out-of-range idle times kept for the median forecast (bounded state)."""
MAX_HISTOGRAM_SAMPLES = 10_000
"""Counts are halved beyond this, so the histogram follows a changing pattern (bounded state)."""
STABLE_WINDOW_S = 60.0
"""Knative KPA stable window (config-autoscaler ``stable-window: 60s``): an instance is kept at
least this long after it was needed, so a dip between requests does not drop it."""
DEFAULT_CONCURRENCY_TARGET = 100.0
"""Knative ``container-concurrency-target-default: 100``."""
DEFAULT_KEEP_ALIVE_S = OPENWHISK_KEEP_ALIVE_S
"""The platforms' fixed keep-alive, 10 minutes (AWS Lambda per Shahrad et al.; OpenWhisk's
idle-container timeout): what the policy keeps while it is still learning."""
REFERENCE_MEMORY_MB = 1280.0
"""Instance memory at which a cold start is priced at :data:`DEFAULT_KEEP_ALIVE_S` of idle
memory (tidal's choice, fitted: the replays' memory-weighted average instance is 1.0-1.4 GB)."""
COLD_START_COST_GB_S = DEFAULT_KEEP_ALIVE_S * REFERENCE_MEMORY_MB / 1024.0
"""750 GB-seconds of idle memory: what one cold start is worth (tidal's choice). Keeping an
idle instance for the break-even time and then letting it go is the classic ski-rental rule; the
fixed 10-minute keep-alive is that rule for a cold start worth 10 minutes of the instance. Priced
in GB-seconds, a function with small instances keeps them longer and one with large instances
shorter, which is the trade that lowers GB-hours at a given number of cold starts. Measured on
20 one-hour replays (docs/simulator.md): fewer cold starts and GB-hours than the fixed 10 minutes
on 18. Without a memory size the cold start is worth :data:`DEFAULT_KEEP_ALIVE_S` of an instance."""
TRUST_SAMPLES = round(100 / HEAD_PERCENTILE)
"""20 idle times (tidal's choice): the fewest in which the paper's 5 % head shows once on
average; with fewer, a window shorter than the platform default is not trusted."""
TRUST_HISTORY_S = 2 * DEFAULT_KEEP_ALIVE_S
"""20 minutes (tidal's choice): an idle time completes only after it has passed, so a short
history has seen only short idle times. A window shorter than the platform default is trusted
once the function has been watched twice that long (measured: without it, a busy function that
dips and climbs again in its first minutes cold-starts more than under the fixed 10 minutes)."""
EXTRA_RANKS_LEARNING_CAP_S = DEFAULT_KEEP_ALIVE_S
"""10 minutes (tidal's choice, the platforms' fixed keep-alive): the most a function's extra
instances (ranks 2 and up) are kept while learning, whatever the cold-start price; the first
instance's keep-alive while learning follows the price
(:meth:`KeepAlivePolicy.extra_ranks_learning_keep_alive_s`). Equal to that keep-alive at the
default price, so it binds only above it (measured in bench/keepalive_pareto.py)."""
MAX_RANK_STEPS = 64
"""Bound on :attr:`KeepAliveState.ranks` (tidal's choice); beyond it the two steps closest in
time merge, to the later time, so a merged rank is kept slightly long, never dropped early."""

WindowMode = Literal["histogram", "standard", "out-of-range", "fixed"]

REASON_HOLD = "hold-no-metrics"
REASON_ACTIVE = "active"
REASON_UNLOADED = "unloaded-until-prewarm"
REASON_PREWARM = "prewarm"
REASON_KEEPALIVE = "keep-alive"
REASON_EXPIRED = "keep-alive-expired"
REASON_NO_POOL = "no-function-pool"


@dataclass(frozen=True)
class KeepAliveWindow:
    """When to (re)load a function after an invocation and how long to keep it, in seconds.

    The function should be loaded during ``[prewarm_s, prewarm_s + keepalive_s)`` after its last
    invocation; ``prewarm_s == 0`` means "stay loaded right after the invocation".
    """

    prewarm_s: float
    keepalive_s: float
    mode: WindowMode
    message: str

    @property
    def end_s(self) -> float:
        return self.prewarm_s + self.keepalive_s


@dataclass(frozen=True)
class IdleHistogram:
    """Idle-time histogram: ``counts[i]`` idle times in ``[i*bin_s, (i+1)*bin_s)``; longer ones
    are counted in ``out_of_range`` and the most recent are kept in ``recent_out_of_range``."""

    counts: tuple[int, ...] = (0,) * int(HISTOGRAM_RANGE_S // HISTOGRAM_BIN_S)
    out_of_range: int = 0
    recent_out_of_range: tuple[float, ...] = ()
    bin_s: float = HISTOGRAM_BIN_S

    @property
    def range_s(self) -> float:
        return self.bin_s * len(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts) + self.out_of_range

    def record(self, idle_s: float) -> IdleHistogram:
        """A new histogram with one more idle time (negative values count as 0)."""
        return self.record_many(((idle_s, 1),))

    def record_many(self, samples: Iterable[tuple[float, int]]) -> IdleHistogram:
        """A new histogram with ``count`` more idle times of each ``(idle seconds, count)``
        (negative values count as 0): one copy of the bins per tick, however many samples."""
        counts, oob, recent = list(self.counts), self.out_of_range, self.recent_out_of_range
        for idle_s, count in samples:
            if count <= 0:
                continue
            idle_s = max(0.0, float(idle_s))
            index = int(idle_s // self.bin_s)
            if index < len(counts):
                counts[index] += count
            else:
                oob += count
                recent = (recent + (idle_s,) * min(count, OOB_MEMORY))[-OOB_MEMORY:]
        while sum(counts) + oob > MAX_HISTOGRAM_SAMPLES:
            counts = [c // 2 for c in counts]
            oob //= 2
        return replace(self, counts=tuple(counts), out_of_range=oob, recent_out_of_range=recent)


def _percentile_bin(counts: Sequence[int], percentile: float) -> int:
    """Index of the bin holding the given percentile of the in-range counts."""
    total = sum(counts)
    rank = percentile / 100.0 * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if count and seen >= rank:
            return index
    return len(counts) - 1


def coefficient_of_variation(counts: Sequence[int]) -> float:
    """Population CV of the bin counts (0 for an empty histogram)."""
    if not counts:
        return 0.0
    n = len(counts)
    mean = sum(counts) / n
    if mean == 0:
        return 0.0
    variance = max(0.0, sum(c * c for c in counts) / n - mean * mean)
    return math.sqrt(variance) / mean


def cheapest_end_bin(
    counts: Sequence[int], out_of_range: int, head_bin: int, bin_s: float, cold_start_cost_s: float
) -> int:
    """The bin whose upper edge is the cheapest end of a window opening at ``head_bin``'s lower
    edge ``H`` (tidal's replacement for the paper's 99th-percentile tail).

    Cost of ending at edge ``E``, summed over the recorded idle times ``x`` (at bin centres;
    out-of-range ones beyond every edge): the idle instance-seconds held, ``clip(x - H, 0, E - H)``,
    plus ``cold_start_cost_s`` for every idle time that outlasts the window (``x >= E``). Idle
    times before ``H`` miss the window whatever ``E`` is, so they do not change the choice."""
    return _cheapest_end(counts, out_of_range, head_bin, bin_s, cold_start_cost_s)[0]


def _cheapest_end(
    counts: Sequence[int], out_of_range: int, head_bin: int, bin_s: float, cold_start_cost_s: float
) -> tuple[int, float]:
    """:func:`cheapest_end_bin` and its cost. Between two non-empty bins the cost only grows with
    ``E``, so only the edges right after a non-empty bin (and ``head_bin``) are candidates: one
    pass over the non-empty bins."""
    head_s = head_bin * bin_s
    beyond = sum(counts[head_bin:]) + out_of_range  # idle times at or beyond the current edge
    held_inside = 0.0  # instance-seconds of the idle times that ended inside the window
    best_bin, best_cost = head_bin, math.inf
    for k, count in enumerate(counts[head_bin:], head_bin):
        if not count and k > head_bin:
            continue
        held_inside += count * ((k + 0.5) * bin_s - head_s)
        beyond -= count
        cost = held_inside + beyond * ((k + 1) * bin_s - head_s + cold_start_cost_s)
        if cost < best_cost:
            best_bin, best_cost = k, cost
    return best_bin, best_cost


def _prewarm_option(
    counts: Sequence[int],
    out_of_range: int,
    hold_s: float,
    head_percentile: float,
    bin_s: float,
    cold_start_cost_s: float,
    late_fraction: float = 0.0,
) -> tuple[int, int, float] | None:
    """``(head bin, end bin, cost)`` of keeping an instance ``hold_s`` after it was needed, then
    unloading it and pre-warming it at the head (``head_percentile``) of the idle times the hold
    does not cover, until the cheapest end; None when that head is not past the hold.

    Cost as in :func:`cheapest_end_bin`, plus the hold (``min(x, hold_s)`` per idle time) and
    ``cold_start_cost_s`` per idle time that ends while unloaded (``hold_s <= x < H``), and
    ``late_fraction`` of a cold start per idle time the pre-warm is for (``H <= x < E``): the
    chance it starts too late (rank ages and decisions have tick resolution)."""
    hold_bin = math.ceil(hold_s / bin_s)  # bins from here have their centre past the hold
    if hold_bin >= len(counts) or not any(counts[hold_bin:]):
        return None
    head_bin = hold_bin + _percentile_bin(counts[hold_bin:], head_percentile)
    if head_bin <= hold_bin:
        return None
    end_bin, tail_cost = _cheapest_end(counts, out_of_range, head_bin, bin_s, cold_start_cost_s)
    held = out_of_range * hold_s + sum(
        c * min((i + 0.5) * bin_s, hold_s) for i, c in enumerate(counts) if c
    )
    unloaded_misses = sum(counts[hold_bin:head_bin])
    late = late_fraction * sum(counts[head_bin : end_bin + 1])
    return head_bin, end_bin, held + cold_start_cost_s * (unloaded_misses + late) + tail_cost


def slo_floor_bins(
    counts: Sequence[int],
    out_of_range: int,
    head_bin: int,
    tail_bin: int,
    *,
    percentile: float,
    hold_s: float,
    bin_s: float,
    cold_start_cost_s: float | None,
) -> tuple[int, int]:
    """``(head bin, tail bin)`` of a window that lets at most ``100 - percentile`` % of the idle
    times (out-of-range ones included) end in a cold start: ``spec.slo`` when every cold start
    misses the latency target (tidal's choice; the paper has no SLO).

    Idle times that end while a pre-warmed function is unloaded (from the hold to the head) use
    the budget first, and those beyond the histogram's range always miss; when the two together
    exceed it the function stays loaded instead (head 0, the later of both ends). The tail is then at least the bin of the remaining percentile. Only
    lengthens: the head moves to 0 or stays, the tail moves later or stays."""
    total = sum(counts) + out_of_range
    if total <= 0:
        return head_bin, tail_bin
    gap_pct = 0.0
    beyond_pct = 100.0 * out_of_range / total  # idle times past the histogram: no window covers them
    if head_bin > 0:
        hold_bin = math.ceil(hold_s / bin_s)
        gap_pct = 100.0 * sum(counts[hold_bin:head_bin]) / total
        if percentile + gap_pct > 100.0 - beyond_pct:
            stay_bin = tail_bin
            if cold_start_cost_s is not None:
                stay_bin = _cheapest_end(counts, out_of_range, 0, bin_s, cold_start_cost_s)[0]
            head_bin, tail_bin, gap_pct = 0, max(tail_bin, stay_bin), 0.0
    floor_bin = _percentile_bin((*counts, out_of_range), min(100.0, percentile + gap_pct))
    return head_bin, max(tail_bin, min(floor_bin, len(counts) - 1))


def keepalive_window(
    idle_histogram: Sequence[int] | IdleHistogram,
    *,
    bin_s: float = HISTOGRAM_BIN_S,
    out_of_range: int = 0,
    recent_out_of_range: Sequence[float] = (),
    head_percentile: float = HEAD_PERCENTILE,
    tail_percentile: float = TAIL_PERCENTILE,
    margin: float = WINDOW_MARGIN,
    cv_threshold: float = CV_THRESHOLD,
    min_samples: int = MIN_IDLE_SAMPLES,
    cold_start_cost_s: float | None = None,
    few_samples_keep_alive_s: float | None = None,
    hold_s: float = 0.0,
    slo_tail_percentile: float | None = None,
    prewarm_by_cost: bool = True,
    prewarm_late_fraction: float = 0.0,
) -> KeepAliveWindow:
    """Pre-warm and keep-alive windows from an idle-time histogram (the hybrid histogram policy).

    ``idle_histogram`` is either an :class:`IdleHistogram` or plain bin counts (then ``bin_s``,
    ``out_of_range`` and ``recent_out_of_range`` describe it).

    With the defaults this is the paper's rule. ``cold_start_cost_s`` ends the window at the
    cheapest edge (:func:`cheapest_end_bin`) instead of the 99th percentile, also in the
    flat-histogram fallback, where the paper keeps the whole range, and chooses between staying
    loaded from the invocation and unloading after ``hold_s`` (the caller keeps every instance
    that long) to pre-warm at the head of the idle times the hold does not cover, whichever costs
    less (:func:`_prewarm_option`); ``few_samples_keep_alive_s`` replaces the range as the
    keep-alive used before ``min_samples`` idle times are known. ``slo_tail_percentile`` makes
    the learned window (histogram or flat fallback) cover at least that percentile of the idle
    times (:func:`slo_floor_bins`). ``prewarm_by_cost`` False keeps the
    paper's head instead of that comparison (pre-warm at ``head_percentile`` of all idle times when
    it lies past ``hold_s``; stay loaded otherwise), with the end still cost-chosen from there.
    ``prewarm_late_fraction`` charges that comparison's pre-warm option a late start's share of a
    cold start per idle time it is for (:func:`_prewarm_option`).
    """
    if isinstance(idle_histogram, IdleHistogram):
        counts: Sequence[int] = idle_histogram.counts
        bin_s = idle_histogram.bin_s
        out_of_range = idle_histogram.out_of_range
        recent_out_of_range = idle_histogram.recent_out_of_range
    else:
        counts = idle_histogram
    if bin_s <= 0 or not counts:
        raise ValueError("idle histogram: need at least one bin and bin_s > 0")
    if not 0 <= head_percentile <= tail_percentile <= 100:
        raise ValueError("need 0 <= head_percentile <= tail_percentile <= 100")
    if cold_start_cost_s is not None and cold_start_cost_s < 0:
        raise ValueError("cold_start_cost_s must be >= 0")
    range_s = bin_s * len(counts)
    in_range = sum(counts)
    total = in_range + out_of_range
    if total < min_samples:
        keep_s = range_s if few_samples_keep_alive_s is None else few_samples_keep_alive_s
        return KeepAliveWindow(
            0.0,
            keep_s,
            "standard",
            f"{total} idle times observed (< {min_samples}): standard keep-alive of {keep_s:g}s",
        )
    if out_of_range / total >= OOB_FRACTION_THRESHOLD and recent_out_of_range:
        predicted = statistics.median(recent_out_of_range)
        return KeepAliveWindow(
            OOB_PREWARM_FRACTION * predicted,
            OOB_KEEPALIVE_FRACTION * predicted,
            "out-of-range",
            f"{out_of_range}/{total} idle times beyond {range_s:g}s; predicted idle "
            f"{predicted:g}s (median of recent)",
        )
    cv = coefficient_of_variation(counts)
    if in_range == 0 or cv < cv_threshold:
        keep_s, why = range_s, ""
        if cold_start_cost_s is not None:
            end_bin = cheapest_end_bin(counts, out_of_range, 0, bin_s, cold_start_cost_s)
            keep_s = (end_bin + 1) * bin_s
            why = f", the cheapest end for a cold start worth {cold_start_cost_s:g}s"
        if slo_tail_percentile is not None:
            floor_bin = _percentile_bin((*counts, out_of_range), slo_tail_percentile)
            if (min(floor_bin, len(counts) - 1) + 1) * bin_s > keep_s:
                keep_s = (min(floor_bin, len(counts) - 1) + 1) * bin_s
                why += f", lengthened to p{slo_tail_percentile:g} of the idle times for spec.slo"
        return KeepAliveWindow(
            0.0,
            keep_s,
            "standard",
            f"idle-time histogram not representative (CV {cv:.2f} < {cv_threshold:g}): "
            f"standard keep-alive of {keep_s:g}s{why}",
        )
    head_bin = _percentile_bin(counts, head_percentile)
    tail_bin = _percentile_bin(counts, tail_percentile)
    head_pct_s, tail_pct_s = head_bin * bin_s, (tail_bin + 1) * bin_s
    why = ""
    if cold_start_cost_s is not None:
        head_bin, tail_bin, cost = 0, *_cheapest_end(counts, out_of_range, 0, bin_s, cold_start_cost_s)
        if prewarm_by_cost:
            prewarm = _prewarm_option(
                counts, out_of_range, hold_s, head_percentile, bin_s, cold_start_cost_s,
                prewarm_late_fraction,
            )
            if prewarm is not None and prewarm[2] < cost:
                head_bin, tail_bin, cost = prewarm
        elif head_pct_s * (1.0 - margin) > hold_s:
            head_bin = _percentile_bin(counts, head_percentile)
            tail_bin, cost = _cheapest_end(counts, out_of_range, head_bin, bin_s, cold_start_cost_s)
        why = (
            f"; cheapest for a cold start worth {cold_start_cost_s:g}s: "
            + (
                f"unload after {hold_s:g}s, pre-warm at p{head_percentile:g} of the longer "
                f"idle times ({head_bin * bin_s:g}s), end at {(tail_bin + 1) * bin_s:g}s"
                if head_bin
                else f"keep until {(tail_bin + 1) * bin_s:g}s"
            )
        )
    if slo_tail_percentile is not None:
        floored = slo_floor_bins(
            counts, out_of_range, head_bin, tail_bin, percentile=slo_tail_percentile,
            hold_s=hold_s, bin_s=bin_s, cold_start_cost_s=cold_start_cost_s,
        )
        if floored != (head_bin, tail_bin):
            head_bin, tail_bin = floored
            why += (f"; spec.slo: at most {100 - slo_tail_percentile:g}% of idle times may end "
                    f"in a cold start: " + ("stay loaded, " if not head_bin else "")
                    + f"end at {(tail_bin + 1) * bin_s:g}s")
    head_s = head_bin * bin_s  # lower edge: pre-warm early
    tail_s = (tail_bin + 1) * bin_s  # upper edge: keep long enough
    prewarm_s = head_s * (1.0 - margin)
    end_s = tail_s * (1.0 + margin)
    return KeepAliveWindow(
        prewarm_s,
        end_s - prewarm_s,
        "histogram",
        f"idle times p{head_percentile:g}={head_pct_s:g}s p{tail_percentile:g}={tail_pct_s:g}s "
        f"(CV {cv:.2f}, {in_range} samples){why}",
    )


@dataclass(frozen=True)
class KeepAliveState:
    """What :class:`KeepAlivePolicy` remembers between ticks (immutable, bounded)."""

    histogram: IdleHistogram = field(default_factory=IdleHistogram)
    last_active_s: float | None = None
    """Time of the last active tick; None before any activity was seen."""
    anchor_s: float | None = None
    """First observation time: idle time is counted from here until the first invocation."""
    was_active: bool = False
    ranks: tuple[tuple[float, int], ...] = ()
    """When each instance *rank* (the k-th concurrent instance) was last needed, as ``(time,
    instances needed)`` pairs with times increasing and counts strictly decreasing: rank ``k`` was
    last needed at the latest time whose count is >= k. This is the sliding-window maximum of the
    need, and the age of every rank. At most :data:`MAX_RANK_STEPS` pairs."""
    idle_since_s: float | None = None
    """When the function last went idle (exact when the observation says so, else estimated)."""
    last_seen_s: float | None = None
    """Time of the previous observation: a rank needed then has been in use without a break."""
    memory_mb: float = 0.0
    """Memory of one instance as last observed (0: unknown; the policy's ``memory_mb`` then)."""
    learned: KeepAliveWindow | None = None
    """The windows learned from ``histogram`` (a cache: recomputed only when it changes)."""
    released_before_s: float | None = None
    """With ``KeepAlivePolicy.restart_by_cost``: ranks last needed before this time were let go
    (their keep-alive hold ran out, or, with a pre-warm window, its end); a keep-alive that grows
    later brings them back only when worth it at their age, their pre-warm window or a new need
    always does. None: none let go yet (always None with the knob off)."""


RankSteps = tuple[tuple[float, int], ...]


def _rank_steps_after(
    ranks: RankSteps, now: float, need: int, prev_s: float | None
) -> tuple[RankSteps, dict[float, int]]:
    """Rank steps after ``need`` instances were needed at ``now``, and the idle times that ended:
    ``{idle seconds: how many ranks}`` for ranks 2..need that were not needed at the previous
    observation ``prev_s`` (rank 1's idle times are the function's; the caller measures them)."""
    steps = list(ranks)
    ended: dict[float, int] = {}
    covered = 0
    while steps and covered < need:
        t_j, n_j = steps[-1]
        top = min(n_j, need)
        low = max(covered, 1)
        if top > low and (prev_s is None or t_j < prev_s):
            ended[now - t_j] = ended.get(now - t_j, 0) + top - low
        covered = top
        if n_j > need:
            break
        steps.pop()
    if need > 0:
        steps.append((now, need))
    if len(steps) > MAX_RANK_STEPS:
        i = min(range(len(steps) - 1), key=lambda j: steps[j + 1][0] - steps[j][0])
        steps[i : i + 2] = [(steps[i + 1][0], steps[i][1])]
    return tuple(steps), ended


def _ranks_aged(ranks: RankSteps, now: float, low_s: float, high_s: float) -> int:
    """How many ranks were last needed ``low_s`` to ``high_s`` ago (``low <= age < high``)."""
    total = 0
    for j, (t, n) in enumerate(ranks):
        age = now - t
        if low_s <= age < high_s:
            total += n - (ranks[j + 1][1] if j + 1 < len(ranks) else 0)
    return total


@dataclass(frozen=True)
class KeepAlivePolicy:
    """Instances for one function from the hybrid histogram keep-alive policy, per instance rank.

    Shahrad et al. decide when to keep or load an application that runs one instance. A function
    here runs as many instances as it has invocations in flight (/ ``concurrency_target``), so the
    policy treats each instance *rank* (the k-th concurrent instance) as one such application: it
    learns the idle times of all ranks in one histogram, and keeps rank ``k`` loaded while the
    time since it was last needed is below the keep-alive hold, or inside the pre-warm window.
    The decision is the number of such ranks (what a Deployment's replica count can express), and
    ``details["idle_timeout_s"]`` the hold, which a FaaS platform applies per instance in
    continuous time (the serverless simulator does).

    ``keep_alive_s`` None means ``auto`` (windows learned from idle times); a number is a fixed
    keep-alive without pre-warming. ``prewarm`` False loads right after each invocation and keeps
    the function up to the learned tail. ``cold_start_s`` starts pre-warming that much early.
    ``cold_start_cost_gb_s`` prices a cold start for the cost-chosen windows (None: the paper's
    percentiles); ``few_samples_keep_alive_s`` is the keep-alive while learning (None: the
    paper's 4 h); ``memory_mb`` sizes an instance when the observation does not say;
    ``head_percentile`` / ``tail_percentile`` are the paper's pre-warm and keep-alive percentiles
    (the tail is used only without ``cold_start_cost_gb_s``; bench/keepalive_pareto.py sweeps both
    policies' knobs); ``learning_follows_cost`` scales the keep-alive while learning with the
    cold-start price (:meth:`learning_keep_alive_s`; unchanged at the default price);
    ``slo_tail_percentile`` (set from ``spec.slo`` when the predicted cold start exceeds its latency,
    tidal/core/serverlessfunction.py) makes the learned window cover that percentile of the idle
    times, never shortening it (:func:`slo_floor_bins`);
    ``trust_samples`` is how many idle times a learned window shorter than the keep-alive while
    learning waits for (:data:`TRUST_SAMPLES`; the paper trusts its histogram at 5);
    ``prewarm_by_cost`` False pre-warms at the paper's head instead of choosing by cost
    (:func:`keepalive_window`); ``learning_floor_all_ranks`` False holds only the function's first
    instance through the keep-alive while learning, a burst's other instances following the
    learned window (bench/keepalive_pareto.py ``--variants`` sweeps these three; their defaults
    are the policy as the operator runs it); ``extra_ranks_learning_cap_s`` is the most a
    function's extra instances are kept while learning
    (:meth:`extra_ranks_learning_keep_alive_s`, :data:`EXTRA_RANKS_LEARNING_CAP_S`; None: as
    long as the first instance); ``restart_by_cost`` True brings back instances let go only when
    worth it at their age, not whenever the learned hold grows past it (:meth:`_decide`; off by
    default, measured as a trade at the default price); ``prewarm_late_fraction`` charges each
    pre-warm that share of a cold start when choosing between staying loaded and pre-warming
    (:func:`_prewarm_option`; 0 by default, docs/bench.md measures 0.0034 on one seed's largest
    prices, not yet swept on both).
    """

    concurrency_target: float = DEFAULT_CONCURRENCY_TARGET
    min_instances: int = 0
    max_instances: int = 100
    scale_to_zero: bool = True
    keep_alive_s: float | None = None
    prewarm: bool = True
    cold_start_s: float = 0.0
    activity_window_s: float = 0.0
    stable_window_s: float = STABLE_WINDOW_S
    cold_start_cost_gb_s: float | None = COLD_START_COST_GB_S
    few_samples_keep_alive_s: float | None = DEFAULT_KEEP_ALIVE_S
    memory_mb: float = 0.0
    head_percentile: float = HEAD_PERCENTILE
    tail_percentile: float = TAIL_PERCENTILE
    learning_follows_cost: bool = True
    slo_tail_percentile: float | None = None
    trust_samples: int = TRUST_SAMPLES
    prewarm_by_cost: bool = True
    learning_floor_all_ranks: bool = True
    extra_ranks_learning_cap_s: float | None = EXTRA_RANKS_LEARNING_CAP_S
    restart_by_cost: bool = False
    prewarm_late_fraction: float = 0.0
    name: str = "keepalive"

    def __post_init__(self) -> None:
        if self.concurrency_target <= 0:
            raise ValueError("concurrency_target (spec.concurrencyTarget) must be > 0")
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            raise ValueError(
                "need 0 <= min_instances (spec.minInstances) <= max_instances "
                "(spec.maxInstances), max >= 1"
            )
        if self.keep_alive_s is not None and self.keep_alive_s < 0:
            raise ValueError("keep_alive_s (spec.keepAlive) must be >= 0")
        if not 0 <= self.head_percentile <= self.tail_percentile <= 100:
            raise ValueError("need 0 <= head_percentile <= tail_percentile <= 100")
        if self.slo_tail_percentile is not None and not 0 < self.slo_tail_percentile < 100:
            raise ValueError("slo_tail_percentile (spec.slo.percentile) must be in (0, 100)")
        if self.trust_samples < 0:
            raise ValueError("trust_samples must be >= 0")
        if self.extra_ranks_learning_cap_s is not None and self.extra_ranks_learning_cap_s < 0:
            raise ValueError("extra_ranks_learning_cap_s must be >= 0")
        if not 0 <= self.prewarm_late_fraction <= 1:
            raise ValueError("prewarm_late_fraction must be in [0, 1]")
        if self.cold_start_s < 0 or self.activity_window_s < 0 or self.stable_window_s < 0:
            raise ValueError("cold_start_s, activity_window_s and stable_window_s must be >= 0")
        if (
            (self.cold_start_cost_gb_s is not None and self.cold_start_cost_gb_s < 0)
            or (self.few_samples_keep_alive_s is not None and self.few_samples_keep_alive_s < 0)
            or self.memory_mb < 0
        ):
            raise ValueError(
                "cold_start_cost_gb_s, few_samples_keep_alive_s and memory_mb must be >= 0"
            )

    @property
    def floor(self) -> int:
        """Fewest instances ever: zero only when scale to zero is allowed."""
        return self.min_instances if self.scale_to_zero else max(self.min_instances, 1)

    def _clamp(self, n: int) -> int:
        return min(max(n, self.floor), self.max_instances)

    def window(
        self, state: KeepAliveState, learning_floor: bool = True, floor_s: float | None = None
    ) -> KeepAliveWindow:
        """The windows this policy uses now (fixed, or learned from the state's histogram; without
        the keep-alive while learning when ``learning_floor`` is False, with ``floor_s`` instead of
        :meth:`learning_keep_alive_s` as that keep-alive when given: a burst's extra instances,
        :meth:`extra_ranks_learning_keep_alive_s`)."""
        if self.keep_alive_s is not None:
            return KeepAliveWindow(
                0.0, self.keep_alive_s, "fixed", f"spec.keepAlive {self.keep_alive_s:g}s"
            )
        learned = state.learned or self.learn(state.histogram, state.memory_mb)
        if floor_s is not None and state.histogram.total < MIN_IDLE_SAMPLES:
            # Too few idle times for any window: the standard keep-alive, at this floor.
            learned = KeepAliveWindow(
                0.0, floor_s, "standard",
                f"{state.histogram.total} idle times observed (< {MIN_IDLE_SAMPLES}): "
                f"standard keep-alive of {floor_s:g}s for a burst's extra instances",
            )
        if learning_floor:
            learned = self._while_learning(learned, state, floor_s)
        if self.prewarm:
            return learned
        return KeepAliveWindow(0.0, learned.end_s, learned.mode, learned.message + "; pre-warm off")

    def cold_start_cost_s(self, memory_mb: float = 0.0) -> float | None:
        """What one cold start is worth in seconds of one idle instance of ``memory_mb`` (else
        the policy's ``memory_mb``; unknown: :data:`DEFAULT_KEEP_ALIVE_S`). None: the paper's
        99th-percentile tail."""
        if self.cold_start_cost_gb_s is None:
            return None
        memory_mb = memory_mb or self.memory_mb
        if memory_mb <= 0:
            return DEFAULT_KEEP_ALIVE_S
        return self.cold_start_cost_gb_s * 1024.0 / memory_mb

    def learn(self, histogram: IdleHistogram, memory_mb: float = 0.0) -> KeepAliveWindow:
        """The windows this policy learns from ``histogram`` (cached in the state)."""
        return keepalive_window(
            histogram,
            head_percentile=self.head_percentile,
            tail_percentile=self.tail_percentile,
            cold_start_cost_s=self.cold_start_cost_s(memory_mb),
            few_samples_keep_alive_s=self.learning_keep_alive_s(),
            hold_s=self.stable_window_s,
            slo_tail_percentile=self.slo_tail_percentile,
            prewarm_by_cost=self.prewarm_by_cost,
            prewarm_late_fraction=self.prewarm_late_fraction,
        )

    def learning_keep_alive_s(self) -> float | None:
        """The keep-alive while the idle times are not known yet (None: the paper's 4 h range).

        ``few_samples_keep_alive_s`` at the default cold-start price; with ``learning_follows_cost``
        scaled with ``cold_start_cost_gb_s`` (at most the histogram's range): the ski-rental
        break-even of the reference instance, which is the 10-minute platform default at 750 GB-s.
        A dearer cold start is worth holding an instance longer also before its idle times are
        known; without this the cost knob moves only the learned windows and rarely invoked
        functions keep cold-starting at every price (bench/keepalive_pareto.py)."""
        floor_s = self.few_samples_keep_alive_s
        if floor_s is None or self.cold_start_cost_gb_s is None or not self.learning_follows_cost:
            return floor_s
        return min(floor_s * self.cold_start_cost_gb_s / COLD_START_COST_GB_S, HISTOGRAM_RANGE_S)

    def extra_ranks_learning_keep_alive_s(self) -> float | None:
        """The keep-alive while learning for a function's extra instances (ranks 2 and up): that of
        its first instance (:meth:`learning_keep_alive_s`), at most ``extra_ranks_learning_cap_s``.

        Why: the keep-alive while learning follows the cold-start price because a dearer cold
        start is worth holding an instance longer before the idle times are known (ski rental:
        hold for the break-even time). That bet is on the function being invoked again, which
        its first instance serves. An extra instance is reused only when as many invocations are
        in flight again, so holding a burst's extra instances for the price's break-even time
        (2.7 h at 12,000 GB-s) bets the burst's whole memory on a repeat the history has not shown:
        in the Pareto bench a one-off burst held 485 instances through the measured hour (2.1 M of
        17.4 M GB-s idle) for no cold start saved. Capped at the platforms' 10 minutes, the
        extra instances are kept as the fixed keep-alive keeps every instance; at or below the
        default price the cap does not bind, so the default policy is unchanged. Never
        decreases with the price."""
        floor_s = self.learning_keep_alive_s()
        if floor_s is None or self.extra_ranks_learning_cap_s is None:
            return floor_s
        return min(floor_s, self.extra_ranks_learning_cap_s)

    def _while_learning(
        self, learned: KeepAliveWindow, state: KeepAliveState, floor_s: float | None = None
    ) -> KeepAliveWindow:
        """``learned``, but never ending before ``floor_s`` (default :meth:`learning_keep_alive_s`)
        until the histogram holds ``trust_samples`` (:data:`TRUST_SAMPLES`) idle times from at
        least :data:`TRUST_HISTORY_S` of watching."""
        if floor_s is None:
            floor_s = self.learning_keep_alive_s()
        if floor_s is None or learned.end_s >= floor_s:
            return learned
        watched_s = 0.0
        if state.anchor_s is not None and state.last_seen_s is not None:
            watched_s = state.last_seen_s - state.anchor_s
        samples = state.histogram.total
        if self._trusted(state):
            return learned
        return KeepAliveWindow(
            learned.prewarm_s,
            floor_s - learned.prewarm_s,
            learned.mode,
            f"{learned.message}; still learning ({samples} idle times, watched {watched_s:g}s): "
            f"kept at least {floor_s:g}s",
        )

    def _trusted(self, state: KeepAliveState) -> bool:
        """Whether the histogram holds ``trust_samples`` idle times from at least
        :data:`TRUST_HISTORY_S` of watching (the learned windows are used as they are)."""
        watched_s = 0.0
        if state.anchor_s is not None and state.last_seen_s is not None:
            watched_s = state.last_seen_s - state.anchor_s
        return state.histogram.total >= self.trust_samples and watched_s >= TRUST_HISTORY_S

    def hold_s(self, window: KeepAliveWindow) -> float:
        """How long an instance stays after it was last needed: through the keep-alive window when
        that starts right after the invocation, else (unload, then pre-warm) the stable window."""
        if window.prewarm_s > 0:
            return self.stable_window_s
        return max(window.end_s, self.stable_window_s)

    def prewarm_from_s(self, window: KeepAliveWindow) -> float:
        """Idle time at which a pre-warmed instance starts (``cold_start_s`` early); inf: never."""
        if window.prewarm_s <= 0:
            return math.inf
        return max(0.0, window.prewarm_s - self.cold_start_s)

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, KeepAliveState]:
        st = state if isinstance(state, KeepAliveState) else KeepAliveState()
        pool = observation.pools.get(POOL_FUNCTION)
        if pool is None:
            reason = Reason(
                REASON_NO_POOL, f"observation has no pool {POOL_FUNCTION!r}; nothing decided"
            )
            return Decision({}, (reason,)), st
        now = observation.now_s
        if st.anchor_s is None:
            st = replace(st, anchor_s=now)
        if not observation.metrics_available or (
            pool.request_rate_rps is None and pool.running_requests is None
        ):
            held = min(max(pool.current_replicas, self.floor), self.max_instances)
            reason = Reason(
                REASON_HOLD, f"invocation metrics unknown; holding {held} instances", POOL_FUNCTION
            )
            return Decision({POOL_FUNCTION: held}, (reason,), details={"phase": "hold"}), st
        need, st = self._observe(now, pool, st)
        decision, released_before_s = self._decide(now, need, st)
        return decision, replace(st, released_before_s=released_before_s)

    def _observe(
        self, now: float, pool: PoolObservation, st: KeepAliveState
    ) -> tuple[int, KeepAliveState]:
        """Fold one observation into the state: instances needed now, rank ages, idle times.

        A :class:`~tidal.sim.serverless.observation.FunctionPoolObservation` (read with getattr,
        so a plain observation still works) adds the peak in-flight count between ticks, so an
        instance started for a burst between two ticks counts as needed and is kept like any
        other, plus the exact idle times of the function and when it went idle."""
        concurrency = (pool.running_requests or 0.0) + (pool.waiting_requests or 0.0)
        in_flight = max(concurrency, float(getattr(pool, "peak_in_flight_since_last_tick", 0) or 0))
        exact_gaps = getattr(pool, "idle_gaps_s", None)
        exact = exact_gaps is not None
        if exact:
            active = in_flight > 0 or bool(getattr(pool, "arrivals_since_last_tick", 0))
        else:
            active = (pool.request_rate_rps or 0.0) > 0 or concurrency > 0
        need = max(1, math.ceil(in_flight / self.concurrency_target)) if active else 0
        samples: dict[float, int] = {}
        if exact:
            # Rank 1's idle times, exact; a gap shorter than the tick is continuous use at the
            # resolution the other ranks are seen with (it would only dilute the histogram).
            tick_s = now - st.last_seen_s if st.last_seen_s is not None else 0.0
            for gap in exact_gaps:
                if gap >= tick_s:
                    samples[gap] = samples.get(gap, 0) + 1
        elif active and not st.was_active and st.last_active_s is not None:
            samples[now - self._idle_since(st)] = 1
        ranks, ended = _rank_steps_after(st.ranks, now, need, st.last_seen_s)
        for gap, count in ended.items():
            samples[gap] = samples.get(gap, 0) + count
        histogram, learned = st.histogram, st.learned
        memory_mb = float(getattr(pool, "memory_mb", 0.0) or 0.0) or st.memory_mb
        if samples:
            histogram = histogram.record_many(samples.items())
            learned = self.learn(histogram, memory_mb)
        idle_since = None
        if not active:
            idle_since = getattr(pool, "idle_since_s", None) if exact else None
            if idle_since is None:
                idle_since = st.idle_since_s
            if idle_since is None and st.last_active_s is not None:
                idle_since = st.last_active_s - (0.0 if exact else self.activity_window_s)
        new_state = KeepAliveState(
            histogram=histogram,
            last_active_s=now if active else st.last_active_s,
            anchor_s=st.anchor_s,
            was_active=active,
            ranks=ranks,
            idle_since_s=idle_since,
            last_seen_s=now,
            memory_mb=memory_mb,
            learned=learned,
            released_before_s=st.released_before_s,
        )
        return need, new_state

    def _idle_since(self, st: KeepAliveState) -> float:
        """When the function went idle (or the first observation, before any invocation)."""
        if st.idle_since_s is not None:
            return st.idle_since_s
        if st.last_active_s is None:
            return st.anchor_s if st.anchor_s is not None else 0.0
        return st.last_active_s - self.activity_window_s

    def _back_from(self, now: float, hold_s: float, st: KeepAliveState) -> float | None:
        """:attr:`KeepAliveState.released_before_s`, moved back over the ranks let go that the
        keep-alive hold covers again and that are worth an instance at their age: the cheapest
        end of a window opening at that age (:func:`cheapest_end_bin` from its bin) costs less
        than a cold start for every idle time that outlasts the age. Youngest first; the first
        not worth it stops the walk."""
        released = st.released_before_s
        if released is None or now - released >= hold_s:
            return released
        if not self._trusted(st):
            return None  # while learning, the grown hold covers them again (as it did before)
        cost_s = self.cold_start_cost_s(st.memory_mb)
        hist = st.histogram
        if cost_s is None:
            return released
        for t, _ in reversed(st.ranks):
            age_s = now - t
            if t >= released:
                continue
            if age_s >= hold_s:
                break
            head = min(int(age_s // hist.bin_s), len(hist.counts) - 1)
            outlast = sum(hist.counts[head:]) + hist.out_of_range
            _, cost = _cheapest_end(hist.counts, hist.out_of_range, head, hist.bin_s, cost_s)
            if not outlast or cost >= cost_s * outlast:
                break
            released = t
        return released

    def _decide(self, now: float, need: int, st: KeepAliveState) -> tuple[Decision, float | None]:
        """Instances: those needed now, plus the ranks still inside their keep-alive hold and not
        let go before, plus the ranks inside their pre-warm window; and the new
        :attr:`KeepAliveState.released_before_s`.

        With ``restart_by_cost``, a rank let go is brought back by a keep-alive that has grown since
        (new idle times moved the cheapest end later) only when :meth:`_back_from` finds it worth
        it: the window is the cheapest from the start of an idle time,
        but for an instance already gone at age ``a`` the choice is whether to start one for the
        idle times that outlast ``a``, and for ranks older than the idle times seen that bet has
        nothing behind it. Measured (bench/keepalive_pareto.py, seed 0 at 12,000 GB-s): three idle
        times of 2.4 h moved a busy function's end from 57 min to 2.4 h and started 590 instances
        released an hour before, 0.94 M GB-s idle for no cold start saved. The pre-warm window,
        chosen for unloaded instances, still starts them. Off by default: on, bench/functions.py's
        first hour (no warm-up, 200 functions) had 33 more cold starts (6,609) for 0.6 % fewer
        GB-hours, a trade the default's results are not to make.

        Rank ages have tick resolution, so a platform that times instances out itself (exact
        ``idle_timeout_s``) may remove one a few seconds before the count lets its rank go; the
        count then starts it again (counted as a pre-warm start). Measured: capping the kept ranks
        at the instances that exist saved 1-2 % GB-hours but cost more cold starts than the fixed
        10-minute keep-alive on 2 of 7 workloads; a timeout two ticks longer cost more memory."""
        # ``floored``: the function's first instance's windows; ``window``: every instance's.
        window = self.window(st)
        floored = window
        if self.keep_alive_s is None:
            extra_s = self.extra_ranks_learning_keep_alive_s()
            first_s = self.learning_keep_alive_s()
            if not self.learning_floor_all_ranks:
                window = self.window(st, learning_floor=False)
            elif extra_s is not None and first_s is not None and extra_s < first_s:
                window = self.window(st, floor_s=extra_s)
        hold_s = self.hold_s(window)
        prewarm_from_s = self.prewarm_from_s(window)
        released_before_s = self._back_from(now, hold_s, st)
        kept_s = hold_s  # ranks last needed at or after released_before_s are kept through it
        if released_before_s is not None:
            kept_s = min(hold_s, math.nextafter(now - released_before_s, math.inf))
        kept = _ranks_aged(st.ranks, now, 0.0, kept_s)
        let_go_s = hold_s if math.isinf(prewarm_from_s) else max(hold_s, window.end_s)
        if released_before_s is not None:
            released_before_s = max(now - let_go_s, released_before_s)
        elif self.cold_start_cost_gb_s is not None and self.restart_by_cost:
            released_before_s = now - let_go_s
        prewarmed = _ranks_aged(st.ranks, now, max(prewarm_from_s, hold_s), window.end_s)
        if floored is not window and not kept and st.ranks:
            # The function's first instance (the rank needed last) through the keep-alive while
            # learning, unless its pre-warm window already counts it.
            age_s = now - st.ranks[-1][0]
            if age_s < floored.end_s and not max(prewarm_from_s, hold_s) <= age_s < window.end_s:
                kept = 1
        desired = self._clamp(max(need, kept + prewarmed))
        idle_s = 0.0 if need else max(0.0, now - self._idle_since(st))
        if need:
            code = REASON_ACTIVE
            message = (
                f"{need} instances needed now (peak in flight / target "
                f"{self.concurrency_target:g}); {kept} needed within the last {hold_s:g}s"
            )
        elif st.last_active_s is None:
            code, message = REASON_EXPIRED, "not invoked yet"
        elif kept:
            code = REASON_KEEPALIVE
            message = f"idle {idle_s:g}s; {kept} instances needed within the last {hold_s:g}s"
        elif prewarmed:
            code = REASON_PREWARM
            message = f"idle {idle_s:g}s; {prewarmed} instances inside their pre-warm window"
        elif idle_s < min(prewarm_from_s, window.end_s):
            code = REASON_UNLOADED
            message = (
                f"idle {idle_s:g}s; next invocation expected after {window.prewarm_s:g}s, "
                f"pre-warm at {prewarm_from_s:g}s"
            )
        else:
            code = REASON_EXPIRED
            message = f"idle {idle_s:g}s beyond keep-alive end {window.end_s:g}s"
        if window.prewarm_s > 0 and (prewarmed or kept or need):
            message += f"; pre-warm window [{prewarm_from_s:g}s, {window.end_s:g}s)"
        message += f" -> {desired}"
        details = {
            "phase": code,
            "keep_alive_s": window.keepalive_s,
            "prewarm_s": window.prewarm_s,
            "window_mode": window.mode,
            "prewarm_instances": prewarmed,
            "idle_s": idle_s,
            DETAIL_IDLE_TIMEOUT_S: hold_s,
        }
        reasons = (Reason(code, f"{message} ({window.mode}: {window.message})", POOL_FUNCTION),)
        return Decision({POOL_FUNCTION: desired}, reasons, details=details), released_before_s


STATE_FORMAT_VERSION = 1


def state_to_dict(state: KeepAliveState) -> dict[str, Any]:
    """A compact JSON-able form of the state (sparse bins, bounded size), for shells that persist
    it across restarts."""
    hist = state.histogram
    # Written only when set (restart_by_cost), so the default's persisted form is as before.
    extra = {} if state.released_before_s is None else {"releasedBeforeS": state.released_before_s}
    return {
        "version": STATE_FORMAT_VERSION,
        "binS": hist.bin_s,
        "bins": len(hist.counts),
        "counts": {str(i): c for i, c in enumerate(hist.counts) if c},
        "outOfRange": hist.out_of_range,
        "recentOutOfRange": list(hist.recent_out_of_range),
        "lastActiveS": state.last_active_s,
        "anchorS": state.anchor_s,
        "wasActive": state.was_active,
        "idleSinceS": state.idle_since_s,
        "lastSeenS": state.last_seen_s,
        "ranks": [[t, n] for t, n in state.ranks],
        **extra,
    }


def _ranks_from(data: Any) -> RankSteps:
    """Rank steps from their JSON form, keeping only a valid (time up, count down) prefix."""
    steps: list[tuple[float, int]] = []
    for item in list(data or [])[-MAX_RANK_STEPS:]:
        t, n = float(item[0]), int(item[1])
        if n < 1 or (steps and (t <= steps[-1][0] or n >= steps[-1][1])):
            break
        steps.append((t, n))
    return tuple(steps)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def state_from_dict(data: Any) -> KeepAliveState | None:
    """The state :func:`state_to_dict` wrote, or None when ``data`` is not such a state (a shell
    then starts afresh rather than failing)."""
    try:
        if not isinstance(data, dict) or data.get("version") != STATE_FORMAT_VERSION:
            return None
        bins, bin_s = int(data["bins"]), float(data["binS"])
        if not 0 < bins <= 100_000 or bin_s <= 0:
            return None
        counts = [0] * bins
        for index, count in dict(data.get("counts") or {}).items():
            if 0 <= int(index) < bins and int(count) > 0:
                counts[int(index)] = int(count)
        hist = IdleHistogram(
            counts=tuple(counts),
            out_of_range=max(0, int(data.get("outOfRange") or 0)),
            recent_out_of_range=tuple(float(v) for v in data.get("recentOutOfRange") or [])[
                -OOB_MEMORY:
            ],
            bin_s=bin_s,
        )
        return KeepAliveState(
            histogram=hist,
            last_active_s=_optional_float(data.get("lastActiveS")),
            anchor_s=_optional_float(data.get("anchorS")),
            was_active=bool(data.get("wasActive")),
            idle_since_s=_optional_float(data.get("idleSinceS")),
            last_seen_s=_optional_float(data.get("lastSeenS")),
            ranks=_ranks_from(data.get("ranks")),
            released_before_s=_optional_float(data.get("releasedBeforeS")),
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def _shape(window: KeepAliveWindow | None) -> tuple[float, float, str] | None:
    """A window without its message (which counts samples, so it changes with every one)."""
    return None if window is None else (window.prewarm_s, window.keepalive_s, window.mode)


def resumed(state: KeepAliveState, now_s: float, instances: int) -> KeepAliveState:
    """The state after an operator restart: the instances that exist count as needed at ``now_s``.

    The state is written twice per burst (:func:`worth_persisting`), not every tick, so a crash may
    lose when ranks were last needed, and their ages would then come out too old: instances would
    be removed before their keep-alive. Counting what runs as needed at the restart makes a
    restart lengthen a keep-alive by at most the downtime and never shorten it; the gap is not
    learned as an idle time (``last_seen_s`` is the restart, so those ranks are seen in use)."""
    if instances <= 0:
        return state
    ranks = tuple(step for step in state.ranks if step[1] > instances and step[0] < now_s)
    return replace(state, ranks=(*ranks, (now_s, instances))[-MAX_RANK_STEPS:], last_seen_s=now_s)


def worth_persisting(before: KeepAliveState | None, after: KeepAliveState) -> bool:
    """Whether a shell should write the state now: the learned windows changed, or the function
    was invoked after an idle time (a new idle time of the function) or just went idle (so its
    rank ages are exact): twice per burst. A busy function learns idle times of its extra
    instances nearly every tick; those that leave the windows unchanged wait for the next write."""
    if before is None:
        return True
    return (
        _shape(after.learned) != _shape(before.learned)
        or before.was_active != after.was_active
    )
