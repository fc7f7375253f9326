"""The SLO planner: replicas per pool from goodput under TTFT/TPOT targets, corrected online.

Each tick, for each pool:

1. the request mix (mean prompt and output tokens) is the entry pool's (unified or prefill) prompt
   token rate and every pool's output token rate, divided by the entry's completed requests per
   second; with no traffic the last mix is kept (state), else :data:`DEFAULT_MIX`;
2. the pool's correction factors (tidal/policies/capacity.py) learn from its observed TTFT/TPOT at
   its observed arrival rate per Ready replica -- only when every Ready replica reported
   (``unobserved_replicas == 0``) and requests arrived. A prefill pool without a TTFT of its own
   learns from the decode pool's (where the first token is emitted);
3. goodput per replica from the profile (tidal/policies/profile.py), the mix, the SLO and the
   correction; the load is the higher of the entry's arrival rate
   (``PoolObservation.arrival_rate_rps``: completions plus the change in flight) and its peak
   completion rate over one scrape interval within the metrics window (``peak_request_rate_rps``:
   a percentile SLO is set by the bursts the mean hides), plus the pool's waiting requests drained over
   :data:`BACKLOG_DRAIN_S`; replicas ``ceil(load / goodput)`` within the pool's bounds
   (``pool_bounds``, else ``min_replicas``..``max_replicas``);
4. scale-down is stabilised like the HPA's (the highest recommendation of the last
   ``scale_down_stabilization_s`` seconds), scale-up is immediate;
5. pre-warm: when the core's forecast one cold start ahead (``Observation.forecast_rps``) exceeds
   the observed rate, the pool gets what the forecast needs if that is more. Only step 4's
   recommendation enters the window, so pre-warm is recomputed every tick and cancelled as soon as
   the forecast falls, instead of being held for the whole window.

Missing request-rate metrics hold every pool at its current size. :func:`make_slo_planner`
wraps the planner in :class:`~tidal.policies.guards.ObservationGuard`, so partially observed
pools are never scaled down and negative or non-finite rates count as missing.

``spec.autoscaling.policy: tidal`` runs this planner in ``decide_workload`` (tidal/core), which
supplies the forecast; ``tidal bench`` runs it both through the core (``tidal``) and bare
(``tidal-planner``, without the forecast).

The state is a JSON-friendly dict: ``{"mix": [prompt, output], "correction": {pool: [prefill,
decode]}, "recommendations": {pool: [[t, replicas], ...]}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from tidal.api.modeldeployment import ModelSpec
from tidal.policies.capacity import (
    CORRECTION_WEIGHT,
    LIMIT_INFEASIBLE,
    Correction,
    RequestMix,
    SLOTargets,
    corrected,
    goodput,
    replicas_for_load,
    replicas_needed,
)
from tidal.policies.defaults import HPA_SCALE_DOWN_STABILIZATION_S
from tidal.policies.guards import ObservationGuard, usable_count
from tidal.policies.interface import (
    POOL_DECODE,
    POOL_PREFILL,
    POOL_UNIFIED,
    AcceleratorProfile,
    Autoscaler,
    Decision,
    Observation,
    PoolObservation,
    Reason,
)
from tidal.policies.profile import Efficiencies, ModelShape, PerformanceProfile, build_profile
from tidal.policies.utilization import stabilize_scale_down

PLANNER_NAME = "tidal-planner"
"""The name ``tidal bench`` lists this policy under."""
DEFAULT_MIX = RequestMix(prompt_tokens=231.0, output_tokens=195.0)
"""Mix assumed before any request was seen: ShareGPT's mean prompt and output lengths in Llama-3
tokens (docs/calibration.md, Lambda's ShareGPT rows)."""
BACKLOG_DRAIN_S = 60.0
"""Waiting requests count as extra load to be served within this time: the metrics window over which
the request rate itself is averaged (tidal.sim.runner DEFAULT_METRICS_WINDOW_S, the usual
Prometheus ``rate()`` range)."""

REASON_GOODPUT = "slo-goodput"
REASON_PREWARM = "prewarm"
REASON_INFEASIBLE = "slo-infeasible"
REASON_HOLD_NO_METRICS = "hold-no-metrics"
REASON_BOUNDS = "bounded"

_ENTRY_POOLS = (POOL_UNIFIED, POOL_PREFILL)


def _observed_ttft_s(role: str, obs: PoolObservation, pools: Mapping[str, PoolObservation]) -> float | None:
    """A pool's TTFT; for a prefill pool that reports none, the decode pool's. The first token
    reaches the client from the decode engine after the KV transfer, so that is where TTFT is
    measured (and the prefill queue is most of it)."""
    if obs.ttft_s is not None or role != POOL_PREFILL:
        return obs.ttft_s
    decode = pools.get(POOL_DECODE)
    return decode.ttft_s if decode is not None else None


@dataclass(frozen=True)
class PoolPlan:
    """What the planner computed for one pool (``Decision.details["plan"][pool]``)."""

    load_rps: float
    goodput_rps: float
    limit: str
    prefill_factor: float
    decode_factor: float
    replicas: int


@dataclass(frozen=True)
class SLOPlanner:
    """Sizes each pool on goodput per replica under ``slo`` (see the module docstring).

    ``profiles`` maps each pool (``unified``, or ``prefill`` and ``decode``) to its replicas'
    profile; a pool without one uses the ``unified`` or first profile.
    """

    profiles: Mapping[str, PerformanceProfile]
    slo: SLOTargets
    min_replicas: int = 1
    max_replicas: int = 16
    scale_down_stabilization_s: float = HPA_SCALE_DOWN_STABILIZATION_S
    backlog_drain_s: float = BACKLOG_DRAIN_S
    correction_weight: float = CORRECTION_WEIGHT
    name: str = PLANNER_NAME
    default_mix: RequestMix = field(default=DEFAULT_MIX)
    pool_bounds: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Per-pool ``(min, max)`` replicas (a ModelDeployment's pools); pools not listed use
    ``min_replicas``..``max_replicas``."""

    def __post_init__(self) -> None:
        if not self.profiles:
            raise ValueError("SLOPlanner needs at least one profile")
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(f"need 0 <= min_replicas <= max_replicas, got [{self.min_replicas}, {self.max_replicas}]")
        if self.scale_down_stabilization_s < 0:
            raise ValueError("scale_down_stabilization_s must be >= 0")
        if not self.backlog_drain_s > 0:
            raise ValueError("backlog_drain_s must be > 0")
        if not 0 < self.correction_weight <= 1:
            raise ValueError("correction_weight must be in (0, 1]")
        for pool, (lo, hi) in self.pool_bounds.items():
            if not 0 <= lo <= hi:
                raise ValueError(f"pool_bounds[{pool!r}]: need 0 <= min <= max, got [{lo}, {hi}]")

    def _profile(self, pool: str) -> PerformanceProfile:
        return (self.profiles.get(pool) or self.profiles.get(POOL_UNIFIED)
                or next(iter(self.profiles.values())))

    def bounds(self, pool: str) -> tuple[int, int]:
        return self.pool_bounds.get(pool, (self.min_replicas, self.max_replicas))

    def _bounded(self, n: int, pool: str) -> int:
        lo, hi = self.bounds(pool)
        return min(max(n, lo), hi)

    def _mix(self, pools: Mapping[str, PoolObservation], entry: PoolObservation,
             state: Mapping[str, Any]) -> RequestMix:
        """Prompt tokens are counted where requests enter (a decode engine may count the prompts it
        received as KV too); output tokens over every pool (a prefill engine emits the first token).
        Both are divided by the entry's *completed* requests, not its arrivals: engines count tokens
        as they compute them, so while a backlog builds, tokens per arrival under-states the prompt
        (and the prefill work) of what is queued; tokens per completion does not."""
        prompt = entry.prompt_tokens_rps
        rate = entry.request_rate_rps if usable_count(entry.request_rate_rps) else 0.0
        assert rate is not None
        output = [p.output_tokens_rps for p in pools.values() if usable_count(p.output_tokens_rps)]
        if rate > 0 and usable_count(prompt) and output and (prompt or sum(output)):
            return RequestMix(prompt / rate, sum(output) / rate)  # type: ignore[operator]
        if "mix" in state:
            return RequestMix(*state["mix"])
        return self.default_mix

    def _hold(self, observation: Observation, state: Mapping[str, Any], why: str) -> tuple[Decision, Any]:
        desired = {p: self._bounded(o.current_replicas, p) for p, o in observation.pools.items()}
        reasons = tuple(Reason(REASON_HOLD_NO_METRICS, f"{why}; holding at {n}", p) for p, n in desired.items())
        return Decision(desired_replicas=desired, reasons=reasons), dict(state)

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        st: dict[str, Any] = dict(state) if isinstance(state, dict) else {}
        pools = observation.pools
        entry_name = next((p for p in _ENTRY_POOLS if p in pools), next(iter(pools), None))
        if entry_name is None:
            return Decision(desired_replicas={}), st
        rate = pools[entry_name].arrival_rate_rps
        if not observation.metrics_available or not usable_count(rate):
            return self._hold(observation, st, "request rate unknown")
        assert rate is not None
        forecast = observation.forecast_rps if usable_count(observation.forecast_rps) else 0.0
        assert forecast is not None
        peak_rps = pools[entry_name].peak_request_rate_rps
        peak = peak_rps if usable_count(peak_rps) else rate
        assert peak is not None
        mix = self._mix(pools, pools[entry_name], st)
        q = self.slo.percentile
        factors: dict[str, list[float]] = {p: list(v) for p, v in st.get("correction", {}).items()}
        past: Mapping[str, list[list[float]]] = st.get("recommendations", {})
        now = observation.now_s
        horizon = now - self.scale_down_stabilization_s
        desired, reasons, plans, window = {}, [], {}, {}
        for pool, obs in pools.items():
            profile = self._profile(pool)
            role = pool if pool in (POOL_UNIFIED, POOL_PREFILL, POOL_DECODE) else POOL_UNIFIED
            corr = Correction(*factors.get(pool, (1.0, 1.0)))
            pool_rate = obs.arrival_rate_rps if usable_count(obs.arrival_rate_rps) else rate
            if obs.ready_replicas > 0 and obs.unobserved_replicas == 0 and pool_rate and pool_rate > 0:
                corr = corrected(role, profile, mix, pool_rate / obs.ready_replicas, corr, q,
                                 _observed_ttft_s(role, obs, pools), obs.tpot_s, self.correction_weight)
            factors[pool] = [corr.prefill, corr.decode]
            gp = goodput(role, profile, mix, self.slo, corr)
            waiting = obs.waiting_requests if usable_count(obs.waiting_requests) else 0.0
            backlog = waiting / self.backlog_drain_s  # type: ignore[operator]
            load = max(rate, peak) + backlog
            lo, hi = self.bounds(pool)
            raw = replicas_needed(load, gp.rate_rps)
            n = replicas_for_load(load, gp.rate_rps, lo, hi)
            code = REASON_INFEASIBLE if gp.limit == LIMIT_INFEASIBLE else REASON_GOODPUT
            message = (f"load {load:.3g} req/s" + (f" (peak {peak:.3g}, mean {rate:.3g})" if peak > rate else "")
                       + f" (mix {mix.prompt_tokens:.0f} in / {mix.output_tokens:.0f} out) / "
                       f"goodput {gp.rate_rps:.3g} req/s per replica (limited by {gp.limit}; correction "
                       f"prefill x{corr.prefill:.2f}, decode x{corr.decode:.2f}) -> {raw:g}")
            if code == REASON_INFEASIBLE:
                message += "; the SLO is not met even on an idle replica, sized on throughput"
            reason = Reason(code, message, pool)
            if n != raw:
                reason = Reason(REASON_BOUNDS, f"{message}; bounded to {n} [{lo}, {hi}]", pool)
            # Only what the observed load asks for is held through the scale-down window: pre-warm
            # for a forecast is recomputed every tick, so it is cancelled as soon as the forecast falls.
            n, reason, window[pool] = stabilize_scale_down(pool, n, reason, obs.current_replicas,
                                                           past.get(pool, ()), now, horizon,
                                                           self.scale_down_stabilization_s)
            if forecast > max(rate, peak):
                ahead = replicas_for_load(forecast + backlog, gp.rate_rps, lo, hi)
                if ahead > n:
                    n, load = ahead, forecast + backlog
                    reason = Reason(REASON_PREWARM, f"forecast {forecast:.3g} req/s one cold start ahead "
                                    f"(observed {rate:.3g}) / goodput {gp.rate_rps:.3g} req/s per replica -> "
                                    f"{ahead} (pre-warm; {message})", pool)
            desired[pool] = n
            reasons.append(reason)
            plans[pool] = PoolPlan(load, gp.rate_rps, gp.limit, corr.prefill, corr.decode, n)
        st.update(mix=[mix.prompt_tokens, mix.output_tokens], correction=factors, recommendations=window)
        return Decision(desired_replicas=desired, reasons=tuple(reasons), details={"plan": plans}), st


def make_slo_planner(min_replicas: int, max_replicas: int, *, model: ModelSpec | ModelShape,
                     accelerator: AcceleratorProfile, slo_ttft_s: float | None, slo_tpot_s: float | None,
                     percentile: float = 0.9, tp: int = 1, prefill_tp: int | None = None,
                     decode_tp: int | None = None, efficiencies: Efficiencies | None = None,
                     **params: Any) -> Autoscaler:
    """The ``tidal-planner`` policy for ``tidal bench``: an :class:`SLOPlanner` behind the
    :class:`~tidal.policies.guards.ObservationGuard`.

    ``model`` is a ModelDeployment's ``spec.model`` (or an explicit :class:`ModelShape`),
    ``accelerator`` the class's profile (tidal.core.modeldeployment.accelerator_profile), ``tp`` the
    GPUs per replica (``prefill_tp``/``decode_tp`` override it per pool), ``percentile`` a fraction
    (0.9). ``params`` are :class:`SLOPlanner` fields (``scale_down_stabilization_s``,
    ``backlog_drain_s``, ``correction_weight``, ``name``); an unknown one raises ``TypeError``.
    """
    profiles = {
        POOL_UNIFIED: build_profile(model, accelerator, tp, efficiencies),
        POOL_PREFILL: build_profile(model, accelerator, prefill_tp or tp, efficiencies),
        POOL_DECODE: build_profile(model, accelerator, decode_tp or tp, efficiencies),
    }
    slo = SLOTargets(slo_ttft_s, slo_tpot_s, percentile)
    return ObservationGuard(SLOPlanner(profiles, slo, min_replicas=min_replicas, max_replicas=max_replicas,
                                       **params))


PLANNER_FACTORIES: Mapping[str, Callable[..., Autoscaler]] = {PLANNER_NAME: make_slo_planner}
"""Name -> ``factory(min_replicas, max_replicas, **params)`` for ``tidal bench``, shaped like
``tidal.policies.baselines.catalog.PROFILED_BASELINE_FACTORIES``: the caller supplies ``model``,
``accelerator`` and the SLO (``slo_ttft_s``, ``slo_tpot_s``, ``percentile``; from a CR:
:func:`tidal.policies.capacity.slo_targets`)."""
