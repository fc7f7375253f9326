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
(15 % either side). **Deviation:** we forecast with the median of the recent out-of-range idle
times instead of ARIMA (no statsmodels at run time; the median is ARIMA's forecast for a
stationary series without autocorrelation).

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

``activity_window_s`` (constructor) says how long one invocation stays visible in the
observation: the PromQL ``rate()`` window for the operator, the tick length for a simulator that
reports per-tick counts. Idle times are measured between the estimated last invocation
(last active tick minus that window) and the next active tick, so they are accurate to one tick.
The state returned by :meth:`KeepAlivePolicy.decide` is a frozen :class:`KeepAliveState`
(bounded: 240 bins, 16 out-of-range samples, a 60 s needs window); persist it as you like.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

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
"""Knative KPA stable window (config-autoscaler ``stable-window: 60s``): while active, instances
follow the largest need of the last minute, so a dip between requests does not drop instances."""
DEFAULT_CONCURRENCY_TARGET = 100.0
"""Knative ``container-concurrency-target-default: 100``."""

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
        idle_s = max(0.0, float(idle_s))
        counts, oob, recent = list(self.counts), self.out_of_range, self.recent_out_of_range
        index = int(idle_s // self.bin_s)
        if index < len(counts):
            counts[index] += 1
        else:
            oob += 1
            recent = (recent + (idle_s,))[-OOB_MEMORY:]
        if sum(counts) + oob > MAX_HISTOGRAM_SAMPLES:
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
) -> KeepAliveWindow:
    """Pre-warm and keep-alive windows from an idle-time histogram (the hybrid histogram policy).

    ``idle_histogram`` is either an :class:`IdleHistogram` or plain bin counts (then ``bin_s``,
    ``out_of_range`` and ``recent_out_of_range`` describe it).
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
    range_s = bin_s * len(counts)
    in_range = sum(counts)
    total = in_range + out_of_range
    if total < min_samples:
        return KeepAliveWindow(
            0.0,
            range_s,
            "standard",
            f"{total} idle times observed (< {min_samples}): standard keep-alive of {range_s:g}s",
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
        return KeepAliveWindow(
            0.0,
            range_s,
            "standard",
            f"idle-time histogram not representative (CV {cv:.2f} < {cv_threshold:g}): "
            f"standard keep-alive of {range_s:g}s",
        )
    head_s = _percentile_bin(counts, head_percentile) * bin_s  # lower edge: pre-warm early
    tail_s = (_percentile_bin(counts, tail_percentile) + 1) * bin_s  # upper edge: keep long enough
    prewarm_s = head_s * (1.0 - margin)
    end_s = tail_s * (1.0 + margin)
    return KeepAliveWindow(
        prewarm_s,
        end_s - prewarm_s,
        "histogram",
        f"idle times p{head_percentile:g}={head_s:g}s p{tail_percentile:g}={tail_s:g}s "
        f"(CV {cv:.2f}, {in_range} samples)",
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
    recent_needs: tuple[tuple[float, int], ...] = ()
    """(time, instances needed) over the last stable window."""
    warm_instances: int = 1
    """Instances to keep or pre-warm while idle: what the last active tick needed."""
    learned: KeepAliveWindow | None = None
    """The windows learned from ``histogram`` (a cache: recomputed only when an idle time is recorded)."""


@dataclass(frozen=True)
class KeepAlivePolicy:
    """Instances for one function from its concurrency and the hybrid histogram keep-alive policy.

    ``keep_alive_s`` None means ``auto`` (windows learned from idle times); a number is a fixed
    keep-alive without pre-warming. ``prewarm`` False loads right after each invocation and keeps
    the function up to the learned tail. ``cold_start_s`` starts pre-warming that much early.
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
        if self.cold_start_s < 0 or self.activity_window_s < 0 or self.stable_window_s < 0:
            raise ValueError("cold_start_s, activity_window_s and stable_window_s must be >= 0")

    @property
    def floor(self) -> int:
        """Fewest instances ever: zero only when scale to zero is allowed."""
        return self.min_instances if self.scale_to_zero else max(self.min_instances, 1)

    def _clamp(self, n: int) -> int:
        return min(max(n, self.floor), self.max_instances)

    def window(self, state: KeepAliveState) -> KeepAliveWindow:
        """The windows this policy uses now (fixed, or learned from the state's histogram)."""
        if self.keep_alive_s is not None:
            return KeepAliveWindow(
                0.0, self.keep_alive_s, "fixed", f"spec.keepAlive {self.keep_alive_s:g}s"
            )
        learned = state.learned or keepalive_window(state.histogram)
        if self.prewarm:
            return learned
        return KeepAliveWindow(0.0, learned.end_s, learned.mode, learned.message + "; pre-warm off")

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
        concurrency = (pool.running_requests or 0.0) + (pool.waiting_requests or 0.0)
        active = (pool.request_rate_rps or 0.0) > 0 or concurrency > 0
        if active:
            return self._active(now, pool, concurrency, st)
        return self._idle(now, st)

    def _last_invocation_s(self, st: KeepAliveState) -> float:
        if st.last_active_s is None:
            return st.anchor_s if st.anchor_s is not None else 0.0
        return st.last_active_s - self.activity_window_s

    def _active(
        self, now: float, pool: PoolObservation, concurrency: float, st: KeepAliveState
    ) -> tuple[Decision, KeepAliveState]:
        histogram = st.histogram
        learned = st.learned
        if not st.was_active and st.last_active_s is not None:
            histogram = histogram.record(now - self._last_invocation_s(st))
            learned = keepalive_window(histogram)
        needed = max(1, math.ceil(concurrency / self.concurrency_target))
        needs = tuple((t, n) for t, n in st.recent_needs if now - t < self.stable_window_s) + (
            (now, needed),
        )
        desired = self._clamp(max(max(n for _, n in needs), 1))
        reason = Reason(
            REASON_ACTIVE,
            f"{concurrency:g} in flight / target {self.concurrency_target:g} "
            f"-> {needed}; largest need over {self.stable_window_s:g}s -> {desired}",
            POOL_FUNCTION,
        )
        new_state = replace(
            st,
            histogram=histogram,
            last_active_s=now,
            was_active=True,
            recent_needs=needs,
            warm_instances=max(1, needed),
            learned=learned,
        )
        window = self.window(new_state)
        details = {
            "phase": "active",
            "keep_alive_s": window.keepalive_s,
            "prewarm_s": window.prewarm_s,
            "window_mode": window.mode,
            "prewarm_instances": 0,
            "idle_s": 0.0,
        }
        return Decision({POOL_FUNCTION: desired}, (reason,), details=details), new_state

    def _idle(self, now: float, st: KeepAliveState) -> tuple[Decision, KeepAliveState]:
        idle_s = max(0.0, now - self._last_invocation_s(st))
        needs = tuple((t, n) for t, n in st.recent_needs if now - t < self.stable_window_s)
        st = replace(st, was_active=False, recent_needs=needs)
        window = self.window(st)
        warm = min(max(st.warm_instances, 1), self.max_instances)
        prewarm_starts_s = (
            max(0.0, window.prewarm_s - self.cold_start_s) if window.prewarm_s > 0 else 0.0
        )
        prewarm_instances = 0
        if needs:
            desired = self._clamp(max(n for _, n in needs))
            code, message = (
                REASON_KEEPALIVE,
                f"idle {idle_s:g}s within the {self.stable_window_s:g}s stable window",
            )
        elif idle_s < prewarm_starts_s:
            desired = self._clamp(0)
            code = REASON_UNLOADED
            message = (
                f"idle {idle_s:g}s; next invocation expected after {window.prewarm_s:g}s, "
                f"pre-warm at {prewarm_starts_s:g}s"
            )
        elif idle_s < window.end_s:
            desired = self._clamp(warm)
            prewarm_instances = desired if window.prewarm_s > 0 else 0
            code = REASON_PREWARM if window.prewarm_s > 0 else REASON_KEEPALIVE
            message = (
                f"idle {idle_s:g}s within window [{prewarm_starts_s:g}s, {window.end_s:g}s): "
                f"keep {desired} warm"
            )
        else:
            desired = self._clamp(0)
            code = REASON_EXPIRED
            message = f"idle {idle_s:g}s beyond keep-alive end {window.end_s:g}s -> {desired}"
        reasons = (Reason(code, f"{message} ({window.mode}: {window.message})", POOL_FUNCTION),)
        details = {
            "phase": code,
            "keep_alive_s": window.keepalive_s,
            "prewarm_s": window.prewarm_s,
            "window_mode": window.mode,
            "prewarm_instances": prewarm_instances,
            "idle_s": idle_s,
        }
        return Decision({POOL_FUNCTION: desired}, reasons, details=details), st


STATE_FORMAT_VERSION = 1


def state_to_dict(state: KeepAliveState) -> dict[str, Any]:
    """A compact JSON-able form of the durable part of the state (sparse bins, bounded size), for
    shells that persist it across restarts. The stable-window needs are transient and not kept."""
    hist = state.histogram
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
        "warmInstances": state.warm_instances,
    }


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
        last = data.get("lastActiveS")
        anchor = data.get("anchorS")
        return KeepAliveState(
            histogram=hist,
            last_active_s=None if last is None else float(last),
            anchor_s=None if anchor is None else float(anchor),
            was_active=bool(data.get("wasActive")),
            warm_instances=max(1, int(data.get("warmInstances") or 1)),
            learned=keepalive_window(hist),
        )
    except (KeyError, TypeError, ValueError):
        return None


def worth_persisting(before: KeepAliveState | None, after: KeepAliveState) -> bool:
    """Whether a shell should write the state now: a new idle time was learned, or the function just
    went idle (so the last activity time is exact). Twice per burst, not every tick."""
    if before is None:
        return True
    return after.histogram != before.histogram or (before.was_active and not after.was_active)
