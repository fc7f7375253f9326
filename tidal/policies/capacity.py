"""Goodput per replica under TTFT/TPOT SLOs, replicas for a load, and online correction of the profile.

Goodput, as DistServe (Zhong et al., OSDI'24) defines it: the highest request rate one replica
serves while the SLO percentile of requests meets the latency targets. It is computed from a
:class:`~tidal.policies.profile.PerformanceProfile` and the request mix (mean prompt and output
tokens), by bisection on the rate over a latency model that is monotone in the rate:

- **unified** (prefill and decode share a replica, chunked prefill): a prompt token costs ``m``
  seconds of compute, so prompts take the share ``s = rate x prompt x m`` of the replica's time;
  decode iterations fill the rest. By Little's law the batch is ``rate x output x TPOT``, and the
  iteration time solves ``TPOT = step(batch) / (1 - s)`` (closed form: the step is piecewise linear
  in the batch). TTFT is the prompt's compute plus one iteration, plus a queueing wait;
- **prefill pool**: a prompt is served alone in ``prefill_s(prompt)``; utilisation ``rate x that``;
  TTFT is that time plus the queueing wait (sized from the prompt-token rate);
- **decode pool**: the largest batch whose step meets TPOT, that fits the KV cache at the mix's
  mean context and the engine's sequence limit; goodput ``batch / (output x TPOT)`` (Little).

The queueing wait at percentile ``q`` uses the M/M/1 waiting-time tail
``P(W > t) = rho exp(-(1 - rho) t / D)`` (Kleinrock, Queueing Systems vol. 1, §3.2), an
approximation that is exact for Poisson arrivals with exponential service and conservative for
the near-deterministic service times of one prompt length.

Online correction (:class:`Correction`): two time multipliers per pool, one on prefill times, one
on decode times. Each tick that a pool is fully observed under load, the multiplier that makes the
model reproduce the observed TTFT (resp. TPOT) at the observed per-replica rate is found by
bisection, clamped to :data:`CORRECTION_BOUNDS`, and blended into the running value in log space
with weight :data:`CORRECTION_WEIGHT`. A profile 40 % slow or fast converges geometrically
(tests/policies/test_capacity.py). The factors are plain floats: the state stays JSON-friendly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from tidal.api.modeldeployment import SLOSpec
from tidal.api.types import parse_duration_s
from tidal.policies.profile import PerformanceProfile

# --- defaults, with their meaning and source ---------------------------------------------------

MAX_NUM_SEQS = 256
"""Sequences one engine runs at once: vLLM's ``max_num_seqs`` default on every GPU below 70 GiB and
on A100s (vllm/engine/arg_utils.py; docs/calibration.md, "Engine and KV cache"). H100s get 1024;
256 is the conservative bound."""
KV_CACHE_HEADROOM = 0.9
"""Fraction of the KV cache the planner lets the mean load occupy: the rest absorbs the spread of
context lengths around the mean, so preemptions (vLLM recomputes the newest sequence) stay rare."""
SATURATION_UTILIZATION = 0.8
"""When no rate meets the SLO even on an idle replica (a prompt too long for the TTFT target), size on
throughput instead: the rate that keeps a replica 80 % busy, the usual M/M/1 knee."""
CORRECTION_BOUNDS = (0.25, 4.0)
"""The profile is trusted to within 4x either way: an observation implying more (a cold replica's
first requests, a backlog after an outage) is clamped rather than believed."""
CORRECTION_WEIGHT = 0.3
"""Weight of one tick's estimate in the running correction (log-space exponential smoothing): a
consistent 40 % error is 90 % corrected after 7 fully observed ticks (0.7^7 = 0.08)."""
BISECTION_STEPS = 24
"""Bisection steps for goodput and correction: 2^-24 of the bracket (6e-8 relative), far below what
the metrics resolve; each step is one latency-model evaluation, so this sets the decision's cost."""


@dataclass(frozen=True)
class RequestMix:
    """Mean prompt and output tokens per request."""

    prompt_tokens: float
    output_tokens: float

    def __post_init__(self) -> None:
        if not (self.prompt_tokens >= 0 and self.output_tokens >= 0
                and math.isfinite(self.prompt_tokens) and math.isfinite(self.output_tokens)):
            raise ValueError("RequestMix tokens must be finite and >= 0")

    @property
    def decode_context_tokens(self) -> float:
        """Mean context of a decoding sequence: its prompt plus half its output."""
        return self.prompt_tokens + self.output_tokens / 2.0


@dataclass(frozen=True)
class SLOTargets:
    """Latency targets at ``percentile`` (a fraction, 0.9 for p90). ``None``: no target."""

    ttft_s: float | None
    tpot_s: float | None
    percentile: float = 0.9

    def __post_init__(self) -> None:
        if self.ttft_s is None and self.tpot_s is None:
            raise ValueError("SLOTargets needs ttft_s or tpot_s")
        for name in ("ttft_s", "tpot_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"SLOTargets.{name} must be > 0, got {v!r}")
        if not 0 < self.percentile < 1:
            raise ValueError(f"SLOTargets.percentile is a fraction in (0, 1), got {self.percentile!r} "
                             "(spec.slo.percentile 90 is 0.9 here)")


def slo_targets(spec: SLOSpec) -> SLOTargets:
    """The targets of a ModelDeployment's ``spec.slo`` (its percentile 90 becomes the fraction 0.9)."""
    return SLOTargets(parse_duration_s(spec.ttft) if spec.ttft is not None else None,
                      parse_duration_s(spec.tpot) if spec.tpot is not None else None,
                      spec.percentile / 100.0)


@dataclass(frozen=True)
class Correction:
    """Multipliers on the profile's prefill and decode times (1.0: the profile is right)."""

    prefill: float = 1.0
    decode: float = 1.0


@dataclass(frozen=True)
class Latency:
    """Predicted TTFT and TPOT at the SLO percentile for one replica at one rate, and its batch."""

    ttft_s: float
    tpot_s: float
    batch: float
    kv_tokens: float


INFEASIBLE = Latency(math.inf, math.inf, math.inf, math.inf)

LIMIT_TTFT = "ttft"
LIMIT_TPOT = "tpot"
LIMIT_KV = "kv-cache"
LIMIT_SEQS = "max-num-seqs"
LIMIT_INFEASIBLE = "slo-infeasible"


@dataclass(frozen=True)
class Goodput:
    """Highest request rate one replica serves within the SLO, and what limits it."""

    rate_rps: float
    limit: str


def wait_quantile_s(utilization: float, service_s: float, q: float) -> float:
    """Queueing wait not exceeded by a fraction ``q`` of requests (M/M/1 tail, module docstring)."""
    if utilization >= 1.0:
        return math.inf
    if utilization <= 1.0 - q or service_s <= 0:
        return 0.0
    return service_s / (1.0 - utilization) * math.log(utilization / (1.0 - q))


def _fixed_point(constant: float, slope: float) -> float:
    """Least ``t`` with ``t = constant + slope x t`` (inf when the slope reaches 1)."""
    return constant / (1.0 - slope) if slope < 1.0 else math.inf


def unified_latency(profile: PerformanceProfile, mix: RequestMix, rate_rps: float,
                    correction: Correction, q: float) -> Latency:
    """TTFT and TPOT of one unified replica serving ``rate_rps`` of ``mix``."""
    p, o, ctx = mix.prompt_tokens, mix.output_tokens, mix.decode_context_tokens
    token_s = profile.prefill_token_s(0.0, p) * correction.prefill
    share = rate_rps * p * token_s
    if share >= 1.0:
        return INFEASIBLE
    free = 1.0 - share
    d = correction.decode
    # step(batch) = max(memory, compute) + floor, batch = rate x output x tpot; tpot = d x step / free
    fixed = d * (profile.weights_read_s() + profile.step_floor_s) / free
    memory_slope = d * rate_rps * o * ctx * profile.kv_bytes_per_token / profile.bytes_per_s / free
    compute_slope = d * rate_rps * o * 2.0 * profile.model.parameters / profile.flops_per_s / free
    tpot = max(_fixed_point(fixed, memory_slope),
               _fixed_point(d * profile.step_floor_s / free, compute_slope))
    if not math.isfinite(tpot):
        return INFEASIBLE
    batch = rate_rps * o * tpot
    service = p * token_s + tpot
    utilization = max(0.0, 1.0 - fixed / tpot) if tpot > 0 else 0.0
    ttft = service + wait_quantile_s(utilization, service, q)
    return Latency(ttft, tpot, batch, batch * ctx)


def prefill_latency(profile: PerformanceProfile, mix: RequestMix, rate_rps: float,
                    correction: Correction, q: float) -> Latency:
    """TTFT of one prefill-only replica serving ``rate_rps`` prompts of ``mix``."""
    service = profile.prefill_s(mix.prompt_tokens) * correction.prefill
    ttft = service + wait_quantile_s(rate_rps * service, service, q)
    return Latency(ttft, 0.0, 0.0, 0.0) if math.isfinite(ttft) else INFEASIBLE


def decode_latency(profile: PerformanceProfile, mix: RequestMix, rate_rps: float,
                   correction: Correction, q: float) -> Latency:
    """TPOT of one decode-only replica serving ``rate_rps`` sequences of ``mix`` (TTFT is the prefill
    pool's)."""
    ctx, o, d = mix.decode_context_tokens, mix.output_tokens, correction.decode
    fixed = d * (profile.weights_read_s() + profile.step_floor_s)
    memory_slope = d * rate_rps * o * ctx * profile.kv_bytes_per_token / profile.bytes_per_s
    compute_slope = d * rate_rps * o * 2.0 * profile.model.parameters / profile.flops_per_s
    tpot = max(_fixed_point(fixed, memory_slope), _fixed_point(d * profile.step_floor_s, compute_slope))
    if not math.isfinite(tpot):
        return INFEASIBLE
    batch = rate_rps * o * tpot
    return Latency(0.0, tpot, batch, batch * ctx)


LatencyModel = Callable[[PerformanceProfile, RequestMix, float, Correction, float], Latency]
LATENCY_MODELS: dict[str, LatencyModel] = {"unified": unified_latency, "prefill": prefill_latency,
                                           "decode": decode_latency}
"""The latency model of each pool role (tidal.policies.interface POOL_* names)."""


def _violation(lat: Latency, slo: SLOTargets, profile: PerformanceProfile) -> str | None:
    """Which constraint ``lat`` breaks first, or ``None``."""
    if lat.batch > MAX_NUM_SEQS:
        return LIMIT_SEQS
    if lat.kv_tokens > KV_CACHE_HEADROOM * profile.kv_capacity_tokens():
        return LIMIT_KV
    if slo.ttft_s is not None and lat.ttft_s > slo.ttft_s:
        return LIMIT_TTFT
    if slo.tpot_s is not None and lat.tpot_s > slo.tpot_s:
        return LIMIT_TPOT
    return None


def _saturation_rps(model: LatencyModel, profile: PerformanceProfile, mix: RequestMix,
                    correction: Correction, q: float) -> float:
    """The rate at which one replica saturates (its latencies diverge): the bisection's upper end."""
    finite = (lambda rate: math.isfinite(model(profile, mix, rate, correction, q).tpot_s))
    hi = 1e-3
    while finite(hi) and hi < 1e9:
        hi *= 2.0
    lo = hi / 2.0 if finite(hi / 2.0) else 0.0
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if finite(mid) else (lo, mid)
    return hi


def goodput(role: str, profile: PerformanceProfile, mix: RequestMix, slo: SLOTargets,
            correction: Correction = Correction(), steps: int = BISECTION_STEPS) -> Goodput:
    """Highest rate one ``role`` replica serves within ``slo``; if none does, the rate at
    :data:`SATURATION_UTILIZATION` of its capacity, flagged :data:`LIMIT_INFEASIBLE`. ``steps``:
    bisection steps (precision ``2^-steps`` of the bracket; fewer where a coarse answer does)."""
    model = LATENCY_MODELS[role]
    q = slo.percentile
    if _violation(model(profile, mix, 0.0, correction, q), slo, profile) is not None:
        return Goodput(SATURATION_UTILIZATION * _saturation_rps(model, profile, mix, correction, q),
                       LIMIT_INFEASIBLE)
    lo, hi = 0.0, 1e-3
    while _violation(model(profile, mix, hi, correction, q), slo, profile) is None and hi < 1e9:
        lo, hi = hi, hi * 2.0
    for _ in range(steps):
        mid = (lo + hi) / 2.0
        if _violation(model(profile, mix, mid, correction, q), slo, profile) is None:
            lo = mid
        else:
            hi = mid
    limit = _violation(model(profile, mix, hi, correction, q), slo, profile) or LIMIT_TPOT
    return Goodput(lo, limit)


def idle_violation(role: str, profile: PerformanceProfile, mix: RequestMix, slo: SLOTargets) -> str | None:
    """What keeps one idle ``role`` replica from meeting ``slo`` for ``mix`` (``None``: nothing): the
    weights leave no KV cache, or a lone request already misses a target. No replica count helps then."""
    if profile.kv_capacity_tokens() <= 0:
        return LIMIT_KV
    return _violation(LATENCY_MODELS[role](profile, mix, 0.0, Correction(), slo.percentile), slo, profile)


def replicas_needed(load_rps: float, goodput_rps: float) -> float:
    """``ceil(load / goodput)``, unbounded: ``inf`` when there is load and no goodput."""
    if load_rps <= 0:
        return 0
    if goodput_rps <= 0:
        return math.inf
    return math.ceil(load_rps / goodput_rps - 1e-9)


def replicas_for_load(load_rps: float, goodput_rps: float, min_replicas: int, max_replicas: int) -> int:
    """:func:`replicas_needed` within ``[min_replicas, max_replicas]``."""
    return int(min(max(replicas_needed(load_rps, goodput_rps), min_replicas), max_replicas))


def infer_factor(observed_s: float, predict: Callable[[float], float],
                 bounds: tuple[float, float] = CORRECTION_BOUNDS) -> float:
    """The time multiplier ``f`` in ``bounds`` with ``predict(f) = observed_s`` (``predict`` increasing
    in ``f``), by bisection in log space; a bound when the observation lies beyond it."""
    lo, hi = math.log(bounds[0]), math.log(bounds[1])
    if predict(math.exp(lo)) >= observed_s:
        return bounds[0]
    if predict(math.exp(hi)) <= observed_s:
        return bounds[1]
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2.0
        if predict(math.exp(mid)) < observed_s:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2.0)


def blend(current: float, estimate: float, weight: float = CORRECTION_WEIGHT) -> float:
    """Log-space exponential smoothing of a correction factor, kept within :data:`CORRECTION_BOUNDS`."""
    lo, hi = CORRECTION_BOUNDS
    value = math.exp((1.0 - weight) * math.log(current) + weight * math.log(estimate))
    return min(max(value, lo), hi)


def corrected(role: str, profile: PerformanceProfile, mix: RequestMix, rate_per_replica_rps: float,
              correction: Correction, q: float, observed_ttft_s: float | None,
              observed_tpot_s: float | None, weight: float = CORRECTION_WEIGHT) -> Correction:
    """``correction`` updated from one observation of a pool's TTFT and TPOT at the SLO percentile
    while each replica served ``rate_per_replica_rps``. Prefill pools learn the prefill factor from
    TTFT, decode pools the decode factor from TPOT, unified pools both (each holding the other)."""
    model = LATENCY_MODELS[role]
    prefill, decode = correction.prefill, correction.decode
    usable = (lambda v: v is not None and math.isfinite(v) and v > 0)
    if role in ("unified", "decode") and usable(observed_tpot_s) and mix.output_tokens > 0:
        est = infer_factor(observed_tpot_s,  # type: ignore[arg-type]
                           lambda f: model(profile, mix, rate_per_replica_rps, Correction(prefill, f), q).tpot_s)
        decode = blend(decode, est, weight)
    if role in ("unified", "prefill") and usable(observed_ttft_s) and mix.prompt_tokens > 0:
        est = infer_factor(observed_ttft_s,  # type: ignore[arg-type]
                           lambda f: model(profile, mix, rate_per_replica_rps, Correction(f, decode), q).ttft_s)
        prefill = blend(prefill, est, weight)
    return Correction(prefill, decode)
