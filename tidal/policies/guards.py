"""Guards every policy's decision passes through: what bad or partial data may never cause.

A reactive rule trusts its inputs; an operator cannot. These guards sit between any
:class:`~tidal.policies.interface.Autoscaler` and the shell, in both shells alike:

- *Partially observed pools are never scaled down.* When some Ready replicas did not report a
  usable in-flight count (``PoolObservation.unobserved_replicas`` > 0), the pool's metrics
  under-count its load, so a lower recommendation is not evidence of lower load. Scale-up on the
  replicas that do report is kept (the HPA's replica calculator reasons the same way about
  missing pods: they count as idle for a scale-up, as fully loaded for a scale-down).
- *Unusable counts are unknown, not zero.* A negative or non-finite count or rate that reached a
  policy (from a shell that did not validate) is treated as missing: hold.
- *Unusable histograms teach nothing.* KV-block residency histogram increments
  (``PoolObservation.kv_residency``) with a non-finite or negative count, bounds out of order or
  cumulative counts that fall are unknown (:func:`kv_residency_problem`): the core learns nothing
  from them, so the KV TTL stays what it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from tidal.policies.interface import Autoscaler, Cumulative, Decision, KvResidency, Observation, PoolObservation, Reason

REASON_HOLD_PARTIAL = "hold-partial-metrics"
REASON_HOLD_INVALID = "hold-invalid-metrics"
REASON_KV_RESIDENCY_INVALID = "kv-residency-invalid"

CUMULATIVE_TOLERANCE = 1e-9
"""Relative slack for a cumulative bucket count below the one before it: float rounding of summed
``increase()`` results, not a fall."""


def usable_count(value: float | None) -> bool:
    """A request count or rate a policy may act on: known, finite and not negative."""
    return value is not None and math.isfinite(value) and value >= 0


COUNT_FIELDS = ("running_requests", "waiting_requests", "request_rate_rps", "prompt_tokens_rps",
                "output_tokens_rps", "peak_request_rate_rps")
"""Observation fields that are counts or rates: never negative, always finite."""


SIGNED_FIELDS = ("in_flight_change_rps",)
"""Observation fields that may be negative (a change), but never non-finite."""


def _cumulative_problem(name: str, buckets: Cumulative) -> str | None:
    if not buckets:
        return f"{name}: no buckets"
    bounds = [le for le, _ in buckets]
    counts = [c for _, c in buckets]
    if any(math.isnan(le) for le in bounds) or any(b >= a for b, a in zip(bounds, bounds[1:])):
        return f"{name}: bucket bounds (le) not strictly increasing: {bounds}"
    if bounds[-1] != math.inf:
        return f"{name}: no +Inf bucket"
    if not all(math.isfinite(c) for c in counts):
        return f"{name}: non-finite bucket count"
    if any(c < 0 for c in counts):
        return f"{name}: negative bucket count (increases of counters cannot be negative)"
    for (le, before), (le_next, after) in zip(buckets, buckets[1:]):
        if after < before - CUMULATIVE_TOLERANCE * max(1.0, abs(before)):
            return (f"{name}: cumulative count falls from {before:g} (le={le:g}) to {after:g} "
                    f"(le={le_next:g})")
    return None


def kv_residency_problem(residency: KvResidency) -> str | None:
    """Why ``residency`` cannot be learnt from (``None``: it can): both histograms must be
    cumulative bucket counts (bounds increasing up to ``+Inf``, counts finite, not negative, never
    falling) over a positive finite window."""
    if not (math.isfinite(residency.window_s) and residency.window_s > 0):
        return f"window {residency.window_s!r} s is not a positive number of seconds"
    return (_cumulative_problem("kv_block_reuse_gap_seconds", residency.reuse_gap)
            or _cumulative_problem("kv_block_idle_before_evict_seconds", residency.idle_before_evict))


def sanitized(pool: PoolObservation) -> tuple[PoolObservation, bool]:
    """``pool`` with unusable counts and rates replaced by ``None`` (unknown), and whether any was."""
    bad = {name: None for name in COUNT_FIELDS
           if getattr(pool, name) is not None and not usable_count(getattr(pool, name))}
    bad.update({name: None for name in SIGNED_FIELDS
                if getattr(pool, name) is not None and not math.isfinite(getattr(pool, name))})
    return (replace(pool, **bad), True) if bad else (pool, False)


@dataclass(frozen=True)
class ObservationGuard:
    """Wraps a policy: unusable in-flight counts become unknown before it decides, and a partially
    observed pool is held at its current size when the policy would shrink it."""

    inner: Autoscaler

    @property
    def name(self) -> str:
        return self.inner.name

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        pools, invalid = {}, []
        for pool, obs in observation.pools.items():
            pools[pool], was_bad = sanitized(obs)
            if was_bad:
                invalid.append(pool)
        cleaned = replace(observation, pools=pools) if invalid else observation
        decision, new_state = self.inner.decide(cleaned, state)
        desired = dict(decision.desired_replicas)
        reasons = list(decision.reasons) + [
            Reason(REASON_HOLD_INVALID, "a request count or rate was negative or not finite; treated as unknown",
                   pool)
            for pool in invalid]
        held = False
        for pool, obs in observation.pools.items():
            current = obs.current_replicas
            if obs.unobserved_replicas > 0 and desired.get(pool, current) < current:
                held = True
                desired[pool] = current
                inner = "; ".join(r.message for r in reasons if r.pool == pool)
                reasons = [r for r in reasons if r.pool != pool]
                reasons.append(Reason(
                    REASON_HOLD_PARTIAL,
                    f"{inner}; scale-down held at {current}: {obs.unobserved_replicas} of {obs.ready_replicas} "
                    "Ready replicas did not report a usable in-flight count", pool))
        if not (held or invalid):
            return decision, new_state
        return replace(decision, desired_replicas=desired, reasons=tuple(reasons)), new_state
