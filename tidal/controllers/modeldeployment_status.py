"""Status, conditions and event texts of a ModelDeployment. Pure formatting of what a tick found.

The conditions and their meaning are the ones docs/troubleshooting.md documents (Ready,
MetricsAvailable, SLOMet, CapacityLimited, ManualOverride, Degraded). ``lastTransitionTime`` only moves when a
condition's status flips, as for every Kubernetes condition (metav1.Condition), so a status that
did not change produces an identical patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from tidal.api.modeldeployment import ModelDeployment
from tidal.api.types import parse_duration_s
from tidal.api.validation import InvalidResource
from tidal.controllers.conditions import last_transition, rfc3339
from tidal.controllers.modeldeployment import ChildKey, label_selector
from tidal.controllers.modeldeployment_observe import PoolReplicas
from tidal.controllers.slo_attainment import Attainment
from tidal.core.modeldeployment import ForecastView, Override
from tidal.policies.interface import Decision, Reason

READY = "Ready"
METRICS_AVAILABLE = "MetricsAvailable"
SLO_MET = "SLOMet"
CAPACITY_LIMITED = "CapacityLimited"
DEGRADED = "Degraded"
MANUAL_OVERRIDE = "ManualOverride"
CONDITION_TYPES = (READY, METRICS_AVAILABLE, SLO_MET, CAPACITY_LIMITED, MANUAL_OVERRIDE, DEGRADED)
HAND_BACK_HINT = ("hand control back with: kubectl patch modeldeployment {name} --type=json "
                  "-p '[{{\"op\":\"remove\",\"path\":\"/spec/replicas\"}}]'")
"""How to end a manual override (docs/autoscaling.md, "Manual override")."""

REASON_INVALID_SPEC = "InvalidSpec"
MAX_CONDITION_MESSAGE = 4096
"""Well below the CRD's 32768-character limit; conditions are read by humans in ``kubectl describe``."""
MAX_STATUS_REASONS = 32
"""The CRD's ``status.lastDecision.reasons`` maxItems."""
STATUS_ATTAINMENT_STEP = 0.01
"""``status.sloAttainment`` is rounded down to whole percents: finer values change on every tick under
steady load and would rewrite every workload's status each interval (the metric keeps full precision).
Down, so a value below ``spec.slo.attainment`` never displays as meeting it."""


@dataclass(frozen=True)
class ConditionValue:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None, new: Sequence[ConditionValue], now_s: float, generation: int | None,
) -> list[dict[str, Any]]:
    """Conditions in CONDITION_TYPES order: the new ones (keeping lastTransitionTime where the status
    did not flip) plus previous ones of types not in ``new``, unchanged."""
    prev = {c.get("type"): c for c in previous or () if isinstance(c, Mapping)}
    given = {c.type for c in new}
    out: list[dict[str, Any]] = []

    def order(kind: str) -> int:
        return CONDITION_TYPES.index(kind) if kind in CONDITION_TYPES else len(CONDITION_TYPES)

    kept = [dict(c) for t, c in prev.items() if t not in given and isinstance(t, str)]
    for cond in new:
        item: dict[str, Any] = {
            "type": cond.type, "status": cond.status, "reason": cond.reason,
            "message": cond.message[:MAX_CONDITION_MESSAGE],
            "lastTransitionTime": last_transition(prev.get(cond.type), cond.status, now_s),
        }
        if generation is not None:
            item["observedGeneration"] = generation
        out.append(item)
    return sorted(out + kept, key=lambda c: order(str(c.get("type"))))


def invalid_spec_conditions(error: InvalidResource) -> list[ConditionValue]:
    """Ready=False and Degraded=True, both naming every bad field and how to fix it."""
    message = "; ".join(str(e) for e in error.errors) + " (fix the spec and apply it again)"
    return [
        ConditionValue(READY, "False", REASON_INVALID_SPEC, message),
        ConditionValue(DEGRADED, "True", REASON_INVALID_SPEC, message),
    ]


@dataclass(frozen=True)
class MetricsReport:
    """Whether this tick's engine metrics were read, and why not (per pool)."""

    available: bool
    reason: str
    message: str
    attainment: Mapping[str, Attainment] = field(default_factory=dict)
    """Per pool, the fraction of the window's requests within each SLO target (pools read only)."""


def metrics_condition(report: MetricsReport) -> ConditionValue:
    return ConditionValue(METRICS_AVAILABLE, "True" if report.available else "False", report.reason, report.message)


def slo_condition(md: ModelDeployment, pools: Mapping[str, Any], metrics_available: bool,
                  attainment: Mapping[str, Attainment] | None = None) -> ConditionValue:
    """SLOMet: at least ``slo.attainment`` of the window's requests met the targets, in every pool.

    The attainment (fraction within each target, from the histogram buckets; the combined value is
    the minimum of TTFT's and TPOT's, tidal/controllers/slo_attainment.py) decides where it is
    known. A pool without it (a reader that does not provide bucket rates) falls back to the
    percentile latencies: "the p90 is within the target" is "at least 90% met it".
    """
    slo = md.spec.slo
    if not metrics_available:
        return ConditionValue(SLO_MET, "Unknown", "MetricsUnavailable", "engine metrics could not be read")
    attainment = attainment or {}
    misses, unknown, met = [], [], []
    for pool, obs in pools.items():
        attained = attainment.get(pool)
        if attained is not None and attained.combined is not None:
            # Whole percents while met, so steady load does not rewrite the condition every tick.
            if attained.combined < slo.attainment:
                parts = _attainment_parts(attained, slo, ".1%")
                misses.append(f"pool {pool}: {attained.combined:.1%} of requests met the SLO ({parts}) "
                              f"< {slo.attainment:.0%} required")
            else:
                parts = _attainment_parts(attained, slo, ".0%")
                met.append(f"pool {pool}: {_floor_percent(attained.combined):.0%} of requests met the SLO ({parts})")
            continue
        for label, target, value in (("TTFT", slo.ttft, obs.ttft_s), ("TPOT", slo.tpot, obs.tpot_s)):
            if target is None:
                continue
            if value is None:
                unknown.append(f"{pool} {label}")
                continue
            limit = parse_duration_s(target)
            if value > limit:
                misses.append(f"pool {pool}: p{slo.percentile:g} {label} {value * 1000:.0f}ms > target {target}")
            else:
                met.append(f"pool {pool}: p{slo.percentile:g} {label} within {target}")
    if misses:
        return ConditionValue(SLO_MET, "False", "TargetMissed", "; ".join(misses))
    if unknown:
        return ConditionValue(SLO_MET, "Unknown", "NoLatencyData",
                              "no requests in the metrics window for " + ", ".join(unknown))
    return ConditionValue(SLO_MET, "True", "TargetsMet", "; ".join(met) or "SLO targets met")


def _floor_percent(value: float) -> float:
    """Down to a whole percent (the epsilon absorbs binary fractions such as 0.29 * 100 = 28.999...)."""
    return math.floor(value / STATUS_ATTAINMENT_STEP + 1e-9) * STATUS_ATTAINMENT_STEP


def _attainment_parts(attained: Attainment, slo: Any, spec: str) -> str:
    return ", ".join(f"{label} {_floor_percent(value) if spec == '.0%' else value:{spec}} within {target}"
                     for label, value, target in (("TTFT", attained.ttft, slo.ttft), ("TPOT", attained.tpot, slo.tpot))
                     if value is not None)


def ready_condition(desired: Mapping[str, int], replicas: Mapping[str, PoolReplicas]) -> ConditionValue:
    short = [f"pool {p}: {replicas[p].observation.ready_replicas if p in replicas else 0}/{n} ready"
             for p, n in desired.items()
             if (replicas[p].observation.ready_replicas if p in replicas else 0) < n]
    if short:
        return ConditionValue(READY, "False", "ReplicasStarting", "; ".join(short))
    return ConditionValue(READY, "True", "ReplicasReady", "every pool has its desired replicas ready")


def capacity_condition(limits: Sequence[Reason], replicas: Mapping[str, PoolReplicas]) -> ConditionValue:
    # Pending pods are listed from the pods themselves; the core's pods-pending limit says the same.
    messages = [r.message for r in limits if r.code != "pods-pending"]
    pending = {p: r.observation.pending_replicas for p, r in replicas.items() if r.observation.pending_replicas}
    messages += [f"pool {p}: {n} pod(s) Pending (no node fits; kubectl describe pod)" for p, n in pending.items()]
    if not messages:
        return ConditionValue(CAPACITY_LIMITED, "False", "CapacityAvailable", "desired replicas can be placed")
    codes = {r.code for r in limits}
    reason = ("AcceleratorClassMissing" if codes & {"no-accelerator-class", "accelerator-missing"}
              else "NoClassMeetsSLO" if "accelerator-cannot-meet-slo" in codes
              else "FairShareCapped" if "fair-share-cap" in codes
              else "MaxReplicasReached" if "max-replicas" in codes
              else "AcceleratorClassFull" if "accelerator-class-full" in codes else "PodsPending")
    return ConditionValue(CAPACITY_LIMITED, "True", reason, "; ".join(messages))


def override_condition(name: str, override: Override | None) -> ConditionValue:
    """ManualOverride=True while ``spec.replicas`` (kubectl scale) holds the replica count."""
    if override is None:
        return ConditionValue(MANUAL_OVERRIDE, "False", "Autoscaling",
                              "spec.replicas is not set; tidal decides replicas")
    return ConditionValue(MANUAL_OVERRIDE, "True", "SpecReplicasSet",
                          f"{override.message}; autoscaling is paused; " + HAND_BACK_HINT.format(name=name))


def degraded_condition(problems: Sequence[str]) -> ConditionValue:
    if problems:
        return ConditionValue(DEGRADED, "True", "StepFailed", "; ".join(problems))
    return ConditionValue(DEGRADED, "False", "AllStepsSucceeded", "children applied, decision made")


def reasons_status(reasons: Iterable[Reason]) -> list[dict[str, Any]]:
    out = []
    for r in list(reasons)[:MAX_STATUS_REASONS]:
        item: dict[str, Any] = {"code": r.code, "message": r.message}
        if r.pool is not None:
            item["pool"] = r.pool
        out.append(item)
    return out


def status_patch(
    md_name: str,
    generation: int | None,
    decision: Decision | None,
    by_child: Mapping[ChildKey, int],
    replicas: Mapping[str, PoolReplicas],
    conditions: list[dict[str, Any]],
    now_s: float,
    policy: str,
    forecast: ForecastView | None = None,
    cold_start_s: float | None = None,
    kv_ttl_s: float | None = None,
    slo_attainment: float | None = None,
    demand_gpus: int | None = None,
) -> dict[str, Any]:
    """The ``status`` object (camelCase, the CRD's schema) for a merge patch. Absent values are
    ``None`` so the merge patch removes stale ones."""
    pools: dict[str, Any] = {}
    desired_total = ready_total = 0
    pool_names = list(decision.desired_replicas) if decision else list(replicas)
    for pool in pool_names:
        rep = replicas.get(pool)
        ready = rep.observation.ready_replicas if rep else 0
        starting = (rep.observation.starting_replicas + rep.observation.pending_replicas) if rep else 0
        desired = decision.desired_replicas.get(pool, 0) if decision else (rep.spec_total if rep else 0)
        by_acc = {}
        for key, n in by_child.items():
            if key.pool != pool:
                continue
            acc_ready = rep.ready_by_accelerator.get(key.accelerator, 0) if rep else 0
            acc_spec = rep.by_accelerator.get(key.accelerator, 0) if rep else 0
            by_acc[key.accelerator] = {"desired": n, "ready": acc_ready, "starting": max(0, acc_spec - acc_ready)}
        pools[pool] = {"desired": desired, "ready": ready, "starting": starting, "byAccelerator": by_acc}
        desired_total += desired
        ready_total += ready
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "replicas": ready_total,
        "readyReplicas": ready_total,
        "desiredReplicas": desired_total,
        "selector": label_selector(md_name),
        "pools": pools,
        "conditions": conditions,
        "forecast": None if forecast is None else {
            "rps": round(forecast.rps, 4), "lowerRps": round(forecast.lower_rps, 4),
            "upperRps": round(forecast.upper_rps, 4), "horizonSeconds": round(forecast.horizon_s, 1),
        },
        "predictedColdStartSeconds": None if cold_start_s is None else round(cold_start_s, 1),
        "kvTtlSeconds": kv_ttl_s,
        "sloAttainment": None if slo_attainment is None else round(_floor_percent(slo_attainment), 2),
        "demandGpus": demand_gpus,
    }
    if decision is not None:
        status["lastDecision"] = {"time": rfc3339(now_s), "policy": policy,
                                  "reasons": reasons_status(decision.reasons)}
    return status


def scale_event(key: ChildKey, before: int, after: int, reasons: Iterable[Reason]) -> tuple[str, str]:
    """(reason, message) of the Kubernetes Event for one replica change."""
    why = "; ".join(f"{r.code}: {r.message}" for r in reasons if r.pool in (None, key.pool))
    verb = "ScaledUp" if after > before else "ScaledDown"
    return verb, f"pool {key.pool} on {key.accelerator}: {before} -> {after} replicas ({why})"
