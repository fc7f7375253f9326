"""One autoscaling decision for a ModelDeployment: the single entry point both shells call.

:func:`decide_workload` ``(md, observation, state) -> (decision, state)`` holds everything that
decides, in this order:

1. learn replica starts carried in the observation (cold-start predictor, each uid once);
2. predict the p90 cold start on the most preferred accelerator class;
3. feed the entry pool's arrival rate (``PoolObservation.arrival_rate_rps``) to the load forecaster and forecast one cold start ahead;
4. the KV-cache TTL from ``spec.kvCache.ttl``; for ``auto``, from the session pauses learnt from
   the engines' KV-block residency histograms (``PoolObservation.kv_residency``) once there are
   enough of them, else the prior's;
5. replicas per pool: ``spec.replicas`` (manual override, clamped and split over pools), or the
   rule ``spec.autoscaling.policy`` names (tidal/core/policies.py; ``tidal`` is the SLO planner,
   pre-warming for the forecast one cold start ahead) within the pool's bounds, held on missing or
   partial metrics, woken from zero by demand at the pool's entry, held while pods are Pending
   (unschedulable), and ``scaleToZero`` after an idle window;
6. the fair-share grant (``Observation.grant_gpus``) as a cap, manual override included
   (tidal/core/grant.py);
7. placement over accelerator classes (tidal/core/placement.py): classes ranked by cost per goodput
   (``cheapest``/``pack``) or peak FLOP/s (``fastest``), each pool's replicas split over them by
   goodput, spilling past classes without free GPUs (CapacityLimited names them), moving replicas to
   a cheaper class only when the saving outlasts a cold start.

Pure and deterministic: no I/O, no clock. The state is consumed (predictors learn in place) and
the returned state is the one to pass next time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Mapping

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment, PoolSpec
from tidal.api.types import parse_duration_s, parse_quantity_bytes
from tidal.controllers.modeldeployment import ChildKey, pools_of
from tidal.core.state import CoreState, ForecastView
from tidal.policies.defaults import (
    COLD_START_QUANTILE,
    DTYPE_BYTES,
    FORECAST_QUANTILES,
    FORECAST_SERIES_POOL_ORDER,
    FORECAST_STEP_S,
    KV_SIGNAL_MIN_GAPS,
    KV_TTL_DECIMALS,
    WAKE_FROM_ZERO_REPLICAS,
)
from tidal.policies.interface import (
    AcceleratorProfile,
    Decision,
    Observation,
    PoolObservation,
    Reason,
    ReplicaStart,
)
from tidal.policies.kv_ttl import auto_ttl, deployment_price_per_s
from tidal.core.grant import cap_to_grant
from tidal.core.placement import (
    REASON_CLASS_FULL,
    REASON_MOVE,
    PoolPlacement,
    class_goodput,
    class_preference,
    free_nodes,
    place_pool,
    plan_move,
    planner_mix,
    replicas_fitting,
    take_replicas,
)
from tidal.core.policies import POLICY_TIDAL, PoolsDecision, decide_pools
from tidal.policies.guards import (
    REASON_HOLD_INVALID,
    REASON_HOLD_PARTIAL,
    REASON_KV_RESIDENCY_INVALID,
    kv_residency_problem,
)
from tidal.policies.utilization import REASON_HOLD_NO_METRICS, REASON_STABILIZED, REASON_WITHIN_TOLERANCE
from tidal.policies.planner import PoolPlan
from tidal.policies.capacity import Correction, replicas_needed
from tidal.predictors.coldstart import StartContext, StartPhases
from tidal.predictors.kv_residency import learn_residency
from tidal.predictors.pauses import SessionPausePredictor

REASON_MANUAL = "manual-override"
REASON_NO_ACCELERATOR = "no-accelerator-class"
REASON_ACCELERATOR_MISSING = "accelerator-missing"
REASON_MAX_REACHED = "max-replicas"
REASON_WAKE = "scale-from-zero"
REASON_IDLE_AT_ZERO = "idle-at-zero"
REASON_NO_DEMAND_SIGNAL = "hold-zero-no-demand-signal"
REASON_PENDING = "pods-pending"
REASON_SCALED_TO_ZERO = "scale-to-zero"
REASON_NO_ZERO_WITHOUT_SIGNAL = "scale-to-zero-no-entry-signal"


@dataclass(frozen=True)
class Override:
    """``spec.replicas`` in force: what was asked, what each pool got, and why they differ."""

    requested: int
    per_pool: Mapping[str, int]
    message: str


@dataclass(frozen=True)
class WorkloadDecision:
    """What one call decided, per pool and per (pool, accelerator class), with everything it used."""

    decision: Decision
    by_child: Mapping[ChildKey, int]
    capacity_limits: tuple[Reason, ...] = ()
    changes: tuple[tuple[ChildKey, int, int], ...] = field(default=())
    """(child, from, to) for each (pool, class) whose replicas change."""
    forecast: ForecastView | None = None
    cold_start_s: float | None = None
    """Predicted p90 cold start of a new replica on the most preferred class (``None``: no class)."""
    kv_ttl_s: float | None = None
    override: Override | None = None
    learned_starts: tuple[ReplicaStart, ...] = ()
    """Starts learnt by this call (the operator counts them in its /metrics)."""
    policy: str = "tidal"
    """``spec.autoscaling.policy`` that decided (``manual`` under a ``spec.replicas`` override)."""
    demand_gpus: int = 0
    """GPUs the decision asked for before the fair-share cap: the workload's demand a
    FairSharePolicy divides its tenant's grant by (status.demandGpus)."""
    rule_replicas: Mapping[str, int] = field(default_factory=dict)
    """Replicas per pool as the pool's rule sized it (after the grant cap, before placement): replicas
    of the pool's sizing class when the SLO planner sized it (tidal/core/placement.py)."""


def accelerator_profile(acc: AcceleratorClass) -> AcceleratorProfile:
    """The core's view of an AcceleratorClass (both shells build observations with this). Free GPUs
    come from ``status.free`` once the inventory saw a node of the class (``status.nodes > 0``); with
    no status, or no matching node (the Available condition says why), they are unknown and
    placement does not spill for them."""
    spec = acc.spec
    status = acc.status
    free = status.free if status is not None and status.nodes > 0 else None
    # per node only when the inventory wrote it for every node it counted (an older status has none)
    by_node = (tuple(status.free_by_node) if status is not None and free is not None
               and len(status.free_by_node) == status.nodes else None)
    return AcceleratorProfile(name=acc.metadata.name or "", hourly_cost=spec.hourly_cost,
                              peak_tflops=spec.peak_tflops, memory_bandwidth_gbps=spec.memory_bandwidth_gbps,
                              memory_bytes=float(parse_quantity_bytes(spec.memory)), free_gpus=free,
                              free_by_node=by_node)


def model_size_gb(md: ModelDeployment) -> float:
    model = md.spec.model
    if model.weights_size:
        return parse_quantity_bytes(model.weights_size) / 1e9
    return model.parameters_billions * DTYPE_BYTES[model.dtype]


def kv_ttl_seconds(md: ModelDeployment, pauses: SessionPausePredictor | None = None,
                   accelerator: AcceleratorProfile | None = None) -> float | None:
    """``off`` -> None; a duration -> it; ``auto`` -> the TTL that maximises re-prefill work saved
    minus KV memory held (tidal/policies/kv_ttl.py), from ``pauses`` (the session-pause predictor's
    learned distribution; its prior when None) on ``accelerator`` (the default break-even hold when
    None), bounded by ``kvCache.maxTTL``; 0 when no pin is worth its memory."""
    ttl = md.spec.kv_cache.ttl
    if ttl == "off":
        return None
    if ttl != "auto":
        return parse_duration_s(ttl)
    max_ttl_s = parse_duration_s(md.spec.kv_cache.max_ttl)
    if pauses is None and accelerator is None:
        return _prior_auto_ttl_s(max_ttl_s)
    gpus = next(iter(pools_of(md).values())).gpus_per_replica
    price = deployment_price_per_s(md.spec.model, accelerator, gpus)
    return round(auto_ttl(max_ttl_s, price, pauses).ttl_s, KV_TTL_DECIMALS)


@lru_cache(maxsize=16)
def _prior_auto_ttl_s(max_ttl_s: float) -> float:
    """``auto`` before any pause is learnt and without an accelerator: a constant per maxTTL."""
    return round(auto_ttl(max_ttl_s, deployment_price_per_s()).ttl_s, KV_TTL_DECIMALS)


def learn_kv_residency(observation: Observation, state: CoreState) -> list[Reason]:
    """Feed every pool's KV-block residency increments (``PoolObservation.kv_residency``) to the
    state's session-pause predictor; an unusable increment (tidal/policies/guards.py
    ``kv_residency_problem``) is learnt not at all and named in the returned reasons.

    Each tick's increments cover the metrics window; ticks closer together than the window see
    overlapping windows, so each is counted with weight ``interval / window`` (at most 1): over a
    run every reported block counts about once, whatever the tick rate."""
    reasons = []
    for pool, obs in observation.pools.items():
        residency = obs.kv_residency
        if residency is None:
            continue
        problem = kv_residency_problem(residency)
        if problem is not None:
            reasons.append(Reason(REASON_KV_RESIDENCY_INVALID, f"KV-block residency histograms not learnt ({problem}); "
                                  "the KV TTL stays as it was", pool))
            continue
        interval = observation.interval_s
        weight = min(1.0, interval / residency.window_s) if interval is not None and interval > 0 else 1.0
        if state.kv_pauses is None:
            state.kv_pauses = SessionPausePredictor()
        ended, censored = learn_residency(state.kv_pauses, observation.now_s, residency, weight)
        if ended or censored:
            state.kv_pauses_version += 1
    return reasons


def kv_ttl_auto(md: ModelDeployment, observation: Observation, state: CoreState,
                accelerator: AcceleratorProfile | None) -> tuple[float | None, list[Reason]]:
    """The KV TTL to publish this tick, and reasons about its inputs: ``spec.kvCache.ttl`` when it is
    a duration or ``off``; for ``auto``, after learning this tick's residency increments
    (:func:`learn_kv_residency`), the TTL from the learnt pauses once they hold
    :data:`KV_SIGNAL_MIN_GAPS` reuse gaps, priced on ``accelerator``, and the prior's until then.
    The one function both shells (and the KV-TTL bench's signal replay) call."""
    if md.spec.kv_cache.ttl != "auto":
        return kv_ttl_seconds(md), []
    reasons = learn_kv_residency(observation, state)
    pauses = state.kv_pauses
    if pauses is None or pauses.ended_weight() < KV_SIGNAL_MIN_GAPS:
        return kv_ttl_seconds(md), reasons
    acc = accelerator
    acc_key = None if acc is None else (acc.name, acc.peak_tflops, acc.memory_bandwidth_gbps, acc.memory_bytes)
    key = (state.kv_pauses_version, md.spec.kv_cache.max_ttl, acc_key)
    if state.kv_ttl_cache is None or state.kv_ttl_cache[0] != key:
        # The TTL changes only when the predictor learns (a choice costs ~400 CDF evaluations).
        state.kv_ttl_cache = (key, kv_ttl_seconds(md, pauses, acc))
    return state.kv_ttl_cache[1], reasons


def missing_classes_limit(missing: list[str]) -> Reason:
    return Reason(REASON_ACCELERATOR_MISSING,
                  "AcceleratorClass " + ", ".join(repr(m) for m in missing)
                  + " named in spec.placement.acceleratorClasses does not exist (kubectl get acceleratorclasses)")


def split_override(requested: int, pools: Mapping[str, PoolSpec]) -> Override:
    """``spec.replicas`` over the pools: in proportion to their ``maxReplicas`` (largest remainder,
    ties to the first pool), then each pool clamped to ``[minReplicas, maxReplicas]``."""
    weights = {p: b.max_replicas for p, b in pools.items()}
    total_w = sum(weights.values())
    raw = {p: requested * w / total_w for p, w in weights.items()}
    share = {p: math.floor(v) for p, v in raw.items()}
    left = requested - sum(share.values())
    for p in sorted(raw, key=lambda q: -(raw[q] - share[q]))[:left]:
        share[p] += 1
    out, notes = {}, []
    for p, b in pools.items():
        out[p] = min(max(share[p], b.min_replicas), b.max_replicas)
        if out[p] != share[p]:
            notes.append(f"pool {p} clamped to {out[p]} (bounds [{b.min_replicas}, {b.max_replicas}])")
    split = ", ".join(f"{p} {n}" for p, n in out.items())
    message = (f"spec.replicas={requested} holds {sum(out.values())} replica(s) ({split}"
               + (f"; {'; '.join(notes)}" if notes else "") + ")")
    return Override(requested, out, message)


def _incumbent(observation: Observation) -> str | None:
    """The class most of the workload's replicas run on (``None``: none run, or a tie)."""
    held: dict[str, int] = {}
    for by in observation.placement.values():
        for c, n in by.items():
            held[c] = held.get(c, 0) + max(0, n)
    ranked = sorted(held.items(), key=lambda item: -item[1])
    if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]


def _learn_starts(md: ModelDeployment, starts: tuple[ReplicaStart, ...], state: CoreState) -> tuple[ReplicaStart, ...]:
    seen = set(state.counted_starts)
    learned = []
    for s in starts:
        if s.uid in seen:
            continue
        ctx = StartContext(s.accelerator, s.node, image_cached=s.image_cached, weights_cached=s.weights_cached,
                           model_size_gb=model_size_gb(md))
        state.cold_start.observe(ctx, StartPhases(s.scheduling_s, s.image_pull_s, s.weights_load_s, s.engine_init_s))
        state.count_start(s.uid)
        seen.add(s.uid)
        learned.append(s)
    if learned:
        state.cold_start_version += 1
    return tuple(learned)


def _cold_start_s(md: ModelDeployment, state: CoreState, preference: list[str]) -> float | None:
    if not preference:
        return None
    ctx = StartContext(preference[0], None, image_cached=False, weights_cached=False, model_size_gb=model_size_gb(md))
    key = (ctx, state.cold_start_version)
    if state.cold_start_cache is None or state.cold_start_cache[0] != key:
        # Predictions change only when the predictor learns.
        total = state.cold_start.predict(ctx, (COLD_START_QUANTILE,)).total_s[0]
        state.cold_start_cache = (key, float(total))
    return state.cold_start_cache[1]


def _forecast(md: ModelDeployment, state: CoreState, observation: Observation,
              cold_start_s: float | None) -> ForecastView | None:
    """Feed this tick's entry request rate to the forecaster; forecast again only when a grid cell
    was completed (ticks within one cell see the same history, so the same forecast)."""
    step = max(observation.interval_s or 0.0, FORECAST_STEP_S)
    forecaster = state.ensure_forecaster(md.spec.autoscaling.predictor, step)
    if forecaster is None:
        return None
    pool = next(p for p in FORECAST_SERIES_POOL_ORDER if p in pools_of(md))
    obs = observation.pools.get(pool)
    forecaster.observe(observation.now_s, obs.arrival_rate_rps if obs is not None else None)
    horizon = max(step, cold_start_s or 0.0)
    grid = getattr(forecaster, "grid", None)
    key = (getattr(grid, "last_cell", None), getattr(grid, "n_valid", None), horizon)
    if state.forecast_cache is not None and state.forecast_cache[0] == key and key[0] is not None:
        return state.forecast_cache[1]
    try:
        fc = forecaster.forecast((horizon,), FORECAST_QUANTILES)
    except (ValueError, RuntimeError):
        return None  # too little history yet
    lo, mid, hi = (float(fc.at(horizon, q)) for q in FORECAST_QUANTILES)
    view = ForecastView(mid, lo, hi, horizon)
    state.forecast_cache = (key, view)
    return view


def _at_zero(pool: str, bounds: PoolSpec, obs: PoolObservation, want: int, reason: Reason) -> tuple[int, Reason]:
    """A pool with no replicas (``minReplicas: 0``) has no engine to read: only demand at its entry
    can wake it. Demand seen -> ``max(minReplicas, 1)``; no demand -> stay at zero; no entry signal
    at all -> hold at zero and say so (the signal is what is missing, not the load)."""
    waiting = obs.waiting_requests or 0.0
    entry = obs.entry_request_rate_rps
    if (entry is not None and entry > 0) or waiting > 0:
        n = min(max(bounds.min_replicas, WAKE_FROM_ZERO_REPLICAS), bounds.max_replicas)
        seen = f"{entry:.3g} req/s at the entry" if entry else f"{waiting:.0f} request(s) waiting"
        return n, Reason(REASON_WAKE, f"{seen} while at zero replicas -> {n}", pool)
    if entry is None:
        return want, Reason(REASON_NO_DEMAND_SIGNAL, "no replicas and no request-rate signal at the pool's "
                            "entry; holding at zero (kubectl scale, or minReplicas >= 1, starts it)", pool)
    return want, Reason(REASON_IDLE_AT_ZERO, "no requests at the entry; staying at zero replicas", pool)


def _with_entry_demand(obs: PoolObservation, entry: PoolObservation) -> PoolObservation:
    """A pool at zero behind the entry pool (P/D decode) is needed by every request that reaches the
    entry, so it wakes on the entry's demand too, together with the entry pool (one cold start, not
    two in a row; the activator holds requests until the whole path is Ready)."""
    if obs is entry:
        return obs
    rates = [r for r in (obs.entry_request_rate_rps, entry.entry_request_rate_rps) if r is not None]
    return replace(obs, entry_request_rate_rps=max(rates) if rates else None,
                   waiting_requests=(obs.waiting_requests or 0.0) + (entry.waiting_requests or 0.0))


def _policy_observation(md: ModelDeployment, pools: Mapping[str, PoolSpec], observation: Observation,
                        forecast: ForecastView | None) -> Observation:
    """What the pool policy sees: every pool (absent ones as empty), and the forecast to pre-warm for:
    its median, not its upper band. With the little history a new workload has, the band is wide
    (1.5-2x a flat rate on the bench's Mooncake replay, sized to 16 replicas where 10 served), and
    the planner's own targets already carry the SLO percentile."""
    full = {p: observation.pools.get(p, PoolObservation(ready_replicas=0)) for p in pools}
    ahead = forecast.rps if forecast is not None and md.spec.autoscaling.prewarm else None
    return replace(observation, pools=full, forecast_rps=ahead)


def _pending_guard(pool: str, obs: PoolObservation, want: int, reason: Reason) -> tuple[int, Reason, Reason | None]:
    """Pods the scheduler could not place (no GPU free) are capacity on its way already; more would
    only queue behind them. Hold at the current count until they are scheduled (CapacityLimited)."""
    if obs.pending_replicas <= 0 or want <= obs.current_replicas:
        return want, reason, None
    held = obs.current_replicas
    message = (f"{reason.message}; held at {held}: {obs.pending_replicas} pod(s) Pending (not scheduled), "
               "adding more would not start sooner")
    return held, Reason(REASON_PENDING, message, pool), Reason(REASON_PENDING, f"pool {pool}: wants {want}, "
                                                               f"{obs.pending_replicas} pod(s) Pending", pool)


def _class_goodputs(md: ModelDeployment, observation: Observation, state: CoreState,
                    preference: list[str]) -> dict[str, dict[str, float]]:
    """Per class, per pool: goodput per replica at the planner's mix and learnt corrections."""
    mix = planner_mix(state)
    corrections = {p: Correction(*v) for p, v in (state.planner.get("correction") or {}).items()}
    return {c: class_goodput(md, observation.accelerators[c], mix, corrections) for c in preference}


def _in_preferred_replicas(md: ModelDeployment, seen: Observation, state: CoreState,
                           preference: list[str]) -> tuple[Observation, frozenset[str]]:
    """The SLO planner sizes in replicas of the most preferred class; a pool whose replicas run on
    other classes too is shown to it with its replica counts in those units (each class's replicas
    weighted by its goodput relative to the preferred class's, rounded, never below 1 while there are
    any). Its rate per replica, correction, scale-down window and holds then all speak one unit.
    Returns the observation and the pools shown in those units."""
    placement = {p: {c: n for c, n in seen.placement.get(p, {}).items() if n > 0 and c in preference}
                 for p in seen.pools}
    if len(preference) < 2 or not any(set(by) - {preference[0]} for by in placement.values()):
        return seen, frozenset()
    goodputs = _class_goodputs(md, seen, state, preference)
    pools = dict(seen.pools)
    for pool, obs in seen.pools.items():
        by = placement.get(pool, {})
        base = goodputs[preference[0]].get(pool, 0.0)
        if not set(by) - {preference[0]} or base <= 0 or any(goodputs[c].get(pool, 0.0) <= 0 for c in by):
            continue
        factor = sum(n * goodputs[c][pool] for c, n in by.items()) / (base * sum(by.values()))

        def scaled(n: int) -> int:
            return 0 if n <= 0 else max(1, round(n * factor))

        ready = scaled(obs.ready_replicas)
        pools[pool] = replace(obs, ready_replicas=ready, starting_replicas=scaled(obs.starting_replicas),
                              pending_replicas=scaled(obs.pending_replicas),
                              draining_replicas=scaled(obs.draining_replicas),
                              unobserved_replicas=min(scaled(obs.unobserved_replicas), ready))
    shown = frozenset(p for p in pools if pools[p] is not seen.pools[p])
    return replace(seen, pools=pools), shown


HOLD_REASONS = frozenset({REASON_HOLD_NO_METRICS, REASON_HOLD_PARTIAL, REASON_HOLD_INVALID, REASON_STABILIZED,
                          REASON_PENDING, REASON_WITHIN_TOLERANCE})
"""Reasons a rule keeps a pool at its current size (missing, partial or invalid metrics, the scale-down
window, Pending pods, the HPA tolerance): a pool counted in rounded preferred-class units is then
kept exactly as it runs."""


@dataclass(frozen=True)
class Sizing:
    """How ``tidal``'s counts read: ``plans``, the SLO planner's when it sized the pools (placement fills
    their goodput); ``converted``, pools counted in replicas of the most preferred class (their
    replicas run on other classes too); ``held``, converted pools a rule kept at their current size
    (:data:`HOLD_REASONS`; placed as they run: the units are rounded)."""

    plans: Mapping[str, PoolPlan] | None = None
    converted: frozenset[str] = frozenset()
    held: frozenset[str] = frozenset()


def _autoscale(md: ModelDeployment, pools: Mapping[str, PoolSpec], observation: Observation, state: CoreState,
               preference: list[str], forecast: ForecastView | None,
               ) -> tuple[dict[str, int], list[Reason], list[Reason], "Sizing"]:
    """Replicas per pool from the spec's policy (tidal/core/policies.py), the SLO planner's in
    replicas of the most preferred class (:func:`_in_preferred_replicas`), then, per pool: wake from
    zero on demand, the pending-pod guard, and a CapacityLimited reason past ``maxReplicas``. The
    last value says in which units the counts are (:class:`Sizing`)."""
    delay_s = parse_duration_s(md.spec.autoscaling.scale_down_delay)
    accelerator = observation.accelerators.get(preference[0]) if preference else None
    seen = _policy_observation(md, pools, observation, forecast)
    converted: frozenset[str] = frozenset()
    if md.spec.autoscaling.policy == POLICY_TIDAL:  # the planner and its fallback share one window
        seen, converted = _in_preferred_replicas(md, seen, state, preference)
    out: PoolsDecision = decide_pools(md, pools, seen, state, accelerator, delay_s)
    general = [r for r in out.reasons if r.pool is None]
    desired, reasons, limits = {}, [], []
    held: set[str] = set()
    for pool, bounds in pools.items():
        obs = seen.pools[pool]
        want = out.desired[pool]
        mine = [r for r in out.reasons if r.pool == pool] or [Reason(md.spec.autoscaling.policy,
                                                                     f"{want} replica(s)", pool)]
        reason, extra = mine[0], mine[1:]
        if obs.current_replicas == 0 and want == 0:
            want, reason = _at_zero(pool, bounds, _with_entry_demand(obs, seen.pools[next(iter(pools))]), want, reason)
        want, reason, pending = _pending_guard(pool, obs, want, reason)
        if pending is not None:
            limits.append(pending)
        if pool in out.over_max and want == bounds.max_replicas:
            limits.append(Reason(REASON_MAX_REACHED, f"pool {pool}: wants more than maxReplicas={bounds.max_replicas}",
                                 pool))
        desired[pool] = want
        reasons += [reason, *extra]
        if pool in converted and want == obs.current_replicas and reason.code in HOLD_REASONS:
            held.add(pool)
    plans = out.plans if out.sized_by_goodput else None
    return desired, reasons + general, limits, Sizing(plans, converted, frozenset(held))


PLACEMENT_WINDOW_KEY = "placementReplicas"
"""``CoreState.planner[...]``: per pool and class, the (time, replicas) placement recommended within
the scale-down window."""


def _stabilized_split(md: ModelDeployment, state: CoreState, pool: str, now_s: float, placed: PoolPlacement,
                      current: Mapping[str, int], hi: int) -> PoolPlacement:
    """``placed`` with no class below the most it was recommended within ``scaleDownDelay`` (nor above
    what runs there): replicas leave a class as the planner's count leaves the pool, after the window.
    The split moves with every tick's load and goodput estimate; the last fraction of a replica, served
    by a smaller class (:func:`place_pool`), would otherwise start and stop with them, paying a cold
    start each time. Within ``maxReplicas``; never adds a replica that does not run."""
    delay_s = parse_duration_s(md.spec.autoscaling.scale_down_delay)
    windows = state.planner.setdefault(PLACEMENT_WINDOW_KEY, {}).setdefault(pool, {})
    out = dict(placed.replicas)
    for c, n in placed.replicas.items():
        kept = [[t, k] for t, k in windows.get(c, []) if now_s - delay_s < t <= now_s] + [[now_s, n]]
        windows[c] = kept
        held = min(max(0, int(current.get(c, 0))), max(k for _, k in kept), n + max(0, hi - sum(out.values())))
        out[c] = max(n, held)
    for c in [c for c in windows if c not in placed.replicas]:
        del windows[c]
    return replace(placed, replicas=out) if out != placed.replicas else placed


def _place(md: ModelDeployment, observation: Observation, state: CoreState, preference: list[str],
           desired: dict[str, int], sizing: Sizing, capped: bool,
           cold_start_s: float | None) -> tuple[dict[str, PoolPlacement], list[Reason], list[Reason]]:
    """Each pool's replicas over the classes (tidal/core/placement.py): by goodput when the planner
    sized the pool (its count is replicas of the most preferred class, at its plan's goodput; where
    the count is the planner's own ``ceil(load / goodput)``, the load itself is filled, not the
    count's rounding up to whole replicas), else by count; free GPUs are shared by the pools in spec
    order. Returns the placements, reasons (moves) and limits (full classes)."""
    pools = pools_of(md)
    accs = observation.accelerators
    goodputs: dict[str, dict[str, float]] = {}
    plans = sizing.plans
    if (plans is not None or sizing.converted) and len(preference) > 1:
        goodputs = _class_goodputs(md, observation, state, preference)
    free = {c: free_nodes(accs[c]) for c in preference}
    placements, reasons, limits = {}, [], []
    for pool, want in desired.items():
        gpus = pools[pool].gpus_per_replica
        current = observation.placement.get(pool, {})
        plan = (plans or {}).get(pool)
        rates = {c: 1.0 for c in preference}  # by count
        capacity = float(want)
        order = list(preference)
        by_goodput = bool(goodputs) and goodputs[preference[0]][pool] > 0 and (
            (plan is not None and plan.goodput_rps > 0) or pool in sizing.converted)
        if by_goodput:
            # The preferred class at the planner's goodput (else its profile's); the others in
            # proportion to their profiles. A class where the learnt correction leaves no goodput
            # gets no new replica; what runs there counts for nothing and leaves as surplus.
            ref = goodputs[preference[0]][pool]
            base = plan.goodput_rps if plan is not None and plan.goodput_rps > 0 else ref
            rates = {c: base * goodputs[c][pool] / ref for c in preference}
            order = [c for c in preference if rates[c] > 0] + [c for c in preference if rates[c] <= 0]
            capacity = want * base
            if (plan is not None and not capped
                    and want == plan.replicas == replicas_needed(plan.load_rps, plan.goodput_rps)):
                capacity = min(capacity, plan.load_rps)
        cost = {c: accs[c].hourly_cost * gpus for c in preference}
        room = {c: None if f is None else replicas_fitting(f, gpus) for c, f in free.items()}
        obs = observation.pools.get(pool)
        moving = obs is not None and (obs.starting_replicas + obs.pending_replicas) > 0
        hi = want if capped else pools[pool].max_replicas
        lo = min(pools[pool].min_replicas, want)  # scale-to-zero and the grant go below minReplicas
        if pool in sizing.held and not capped:
            placed = PoolPlacement({c: max(0, int(current.get(c, 0))) for c in preference})
        else:
            placed = place_pool(capacity, current, order, rates, room, (lo, hi), moving,
                                cost if by_goodput else None)
        if by_goodput and plan is not None and not moving and pool not in sizing.held:
            # a move starts replicas only in the room the split left (it may have filled it)
            left = {c: None if r is None else r - max(0, placed.replicas.get(c, 0) - current.get(c, 0))
                    for c, r in room.items()}
            placed = plan_move(placed, capacity, order, rates, left, cost, cold_start_s, hi)
        if by_goodput and not capped and want > 0 and plan is not None:  # scale-to-zero and grants are not held
            placed = _stabilized_split(md, state, pool, observation.now_s, placed, current, hi)
        for c, f in free.items():
            if f is not None:
                free[c] = take_replicas(f, gpus, max(0, placed.replicas.get(c, 0) - current.get(c, 0)))
        for c, got, wanted in placed.full:
            spread = accs[c].free_by_node
            where = (f", at most {max(spread, default=0)} on one node" if spread and gpus > 1 else "")
            limits.append(Reason(REASON_CLASS_FULL, f"AcceleratorClass {c!r} ran out: {accs[c].free_gpus} GPU(s) "
                                 f"free (status.free){where}, pool {pool} wanted {wanted} more replica(s) of "
                                 f"{gpus} GPU(s) there and got {got}; the rest went to the next class with room, "
                                 "if any (what none has room for is not started)", pool))
        if placed.move is not None:
            src, dst, old, new = placed.move
            reasons.append(Reason(REASON_MOVE, f"pool {pool}: starting {new} replica(s) on {dst!r} to replace "
                                  f"{old} on {src!r}: the saving over the move horizon exceeds a "
                                  f"{cold_start_s:.0f}s cold start's cost; {src!r} drains once they started",
                                  pool))
        placements[pool] = placed
    return placements, reasons, limits


def _scale_to_zero(md: ModelDeployment, observation: Observation, state: CoreState, desired: dict[str, int],
                   reasons: list[Reason]) -> list[Reason]:
    """``spec.autoscaling.scaleToZero``: every pool to zero once the workload has had no requests (none
    arriving at the entry pool, none in flight anywhere) for ``scaleToZeroAfter``, even above
    ``minReplicas``; it stays there ("parked") until demand reaches the entry, then the rule (and so
    ``minReplicas``) applies again. Only when the shell reads the entry's request rate: a pool at zero
    can be woken by nothing else, so without that signal the workload is never parked, and the
    reasons say why. Changes ``desired`` in place; returns the reasons to report."""
    az = md.spec.autoscaling
    if not az.scale_to_zero:
        state.idle_since_s, state.parked = None, False
        return reasons
    pools = list(desired)
    entry = observation.pools.get(pools[0], PoolObservation(ready_replicas=0)).entry_request_rate_rps
    if entry is None:
        state.idle_since_s, state.parked = None, False
        return [*reasons, Reason(REASON_NO_ZERO_WITHOUT_SIGNAL, "spec.autoscaling.scaleToZero is set, but nothing "
                                 "reads the request rate at the workload's entry, which is what would wake it; "
                                 "not scaling to zero")]
    inflight = [(o.running_requests or 0.0) + (o.waiting_requests or 0.0) for o in observation.pools.values()]
    # Unknown in-flight on a pool with replicas is never idleness (missing metrics never scale down).
    unknown = any(o.current_replicas > 0 and (o.running_requests is None or o.waiting_requests is None)
                  for o in observation.pools.values())
    if entry > 0 or unknown or any(n > 0 for n in inflight):
        state.idle_since_s, state.parked = None, False
        return reasons
    now = observation.now_s
    state.idle_since_s = now if state.idle_since_s is None else state.idle_since_s
    after_s = parse_duration_s(az.scale_to_zero_after)
    if not state.parked and now - state.idle_since_s < after_s:
        return reasons
    state.parked = True
    for pool in pools:
        desired[pool] = 0
    return [Reason(REASON_SCALED_TO_ZERO, f"no requests for {now - state.idle_since_s:g}s (scaleToZeroAfter "
                   f"{az.scale_to_zero_after}); at zero until requests reach the entry", pool) for pool in pools]


def decide_workload(md: ModelDeployment, observation: Observation,
                    state: CoreState | None) -> tuple[WorkloadDecision, CoreState]:
    """Desired replicas per pool and per accelerator class, with the forecast, cold start and KV TTL
    behind them. ``state`` is what the previous call returned (``None`` at first)."""
    state = state if state is not None else CoreState()
    pools = pools_of(md)
    allowed = md.spec.placement.accelerator_classes
    classes = class_preference(md, observation.accelerators, planner_mix(state), _incumbent(observation))
    ordered, preference, unfit = classes.ordered, classes.preference, classes.unfit
    none_fit = bool(ordered) and len(unfit) == len(ordered)
    learned = _learn_starts(md, observation.starts, state)
    cold = _cold_start_s(md, state, preference)
    forecast = _forecast(md, state, observation, cold)
    kv_ttl, kv_reasons = kv_ttl_auto(md, observation, state,
                                     observation.accelerators.get(preference[0]) if preference else None)

    desired: dict[str, int] = {}
    reasons: list[Reason] = []
    limits: list[Reason] = []
    missing = [n for n in allowed if n not in observation.accelerators]
    if missing:
        limits.append(missing_classes_limit(missing))
    if none_fit:
        limits.extend(unfit)  # no allowed class can meet the SLO: CapacityLimited
    override = split_override(md.spec.replicas, pools) if md.spec.replicas is not None else None
    sizing = Sizing()
    if override is not None:
        for pool in pools:
            desired[pool] = override.per_pool[pool]
            reasons.append(Reason(REASON_MANUAL, f"{override.message}; autoscaling paused", pool))
        state.recommendations = {}  # the window restarts when autoscaling resumes
        state.idle_since_s, state.parked = None, False
    else:
        desired, reasons, more, sizing = _autoscale(md, pools, observation, state, preference, forecast)
        limits.extend(more)
        reasons = _scale_to_zero(md, observation, state, desired, reasons)
    gpus = {p: b.gpus_per_replica for p, b in pools.items()}
    demand_gpus = sum(n * gpus[p] for p, n in desired.items())
    desired, capped = cap_to_grant(desired, gpus, {p: b.min_replicas for p, b in pools.items()},
                                   observation.grant_gpus)
    if capped is not None:
        reasons.append(capped)
        limits.append(capped)
    if not none_fit:
        reasons.extend(unfit)  # classes left out while others serve: said, not a capacity limit
    reasons.extend(kv_reasons)

    by_child: dict[ChildKey, int] = {}
    changes: list[tuple[ChildKey, int, int]] = []
    if not preference:
        names = ", ".join(allowed)
        limits.append(Reason(REASON_NO_ACCELERATOR,
                             f"none of the AcceleratorClasses in spec.placement.acceleratorClasses exists ({names})"))
    rule_replicas = dict(desired)
    placements, moved, full = _place(md, observation, state, preference, desired, sizing,
                                     capped is not None, cold)
    reasons.extend(moved)
    limits.extend(full)
    for pool in desired:
        current = observation.placement.get(pool, {})
        desired[pool] = sum(placements[pool].replicas.values()) if preference else desired[pool]
        for acc, n in placements[pool].replicas.items():
            key = ChildKey(pool, acc)
            by_child[key] = n
            before = current.get(acc)
            if before is not None and before != n:
                changes.append((key, before, n))
    decision = Decision(desired_replicas=desired, reasons=tuple(reasons),
                        forecast_rps=forecast.rps if forecast is not None else None)
    policy = "manual" if override is not None else md.spec.autoscaling.policy
    return WorkloadDecision(decision, by_child, tuple(limits), tuple(changes), forecast, cold, kv_ttl, override,
                            learned, policy, demand_gpus, rule_replicas), state
