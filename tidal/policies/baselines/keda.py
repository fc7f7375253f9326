"""KEDA ScaledObject with a Prometheus trigger, over the HPA KEDA creates for it.

KEDA splits the work in two loops (kedacore/keda; sources in
``tidal.policies.baselines.defaults``):

- KEDA's own scale loop, every ``pollingInterval`` (30 s), ``RequestScale`` in
  ``pkg/scaling/executor/scale_scaledobjects.go``: the trigger is active when the query value
  is above ``activationThreshold`` (``prometheus_scaler.go``: ``val > activationThreshold``).
  Active with 0 replicas -> scale to ``max(minReplicaCount, 1)``; active otherwise -> record
  the last active time. Inactive with ``minReplicaCount`` 0 -> scale to 0 once
  ``cooldownPeriod`` (300 s) has passed since the last active time (``initialCooldownPeriod``
  after creation if never active); inactive below ``minReplicaCount`` -> scale to it. A
  scaler error with no active trigger never scales to zero: with a fallback KEDA leaves it to
  the HPA, without one it only reports the error.
- the HPA, every 15 s while the target has replicas (:mod:`tidal.policies.baselines.hpa`),
  with ``minReplicas = max(minReplicaCount, 1)`` and an External metric with an
  ``AverageValue`` target of ``threshold`` (KEDA's default ``metricType``):
  ``GetExternalPerPodMetricReplicas`` -- the query's value divided by ``threshold``, with the
  tolerance check against the current pod count and no pod grouping. At 0 replicas the HPA is
  inactive (implicit maintenance mode).
- fallback (``pkg/fallback/fallback.go``), on the HPA's metric requests: each failed query
  adds a failure, a success resets the count; after more than ``failureThreshold`` failures
  the metric reported to the HPA is ``fallback replicas x threshold`` so the HPA asks for the
  fallback replicas (``behavior: static``; ``currentReplicas``,
  ``currentReplicasIfHigher``/``IfLower`` use the current count). Without a fallback the HPA
  gets an error and keeps the current count.

The query is ``sum(vllm:num_requests_running + vllm:num_requests_waiting)`` over the pool
(``None`` in the observation is a query error). Departure (docs/baselines.md): the pool sum
includes requests queued while no pod is ready. vLLM pods that do not exist export nothing,
so a query on vLLM metrics alone returns nothing at 0 replicas and KEDA could never activate;
real deployments activate on a gateway or queue metric, which the pool sum stands for here.
The simulator's first decision sees a workload with no pods (and no metric); a real
Deployment is created with ``spec.replicas`` >= 1, so with ``minReplicaCount`` >= 1 the first
decision is ``minReplicaCount`` (KEDA itself would report the trigger error and wait).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.hpa import (
    Behavior,
    external_per_pod_replicas,
    hpa_reconcile,
    sync_due,
    validate_bounds,
)
from tidal.policies.baselines.perpool import decide_per_pool
from tidal.policies.interface import Decision, Observation, PoolObservation, Reason

REASON_ACTIVATE = "keda-activate"
REASON_DEACTIVATE = "keda-scale-to-zero"
REASON_COOLDOWN = "keda-cooldown"
REASON_TO_MIN = "keda-min-replicas"
REASON_TRIGGER_ERROR = "keda-trigger-error"
REASON_HPA_INACTIVE = "keda-hpa-inactive"
REASON_BETWEEN_LOOPS = "keda-between-loops"
REASON_FALLBACK = "keda-fallback"

_FALLBACK_BEHAVIORS = (d.KEDA_FALLBACK_BEHAVIOR_STATIC, d.KEDA_FALLBACK_BEHAVIOR_CURRENT,
                       d.KEDA_FALLBACK_BEHAVIOR_CURRENT_IF_HIGHER,
                       d.KEDA_FALLBACK_BEHAVIOR_CURRENT_IF_LOWER)


@dataclass(frozen=True)
class Fallback:
    """``spec.fallback``: replicas to report after ``failure_threshold`` consecutive errors."""

    failure_threshold: int
    replicas: int
    behavior: str = d.KEDA_FALLBACK_BEHAVIOR_STATIC

    def __post_init__(self) -> None:
        if self.failure_threshold < 0 or self.replicas < 0:
            raise ValueError("fallback failure_threshold and replicas must be >= 0")
        if self.behavior not in _FALLBACK_BEHAVIORS:
            raise ValueError(f"fallback behavior must be one of {_FALLBACK_BEHAVIORS}, "
                             f"got {self.behavior!r}")

    @property
    def valid(self) -> bool:
        """``HasValidFallback``: both numbers set; a zero-replica fallback is ignored."""
        return self.replicas > 0 and self.failure_threshold >= 0

    def replicas_for(self, current: int) -> int:
        """``doFallback``: the replica count the fallback metric encodes."""
        if self.behavior == d.KEDA_FALLBACK_BEHAVIOR_CURRENT:
            return current
        if self.behavior == d.KEDA_FALLBACK_BEHAVIOR_CURRENT_IF_HIGHER:
            return max(current, self.replicas)
        if self.behavior == d.KEDA_FALLBACK_BEHAVIOR_CURRENT_IF_LOWER:
            return min(current, self.replicas)
        return self.replicas


def query_value(obs: PoolObservation) -> float | None:
    """The Prometheus query: in-flight requests of the pool; None is a query error."""
    if obs.running_requests is None or obs.waiting_requests is None:
        return None
    return obs.running_requests + obs.waiting_requests


@dataclass(frozen=True)
class KedaPrometheus:
    """A ScaledObject with one Prometheus trigger (``threshold`` per pod, AverageValue)."""

    min_replicas: int = d.KEDA_MIN_REPLICA_COUNT
    max_replicas: int = d.KEDA_MAX_REPLICA_COUNT
    threshold: float = d.TARGET_INFLIGHT_PER_POD
    activation_threshold: float = d.KEDA_ACTIVATION_THRESHOLD
    polling_interval_s: float = d.KEDA_POLLING_INTERVAL_S
    cooldown_period_s: float = d.KEDA_COOLDOWN_PERIOD_S
    initial_cooldown_period_s: float = d.KEDA_INITIAL_COOLDOWN_PERIOD_S
    fallback: Fallback | None = None
    tolerance: float = d.HPA_TOLERANCE
    hpa_sync_period_s: float = d.HPA_SYNC_PERIOD_S
    behavior: Behavior = field(default_factory=Behavior)
    name: str = "keda"

    @property
    def tick_s(self) -> float:
        """The faster of the two loops (the HPA's); KEDA's own loop runs every polling interval."""
        return min(self.hpa_sync_period_s, self.polling_interval_s)

    def __post_init__(self) -> None:
        validate_bounds(self.min_replicas, self.max_replicas)
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.activation_threshold < 0:
            raise ValueError("activation_threshold must be >= 0")
        if not (self.polling_interval_s > 0 and self.hpa_sync_period_s > 0):
            raise ValueError("polling_interval_s and hpa_sync_period_s must be > 0")
        if self.cooldown_period_s < 0 or self.initial_cooldown_period_s < 0:
            raise ValueError("cooldown periods must be >= 0")

    @property
    def hpa_min_replicas(self) -> int:
        """``GetHPAMinReplicas``: the HPA KEDA creates never goes below 1."""
        return max(self.min_replicas, d.HPA_MIN_REPLICAS)

    # -- KEDA's scale loop: RequestScale ---------------------------------------------------
    def _request_scale(self, now_s: float, current: int, value: float | None,
                       st: dict[str, Any]) -> tuple[int | None, str, str]:
        is_error = value is None
        is_active = (not is_error) and value > self.activation_threshold  # type: ignore[operator]
        if is_active:
            if current == 0:
                st["last_active_s"] = now_s
                n = max(self.min_replicas, 1)
                return n, REASON_ACTIVATE, (f"trigger active ({value:g} > "
                                            f"{self.activation_threshold:g}): 0 -> {n}")
            st["last_active_s"] = now_s
            return None, "", ""
        if is_error:
            if self.fallback is not None and self.fallback.valid:
                return None, REASON_FALLBACK, "query failed; the HPA falls back after the threshold"
            return None, REASON_TRIGGER_ERROR, "query failed and no fallback: no change"
        if current > 0 and self.min_replicas == 0:
            last = st.get("last_active_s")
            if last is None:
                ready = st["created_s"] + self.initial_cooldown_period_s < now_s
            else:
                ready = last + self.cooldown_period_s < now_s
            if ready:
                return 0, REASON_DEACTIVATE, (f"trigger inactive ({value:g} <= "
                                              f"{self.activation_threshold:g}) past the cooldown")
            return None, REASON_COOLDOWN, "trigger inactive; cooling down"
        if current < self.min_replicas:
            return self.min_replicas, REASON_TO_MIN, f"below minReplicaCount {self.min_replicas}"
        return None, "", ""

    # -- the HPA's metric with fallback --------------------------------------------------------
    def _hpa_metric(self, current: int, value: float | None, st: dict[str, Any]
                    ) -> tuple[int | None, str]:
        fb = self.fallback if (self.fallback is not None and self.fallback.valid) else None
        if value is not None:
            if fb is not None:
                st["failures"] = 0
            return external_per_pod_replicas(current, value, self.threshold, self.tolerance), (
                f" ({value:g} in flight, threshold {self.threshold:g}/pod)")
        if fb is None:
            return None, " (query failed, no fallback)"
        st["failures"] = int(st.get("failures", 0)) + 1
        if st["failures"] > fb.failure_threshold:
            n = fb.replicas_for(current)
            usage = n * self.threshold
            return external_per_pod_replicas(current, usage, self.threshold, self.tolerance), (
                f" (fallback after {st['failures']} failures: {n} replicas)")
        return None, f" (query failed {st['failures']}x, fallback after {fb.failure_threshold})"

    def _pool(self, now_s: float, pool: str, obs: PoolObservation,
              pool_state: Mapping[str, Any] | None) -> tuple[int, Reason, dict[str, Any]]:
        st: dict[str, Any] = dict(pool_state or {})
        current = obs.current_replicas
        if not st and current == 0 and self.min_replicas > 0:
            # the Deployment's creation: it exists with replicas >= 1 and KEDA's HPA brings it
            # to minReplicaCount (see the module docstring)
            st.update(created_s=now_s, desired=self.min_replicas)
            return self.min_replicas, Reason(REASON_TO_MIN, "created at minReplicaCount "
                                             f"{self.min_replicas}", pool), st
        st.setdefault("created_s", now_s)
        value = query_value(obs)
        keda_note: Reason | None = None
        poll_due = ("last_poll_s" not in st or now_s - st["last_poll_s"]
                    >= self.polling_interval_s - d.TIME_SLACK_S)
        if poll_due:
            st["last_poll_s"] = now_s
            n, code, message = self._request_scale(now_s, current, value, st)
            if n is not None:
                st["desired"] = n
                return n, Reason(code, message, pool), st
            if code:
                keda_note = Reason(code, message, pool)
        if current == 0:
            # Nothing acts at 0 between polls (the HPA is inactive at 0 replicas): what KEDA last
            # asked for stands, e.g. minReplicaCount while the first pod is still being created.
            held = int(st.get("desired", 0))
            st["desired"] = held
            return held, keda_note or Reason(REASON_HPA_INACTIVE,
                                             f"0 replicas: the HPA is inactive until KEDA activates; "
                                             f"keeping {held}", pool), st
        hpa_state = st.get("hpa")
        if not sync_due(now_s, hpa_state, self.hpa_sync_period_s):
            held = int(st.get("desired", current))
            return held, keda_note or Reason(REASON_BETWEEN_LOOPS,
                                             f"no loop due; keeping {held}", pool), st
        proposal, note = self._hpa_metric(current, value, st)
        result = hpa_reconcile(now_s, current, proposal, self.hpa_min_replicas, self.max_replicas,
                               self.behavior, hpa_state, note)
        st["hpa"], st["desired"] = result.state, result.desired
        message = (result.message if keda_note is None
                   else f"{result.message}; KEDA: {keda_note.message}")
        return result.desired, Reason(result.code, message, pool), st

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        return decide_per_pool(observation, state, self._pool)
