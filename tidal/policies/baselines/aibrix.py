"""AIBrix PodAutoscaler, KPA and APA strategies, on vLLM's ``gpu_cache_usage_perc``.

A re-implementation of vllm-project/aibrix v0.7.0 ``pkg/controller/podautoscaler`` (the
algorithm files are unchanged up to the newest commit read; sources in
``tidal.policies.baselines.defaults``). Each reconcile (every 10 s, ``DefaultResyncInterval``):

1. ``computeScaleDecision``: current replicas (the scale target's ``spec.replicas``) above
   max -> max, below min -> min; otherwise
2. metric collection: the metric of every pod that answers, averaged over those pods
   (``MetricsClient.UpdateMetrics``), recorded at ``now`` in a stable window (180 s) and a
   panic window (60 s) of 1-s buckets; a collection that fails for every pod is an error and
   nothing is scaled; the window values are plain means of the samples kept
   (:func:`tidal.policies.baselines.windows.aibrix_average`);
3. the strategy (``algorithm/kpa.go`` or ``algorithm/apa.go``) gives a recommendation,
   bounded by min/max (``applyConstraints``);
4. ``stabilizeRecommendation`` (the cooldown windows: scale-up 0 s, scale-down 300 s) and
   min/max bounds again.

KPA (``KPAAlgorithm``): panic mode when the stable value is <= 0 or panic / stable > 2.0,
decided afresh every reconcile (the scaling context is rebuilt each time, so
``MaxPanicPods`` starts at 0 and panic mode holds nothing); values inside the tolerance band
around the target keep the current count; otherwise ``ceil(value / target)``, kept within
``[floor(current / 2), max(1, ceil(2 * current))]``; in panic mode the larger of the stable and
panic counts.

APA (``APAAlgorithm``): ``ratio = stable value / target``; above ``1 + up tolerance``:
``min(ceil(current * ratio), ceil(2 * current))``; below ``1 - down tolerance``:
``max(ceil(current * ratio), floor(current / 2))``; otherwise the current count.

Metric: AIBrix's KPA and APA samples and its documentation scale vLLM on
``gpu_cache_usage_perc`` with target 0.5; the observation's ``kv_cache_usage_ratio`` is that
metric averaged over ready pods.

Where AIBrix's code differs from its documentation, the code is reproduced and a test pins it
(docs/baselines.md, "Rival behaviour that differs from its documentation"):

- KPA divides the *per-pod average* by the per-pod target, so its count does not grow with
  the number of pods (v0.4 summed the pod values; the window refactor of v0.5 averages them);
- the scale-down "cooldown" window keeps the *lowest* recommendation of the last 300 s
  (the controller's comment and the docs call it HPA-like stabilisation, which keeps the
  highest), so it speeds scale-down up instead of delaying it.

Departure: the simulator's t=0 decision sees no pods; AIBrix would disable scaling at 0
current replicas with a non-zero minimum, a real Deployment starts at ``spec.replicas`` >= 1,
so 0 current replicas are brought to ``min_replicas`` as the bounds check does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.hpa import validate_bounds
from tidal.policies.baselines.perpool import decide_per_pool
from tidal.policies.baselines.windows import aibrix_average, aibrix_record
from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

STRATEGY_KPA = "kpa"
STRATEGY_APA = "apa"

REASON_BETWEEN_SYNCS = "aibrix-between-syncs"
REASON_BOUNDS = "aibrix-bounds"
REASON_NO_METRICS = "aibrix-no-metrics"
REASON_KPA_STABLE = "aibrix-kpa-stable"
REASON_KPA_PANIC = "aibrix-kpa-panic"
REASON_APA = "aibrix-apa"
REASON_STABILIZED = "aibrix-cooldown"


def kpa_should_panic(stable: float, panic: float, panic_threshold: float) -> bool:
    """``KPAAlgorithm.shouldEnterPanicMode``: no stable load, or panic/stable over the threshold."""
    return stable <= 0 or panic / stable > panic_threshold


def kpa_target_replicas(current: float, stable: float, panic: float, target: float,
                        panic_threshold: float, in_panic: bool, max_panic_pods: int,
                        up_tolerance: float, down_tolerance: float, max_scale_up_rate: float,
                        max_scale_down_rate: float,
                        activation_scale: int = d.AIBRIX_ACTIVATION_SCALE) -> int:
    """``KPAAlgorithm.computeTargetReplicas`` (before ``applyConstraints``)."""
    ready = max(0.0, float(current))
    max_up = max(1.0, math.ceil(max_scale_up_rate * ready))
    max_down = math.floor(ready / max_scale_down_rate)
    up_at, down_at = target * (1 + up_tolerance), target * (1 - down_tolerance)
    dspc = math.ceil(stable / target) if (stable > up_at or stable < down_at) else current
    dppc = math.ceil(panic / target) if (panic > up_at or panic < down_at) else current
    stable_count = int(min(max(dspc, max_down), max_up))
    panic_count = int(min(max(dppc, max_down), max_up))
    if activation_scale > 1:
        if 0 < stable_count < activation_scale:
            stable_count = activation_scale
        if 0 < panic_count < activation_scale:
            panic_count = activation_scale
    if not in_panic:
        return stable_count
    want = max(stable_count, panic_count)
    return max(want, max_panic_pods)   # no scale-down below the context's MaxPanicPods


def apa_recommendation(current: int, value: float, target: float, up_tolerance: float,
                       down_tolerance: float, max_scale_up_rate: float,
                       max_scale_down_rate: float) -> int:
    """``APAAlgorithm.computeTargetReplicas`` before ``applyConstraints``."""
    ratio = value / target
    if ratio > 1 + up_tolerance:
        return min(math.ceil(current * ratio), math.ceil(max_scale_up_rate * current))
    if ratio < 1 - down_tolerance:
        return max(math.ceil(current * ratio), math.floor(current / max_scale_down_rate))
    return current


def stabilize_recommendation(now_s: float, current: int, recommendation: int,
                             history: list[list[float]], up_window_s: float,
                             down_window_s: float) -> tuple[int, list[list[float]]]:
    """``stabilizeRecommendation`` of the AIBrix controller, as written (not as documented).

    Scale-up keeps the highest, scale-down the *lowest* recommendation of its window
    (the current one included); an equal recommendation keeps the current count.
    """
    hist = [list(h) for h in history] + [[now_s, recommendation]]
    cutoff_all = now_s - max(up_window_s, down_window_s)
    hist = [h for h in hist if h[0] > cutoff_all]
    if recommendation == current:
        return current, hist
    scale_up = recommendation > current
    cutoff = now_s - (up_window_s if scale_up else down_window_s)
    inside = [int(r) for t, r in hist if t > cutoff]
    if not inside:
        return recommendation, hist
    return (max(inside) if scale_up else min(inside)), hist


@dataclass(frozen=True)
class AIBrixAutoscaler:
    """An AIBrix PodAutoscaler with ``scalingStrategy`` KPA or APA on KV-cache usage."""

    strategy: str = STRATEGY_APA
    min_replicas: int = 1
    max_replicas: int = 16
    target_value: float = d.AIBRIX_TARGET_KV_CACHE_USAGE
    stable_window_s: float = d.AIBRIX_STABLE_WINDOW_S
    panic_window_s: float = d.AIBRIX_PANIC_WINDOW_S
    panic_threshold: float = d.AIBRIX_PANIC_THRESHOLD
    up_fluctuation_tolerance: float = d.AIBRIX_UP_FLUCTUATION_TOLERANCE
    down_fluctuation_tolerance: float = d.AIBRIX_DOWN_FLUCTUATION_TOLERANCE
    max_scale_up_rate: float = d.AIBRIX_MAX_SCALE_UP_RATE
    max_scale_down_rate: float = d.AIBRIX_MAX_SCALE_DOWN_RATE
    scale_up_cooldown_s: float = d.AIBRIX_SCALE_UP_COOLDOWN_S
    scale_down_cooldown_s: float = d.AIBRIX_SCALE_DOWN_COOLDOWN_S
    resync_s: float = d.AIBRIX_RESYNC_S
    name: str = "aibrix"

    def __post_init__(self) -> None:
        if self.strategy not in (STRATEGY_KPA, STRATEGY_APA):
            raise ValueError(f"strategy must be {STRATEGY_KPA!r} or {STRATEGY_APA!r}, "
                             f"got {self.strategy!r}")
        validate_bounds(self.min_replicas, self.max_replicas)
        if not self.target_value > 0:
            raise ValueError(f"target_value must be > 0, got {self.target_value}")
        if not 0 < self.panic_window_s <= self.stable_window_s:
            raise ValueError("need 0 < panic_window_s <= stable_window_s "
                             "(AIBrix rejects panicWindowSeconds > observeWindowSeconds)")
        if not (self.max_scale_up_rate > 0 and self.max_scale_down_rate > 0):
            raise ValueError("max_scale_up_rate and max_scale_down_rate must be > 0")
        if min(self.up_fluctuation_tolerance, self.down_fluctuation_tolerance) < 0:
            raise ValueError("fluctuation tolerances must be >= 0")
        if not self.resync_s > 0:
            raise ValueError("resync_s must be > 0")

    @property
    def tick_s(self) -> float:
        return self.resync_s

    def _bounded(self, n: int) -> int:
        return min(max(n, self.min_replicas), self.max_replicas)

    def _pool(self, now_s: float, pool: str, obs: PoolObservation,
              pool_state: Mapping[str, Any] | None) -> tuple[int, Reason, dict[str, Any]]:
        st: dict[str, Any] = dict(pool_state or {})
        if "last_sync_s" in st and now_s - st["last_sync_s"] < self.resync_s - d.TIME_SLACK_S:
            held = int(st["desired"])
            return held, Reason(REASON_BETWEEN_SYNCS, f"next reconcile not due; keeping {held}",
                                pool), st
        st["last_sync_s"] = now_s
        current = obs.current_replicas
        if current > self.max_replicas or current < self.min_replicas:
            n = self._bounded(current)
            st["desired"] = n
            return n, Reason(REASON_BOUNDS, f"current {current} outside [{self.min_replicas}, "
                             f"{self.max_replicas}] -> {n}", pool), st
        value = obs.kv_cache_usage_ratio
        if value is None:
            st["desired"] = current
            return current, Reason(REASON_NO_METRICS, "no pod reports gpu_cache_usage_perc; "
                                   f"keeping {current}", pool), st
        g = d.AIBRIX_WINDOW_GRANULARITY_S
        st["stable"] = aibrix_record(st.get("stable"), now_s, value, self.stable_window_s, g)
        st["panic"] = aibrix_record(st.get("panic"), now_s, value, self.panic_window_s, g)
        stable, panic = aibrix_average(st["stable"]), aibrix_average(st["panic"])
        if self.strategy == STRATEGY_KPA:
            # The scaling context is rebuilt every reconcile: MaxPanicPods is 0, so panic
            # mode never holds a count.
            in_panic = kpa_should_panic(stable, panic, self.panic_threshold)
            raw = kpa_target_replicas(
                current, stable, panic, self.target_value, self.panic_threshold, in_panic, 0,
                self.up_fluctuation_tolerance, self.down_fluctuation_tolerance,
                self.max_scale_up_rate, self.max_scale_down_rate)
            code = REASON_KPA_PANIC if in_panic else REASON_KPA_STABLE
            detail = f"KV usage stable {stable:.3f} / panic {panic:.3f}"
        else:
            raw = apa_recommendation(current, stable, self.target_value,
                                     self.up_fluctuation_tolerance,
                                     self.down_fluctuation_tolerance,
                                     self.max_scale_up_rate, self.max_scale_down_rate)
            code, detail = REASON_APA, f"KV usage {stable:.3f}"
        recommendation = self._bounded(raw)
        message = (f"{detail} vs target {self.target_value:g} on {current} replicas -> "
                   f"{recommendation}")
        stabilized, st["recommendations"] = stabilize_recommendation(
            now_s, current, recommendation, st.get("recommendations", []),
            self.scale_up_cooldown_s, self.scale_down_cooldown_s)
        if stabilized != recommendation:
            code = REASON_STABILIZED
            message += f"; cooldown window -> {stabilized}"
        n = self._bounded(stabilized)
        st["desired"] = n
        return n, Reason(code, message, pool), st

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        return decide_per_pool(observation, state, self._pool)
