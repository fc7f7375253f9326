"""Knative Serving's KPA on concurrency: stable/panic windows, panic mode, scale-to-zero grace.

A re-implementation of knative/serving (sources in ``tidal.policies.baselines.defaults``):

- metric collection (``pkg/autoscaler/metrics/collector.go``): the revision's concurrency is
  scraped every second and recorded into 1-s buckets of a stable window (60 s) and a panic
  window (10 % of it, 6 s); averages follow ``TimedFloat64Buckets.WindowAverage``
  (:mod:`tidal.policies.baselines.windows`). No data for a whole stable window is "no data":
  the decider returns an invalid result and nothing is scaled.
- the decider (``pkg/autoscaler/scaling/autoscaler.go`` ``Scale``), every 2 s: with
  ``ready = max(1, ready pods)``, ``dspc = ceil(stable / target)``,
  ``dppc = ceil(panic / target)``, both kept in ``[floor(ready / maxScaleDownRate),
  ceil(maxScaleUpRate * ready)]``; panic starts when ``dppc / ready >= panic threshold``
  (200 %), is extended while over it, and ends once a whole stable window has passed since
  the last time it was over; while panicking the result is ``max(stable, panic)`` counts and
  never below the highest count of this panic episode (no scale-down while panicking). A
  decider created while more than one pod is ready starts in panic mode at that count.
- the PodAutoscaler reconciler (``pkg/reconciler/autoscaling/kpa/{kpa,scaler}.go``): results
  are bounded by min/max scale; a result of 0 is applied only after the revision was Active
  for a stable window (then it is marked Inactive without scaling) and has been Inactive for
  ``scale-to-zero-grace-period`` (30 s); until then it keeps one pod. A new revision starts
  with ``initial-scale`` (1) pods.

Target: per-pod ``target_concurrency_per_pod`` (``container-concurrency-target-default``,
100) times the target utilisation (70 %); the concurrency of a vLLM pool is its running plus
waiting requests (what the queue-proxy counts in flight). Departures (docs/baselines.md):
the simulator observes once per tick, so each observation is recorded into every 1-s bucket
since the previous observation (sample and hold, what 1-s scrapes of that value would
record); a tick without the metric records nothing (a failed scrape). The queue-proxy
reports average concurrency over its reporting period, the observation is instantaneous.
Requests queued while no pod is ready are counted (the activator reports them). The
activator's burst capacity and routing, ``scale-down-delay`` (default 0) and
``activation-scale`` (default 1) have no effect at their defaults and are not modelled.

Missing data: a failed scrape leaves the windows averaging the data they hold (Knative's
partial-window rule), so the KPA may still scale down on older samples; only a whole stable
window without data holds the scale. A test pins this documented Knative behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.hpa import validate_bounds
from tidal.policies.baselines.perpool import decide_per_pool
from tidal.policies.baselines.windows import (
    bucket_start,
    knative_average,
    knative_is_empty,
    knative_record,
)
from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

REASON_NO_DATA = "kpa-no-data"
REASON_STABLE = "kpa-stable"
REASON_PANIC = "kpa-panic"
REASON_SCALE_TO_ZERO_WAIT = "kpa-scale-to-zero-wait"
REASON_SCALE_TO_ZERO = "kpa-scale-to-zero"

PA_ACTIVATING = "activating"
PA_ACTIVE = "active"
PA_INACTIVE = "inactive"

SCALE_UNKNOWN = -1
"""``scaleUnknown``: the reconciler leaves the scale as it is."""


def panic_window_s(stable_window_s: float, percentage: float, bucket_s: float) -> float:
    """``panic-window-percentage`` of the stable window, rounded to whole buckets, >= 1 bucket."""
    return max(bucket_s, round(stable_window_s * percentage / 100.0 / bucket_s) * bucket_s)


@dataclass(frozen=True)
class KnativeKPA:
    """Knative Pod Autoscaler (``kpa.autoscaling.knative.dev``) with the concurrency metric."""

    min_replicas: int = 0
    max_replicas: int = 16
    target_concurrency_per_pod: float = d.KNATIVE_CONTAINER_CONCURRENCY_TARGET_DEFAULT
    target_utilization: float = d.KNATIVE_TARGET_UTILIZATION
    stable_window_s: float = d.KNATIVE_STABLE_WINDOW_S
    panic_window_percentage: float = d.KNATIVE_PANIC_WINDOW_PERCENTAGE
    panic_threshold_percentage: float = d.KNATIVE_PANIC_THRESHOLD_PERCENTAGE
    max_scale_up_rate: float = d.KNATIVE_MAX_SCALE_UP_RATE
    max_scale_down_rate: float = d.KNATIVE_MAX_SCALE_DOWN_RATE
    enable_scale_to_zero: bool = d.KNATIVE_ENABLE_SCALE_TO_ZERO
    scale_to_zero_grace_period_s: float = d.KNATIVE_SCALE_TO_ZERO_GRACE_PERIOD_S
    scale_to_zero_pod_retention_s: float = d.KNATIVE_SCALE_TO_ZERO_POD_RETENTION_S
    initial_scale: int = d.KNATIVE_INITIAL_SCALE
    activation_timeout_s: float = d.KNATIVE_ACTIVATION_TIMEOUT_S
    tick_s: float = d.KNATIVE_TICK_S
    name: str = "knative-kpa"

    def __post_init__(self) -> None:
        validate_bounds(self.min_replicas, self.max_replicas)
        if not self.target_concurrency_per_pod > 0:
            raise ValueError("target_concurrency_per_pod must be > 0, got "
                             f"{self.target_concurrency_per_pod}")
        if not 0 < self.target_utilization <= 1:
            raise ValueError(f"target_utilization must be in (0, 1], got {self.target_utilization}")
        if not self.stable_window_s >= d.KNATIVE_BUCKET_S:
            raise ValueError(f"stable_window_s must be >= {d.KNATIVE_BUCKET_S}")
        if not 1 <= self.panic_window_percentage <= 100:
            raise ValueError("panic_window_percentage must be in [1, 100]")
        if not self.panic_threshold_percentage > 100:
            raise ValueError("panic_threshold_percentage must be > 100")
        if not (self.max_scale_up_rate > 1 and self.max_scale_down_rate > 1):
            raise ValueError("max_scale_up_rate and max_scale_down_rate must be > 1")
        if self.initial_scale < 1:
            raise ValueError("initial_scale must be >= 1 (allow-zero-initial-scale is false)")

    @property
    def target_value(self) -> float:
        """``ResolveMetricTarget``: per-pod concurrency the decider aims at."""
        return max(d.KNATIVE_TARGET_MIN, self.target_concurrency_per_pod * self.target_utilization)

    @property
    def panic_window_s(self) -> float:
        return panic_window_s(self.stable_window_s, self.panic_window_percentage,
                              d.KNATIVE_BUCKET_S)

    # -- metric collection ----------------------------------------------------------------
    def _collect(self, now_s: float, obs: PoolObservation, st: dict[str, Any]) -> None:
        prev = st.get("last_obs_s")
        st["last_obs_s"] = now_s
        if obs.running_requests is None or obs.waiting_requests is None:
            return                                   # failed scrape: nothing recorded
        concurrency = obs.running_requests + obs.waiting_requests
        g = d.KNATIVE_BUCKET_S
        end = bucket_start(now_s, g)
        start = end if prev is None else max(bucket_start(prev, g) + g, end - self.stable_window_s)
        t = start
        while t <= end + d.TIME_SLACK_S:
            st["stable"] = knative_record(st.get("stable"), t, concurrency, self.stable_window_s, g)
            st["panic"] = knative_record(st.get("panic"), t, concurrency, self.panic_window_s, g)
            t += g

    # -- decider: autoscaler.go Scale -------------------------------------------------------
    def _decide_count(self, now_s: float, ready_pods: int, st: dict[str, Any]
                      ) -> tuple[int | None, str, str]:
        g = d.KNATIVE_BUCKET_S
        if knative_is_empty(st.get("stable"), now_s, self.stable_window_s, g):
            return None, REASON_NO_DATA, "no concurrency data in the stable window"
        stable = knative_average(st.get("stable"), now_s, self.stable_window_s, g)
        panic = knative_average(st.get("panic"), now_s, self.panic_window_s, g)
        ready = max(1.0, float(ready_pods))
        max_up = math.ceil(self.max_scale_up_rate * ready)
        max_down = math.floor(ready / self.max_scale_down_rate)
        dspc = math.ceil(stable / self.target_value)
        dppc = math.ceil(panic / self.target_value)
        stable_count = int(min(max(dspc, max_down), max_up))
        panic_count = int(min(max(dppc, max_down), max_up))
        over = dppc / ready >= self.panic_threshold_percentage / 100.0
        panic_time = st.get("panic_time")
        if over:
            panic_time = now_s                       # begin, or extend, panicking
        elif panic_time is not None and panic_time + self.stable_window_s < now_s:
            panic_time = None                        # the surge reached the stable window
            st["max_panic_pods"] = 0
        st["panic_time"] = panic_time
        detail = (f"stable {stable:g} / panic {panic:g} concurrency, target "
                  f"{self.target_value:g}/pod, {ready_pods} ready")
        if panic_time is None:
            return stable_count, REASON_STABLE, f"{detail} -> {stable_count}"
        want = max(stable_count, panic_count)
        held = int(st.get("max_panic_pods", 0))
        if want > held:
            held = want
        st["max_panic_pods"] = held
        note = "" if want >= held else f" (no scale-down while panicking: {want} -> {held})"
        return held, REASON_PANIC, f"{detail} -> {held}{note}"

    # -- reconciler: scaler.go scale + handleScaleToZero, kpa.go computeActiveCondition --------
    def _scale_to_zero(self, now_s: float, st: dict[str, Any]) -> tuple[int, bool, str]:
        if not self.enable_scale_to_zero:
            return 1, True, "scale to zero disabled: keeping 1"
        status, since = st["pa"], float(st["pa_since_s"])
        if status == PA_ACTIVATING:
            if now_s - since >= self.activation_timeout_s:
                return 0, True, "activation timed out: scaling to 0"
            return SCALE_UNKNOWN, False, "activating: scale unchanged"
        if status == PA_ACTIVE:
            if now_s - since >= self.stable_window_s:
                return 0, False, "idle: marked inactive, scale unchanged"
            return 1, True, (f"idle but active for {now_s - since:g}s < stable window "
                             f"{self.stable_window_s:g}s: keeping 1")
        timeout = max(self.scale_to_zero_grace_period_s, self.scale_to_zero_pod_retention_s)
        if now_s - since >= timeout:
            return 0, True, f"inactive for {now_s - since:g}s >= {timeout:g}s: scaling to 0"
        return 0, False, f"inactive for {now_s - since:g}s < grace {timeout:g}s: scale unchanged"

    @staticmethod
    def _update_active(now_s: float, want: int, ready: int, st: dict[str, Any]) -> None:
        status = st["pa"]
        new = status
        if want == 0:
            new = PA_INACTIVE
        elif ready < 1:
            if want > 0 or status != PA_INACTIVE:
                new = PA_ACTIVATING
        elif want > 0 or status != PA_INACTIVE:
            new = PA_ACTIVE
        if new != status:
            st["pa"], st["pa_since_s"] = new, now_s

    def _pool(self, now_s: float, pool: str, obs: PoolObservation,
              pool_state: Mapping[str, Any] | None) -> tuple[int, Reason, dict[str, Any]]:
        st: dict[str, Any] = {k: v for k, v in (pool_state or {}).items()}
        if not st:                                   # a new revision's PodAutoscaler
            st = {"pa": PA_ACTIVATING, "pa_since_s": now_s, "panic_time": None,
                  "max_panic_pods": 0,
                  "applied": min(max(self.initial_scale, self.min_replicas), self.max_replicas)}
            if obs.ready_replicas > 1:               # newAutoscaler starts in panic mode
                st["panic_time"], st["max_panic_pods"] = now_s, obs.ready_replicas
        self._collect(now_s, obs, st)
        count, code, message = self._decide_count(now_s, obs.ready_replicas, st)
        applied = int(st["applied"])
        if count is None and st["pa"] != PA_ACTIVATING:
            want = SCALE_UNKNOWN
            message += f"; scale unchanged at {applied}"
        else:
            x = count if count is not None else SCALE_UNKNOWN
            bounded = self.min_replicas if x < self.min_replicas else min(x, self.max_replicas)
            if bounded != x and count is not None:
                message += f"; bounded to {bounded}"
            want, apply, why = ((bounded, True, "") if bounded != 0
                                else self._scale_to_zero(now_s, st))
            if why:
                code = REASON_SCALE_TO_ZERO if (apply and want == 0) else REASON_SCALE_TO_ZERO_WAIT
                message += f"; {why}"
            if apply:
                applied = want
            elif want == SCALE_UNKNOWN:
                message += f" at {applied}"
        self._update_active(now_s, want, obs.ready_replicas, st)
        st["applied"] = applied
        return applied, Reason(code, message, pool), st

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        return decide_per_pool(observation, state, self._pool)
