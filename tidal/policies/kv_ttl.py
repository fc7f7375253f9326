"""KV-cache time-to-live after a session's turn: how long to pin its KV for the next turn.

Why this shape (Continuum, Li et al., "Continuum: Efficient and Robust Multi-Turn LLM Agent
Scheduling with KV Cache Time-to-Live", arXiv:2511.02230): an agent's next call re-reads the whole
previous context, so keeping that context's KV through the tool call (or the user's think time)
saves re-prefilling it; but pinned KV is memory a running batch cannot use. Continuum pins the KV
of a request that made a tool call for a TTL chosen from the tool's duration distribution, trading
the reload cost against the memory held, and lets the pin expire so a long pause costs at most
the TTL.

The trade, per token of context ``C`` held after a turn, with ``X`` the pause until the next turn
(random, from :class:`~tidal.predictors.pauses.SessionPausePredictor`) and ``T`` the TTL:

* saved: the token's prefill, ``t_p`` replica-seconds, when the next turn comes back in time:
  ``P(X <= T) * t_p``;
* held: the token occupies ``1 / K`` of a replica's KV capacity ``K`` (tokens) for
  ``min(X, T)`` seconds. When KV memory is what limits the batch, a running batch loses that share
  of the replica's throughput: ``pressure * E[min(X, T)] / K`` replica-seconds, with ``pressure``
  (0..1) the fraction of the time memory binds.

Both are proportional to ``C``, so the TTL does not depend on the context length. Dividing by
``t_p``, the TTL maximises::

    net(T) = P(X <= T) - price * E[min(X, T)],    price = pressure / (K * t_p)  [1/s]

``K * t_p`` is the *break-even hold*: holding a token's KV that long costs as much as
recomputing it (about 9 s for an 8B model on one H100, 20 s for 70B on four; see
:func:`break_even_hold_s`). ``d net / dT = (1 - F(T)) * (hazard(T) - price)``: keep holding while
a session that has not come back yet is more likely than ``price`` per second to come back now.
The TTL is the maximiser over ``[0, max_ttl_s]`` (and the KV-capacity bound), zero when no TTL
gains at least :data:`~tidal.policies.defaults.KV_TTL_MIN_NET_BENEFIT` of a re-prefill: then
pauses almost always outlast what is worth holding.

Properties (tests/policies/test_kv_ttl.py): ``0 <= TTL <= min(max_ttl_s, capacity bound)``; zero
when every pause exceeds the maximum; non-increasing in the price (``net`` has decreasing
differences in ``(T, price)`` because ``E[min(X, T)]`` grows with ``T``: Topkis); non-increasing
as more sessions pause beyond the maximum (mixing in weight ``w`` of such pauses adds
``-w * price * T``, again decreasing differences).

Pure: the decision core (tidal/core) and the KV-TTL bench (bench/kv_ttl.py) call the same
functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tidal.api.modeldeployment import ModelSpec
from tidal.policies.defaults import (
    KV_BREAK_EVEN_HOLD_S,
    KV_MEMORY_PRESSURE,
    KV_TTL_GRID_POINTS,
    KV_TTL_MAX_PINNED_FRACTION,
    KV_TTL_MIN_NET_BENEFIT,
    KV_TTL_MIN_S,
)
from tidal.policies.interface import AcceleratorProfile
from tidal.policies.profile import build_profile
from tidal.predictors.pauses import SessionPausePredictor

PauseCDF = Callable[[float], float]
"""``P(pause <= x_s)``: non-decreasing in ``x_s``, 0 at 0, at most 1."""


@dataclass(frozen=True)
class KVTTLChoice:
    """A chosen TTL and what it is expected to do, per turn and per token of context held."""

    ttl_s: float
    hit_probability: float
    """``P(pause <= TTL)``: share of next turns that find their KV."""
    expected_hold_s: float
    """``E[min(pause, TTL)]``: seconds a token's KV is pinned per turn."""
    net_benefit: float
    """``net(TTL)`` in re-prefills of the context (1.0: as if every next turn were free)."""
    bound_s: float
    """The bound the TTL was chosen under: ``min(max_ttl_s, capacity bound)``."""
    message: str


def break_even_hold_s(prefill_token_s: float, kv_capacity_tokens: float) -> float:
    """Seconds of holding one token's KV that cost a replica as much as prefilling it once.

    ``K * t_p``: one token held for a second takes ``1 / K`` of the replica's KV (its batch) for a
    second; prefilling it takes ``t_p`` replica-seconds of compute."""
    if not (prefill_token_s > 0 and kv_capacity_tokens > 0):
        raise ValueError(
            f"prefill_token_s and kv_capacity_tokens must be > 0, got {prefill_token_s!r}, "
            f"{kv_capacity_tokens!r}"
        )
    return kv_capacity_tokens * prefill_token_s


def hold_price_per_s(break_even_s: float, memory_pressure: float = 1.0) -> float:
    """``pressure / break-even hold``: what a second of holding costs, in re-prefills."""
    if not (math.isfinite(break_even_s) and break_even_s > 0):
        raise ValueError(f"break_even_s must be a finite number of seconds > 0, got {break_even_s!r}")
    if not 0.0 <= memory_pressure <= 1.0:
        raise ValueError(f"memory_pressure must lie in [0, 1], got {memory_pressure!r}")
    return memory_pressure / break_even_s


def _grid(bound_s: float) -> np.ndarray:
    """Candidate TTLs: 0, a fixed log-spaced grid below ``bound_s``, and ``bound_s`` itself.

    The grid does not depend on the bound, so a wider bound only adds candidates."""
    fixed = np.geomspace(KV_TTL_MIN_S, 86_400.0, KV_TTL_GRID_POINTS)
    inside = fixed[fixed < bound_s]
    return np.concatenate([[0.0], inside, [bound_s]]) if bound_s > 0 else np.array([0.0])


def _curves(cdf: PauseCDF, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F`` and ``E[min(X, T)]`` at each grid point (survival integrated by trapezoids)."""
    f = np.array([min(1.0, max(0.0, float(cdf(t)))) for t in grid])
    f = np.maximum.accumulate(f)  # a CDF never decreases; guard against a sloppy one
    survival = 1.0 - f
    steps = np.diff(grid) * (survival[:-1] + survival[1:]) / 2.0  # trapezoids of P(X > t)
    held = np.concatenate([[0.0], np.cumsum(steps)])
    return f, held


def capacity_bound_ttl_s(
    cdf: PauseCDF,
    *,
    turn_end_rate_rps: float,
    mean_context_tokens: float,
    kv_capacity_tokens: float,
    max_pinned_fraction: float = KV_TTL_MAX_PINNED_FRACTION,
    max_ttl_s: float = 86_400.0,
) -> float:
    """The longest TTL whose pinned KV fits in ``max_pinned_fraction`` of the capacity.

    Little's law: pinned tokens = turn ends per second x context per turn x ``E[min(X, T)]``."""
    if turn_end_rate_rps < 0 or mean_context_tokens < 0 or kv_capacity_tokens <= 0:
        raise ValueError("need turn_end_rate_rps >= 0, mean_context_tokens >= 0, kv_capacity_tokens > 0")
    if not 0.0 < max_pinned_fraction <= 1.0:
        raise ValueError(f"max_pinned_fraction must lie in (0, 1], got {max_pinned_fraction!r}")
    demand = turn_end_rate_rps * mean_context_tokens
    if demand <= 0:
        return max_ttl_s
    budget_s = max_pinned_fraction * kv_capacity_tokens / demand  # allowed E[min(X, T)]
    grid = _grid(max_ttl_s)
    _, held = _curves(cdf, grid)
    fits = grid[held <= budget_s]
    return float(fits[-1])


def choose_ttl(
    cdf: PauseCDF,
    *,
    price_per_s: float,
    max_ttl_s: float,
    capacity_ttl_s: float = math.inf,
    min_net_benefit: float = KV_TTL_MIN_NET_BENEFIT,
) -> KVTTLChoice:
    """The TTL in ``[0, min(max_ttl_s, capacity_ttl_s)]`` maximising ``P(X <= T) - price *
    E[min(X, T)]``; zero unless the best gains more than ``min_net_benefit`` re-prefills.

    Ties go to the shorter TTL (same benefit for less memory)."""
    if not (math.isfinite(max_ttl_s) and max_ttl_s >= 0):
        raise ValueError(f"max_ttl_s (spec.kvCache.maxTTL) must be a finite duration >= 0, got {max_ttl_s!r}")
    if not (price_per_s >= 0 and math.isfinite(price_per_s)):
        raise ValueError(f"price_per_s must be finite and >= 0, got {price_per_s!r}")
    if capacity_ttl_s < 0:
        raise ValueError(f"capacity_ttl_s must be >= 0, got {capacity_ttl_s!r}")
    bound = min(max_ttl_s, capacity_ttl_s)
    grid = _grid(bound)
    f, held = _curves(cdf, grid)
    net = f - price_per_s * held
    best = int(np.argmax(net))  # first maximiser: the shortest TTL among ties
    if net[best] <= min_net_benefit:
        best = 0
    ttl = float(grid[best])
    if best == 0:
        message = (
            f"no TTL up to {bound:g}s gains more than {min_net_benefit:g} of a re-prefill "
            f"(P(pause <= {bound:g}s) = {f[-1]:.2f}, hold price {price_per_s:.3g}/s): not pinned"
        )
    else:
        message = (
            f"TTL {ttl:.3g}s: {f[best]:.0%} of next turns find their KV, each token held "
            f"{held[best]:.3g}s on average at {price_per_s:.3g} re-prefills/s; net "
            f"{net[best]:.2f} of a re-prefill (bound {bound:g}s)"
        )
    net_benefit = float(net[best]) if best else 0.0
    return KVTTLChoice(ttl, float(f[best]), float(held[best]), net_benefit, bound, message)


def choose_ttl_by_category(
    cdfs: Mapping[str, PauseCDF],
    *,
    price_per_s: float,
    max_ttl_s: float,
    capacity_ttl_s: float = math.inf,
    min_net_benefit: float = KV_TTL_MIN_NET_BENEFIT,
) -> dict[str, KVTTLChoice]:
    """:func:`choose_ttl` for each category (a tool name or request class) of ``cdfs``."""
    return {
        name: choose_ttl(cdf, price_per_s=price_per_s, max_ttl_s=max_ttl_s,
                         capacity_ttl_s=capacity_ttl_s, min_net_benefit=min_net_benefit)
        for name, cdf in cdfs.items()
    }


def empirical_cdf(pauses_s: Iterable[float]) -> PauseCDF:
    """The step CDF of observed pauses (for tests and the oracle's hindsight check)."""
    values = np.sort(np.asarray(list(pauses_s), dtype=float))
    if values.size == 0:
        raise ValueError("empirical_cdf needs at least one pause")
    n = values.size
    return lambda x: float(np.searchsorted(values, x, side="right")) / n


def deployment_price_per_s(
    model: ModelSpec | None = None,
    accelerator: AcceleratorProfile | None = None,
    gpus_per_replica: int = 1,
    memory_pressure: float = KV_MEMORY_PRESSURE,
) -> float:
    """The hold price of one ModelDeployment: its break-even hold from ``spec.model`` and the
    accelerator's datasheet (tidal/policies/profile.py), or :data:`KV_BREAK_EVEN_HOLD_S` when either
    is unknown or the weights do not fit."""
    break_even = KV_BREAK_EVEN_HOLD_S
    if model is not None and accelerator is not None:
        profile = build_profile(model, accelerator, gpus_per_replica)
        capacity = profile.kv_capacity_tokens()
        if capacity > 0:
            break_even = break_even_hold_s(profile.prefill_token_s(), capacity)
    return hold_price_per_s(break_even, memory_pressure)


def auto_ttl(
    max_ttl_s: float,
    price_per_s: float,
    pauses: SessionPausePredictor | None = None,
    category: str | None = None,
    waiting_s: Sequence[float] = (),
) -> KVTTLChoice:
    """``kvCache.ttl: auto``: the TTL from ``pauses`` (the session-pause predictor's learned
    distribution of ``category``; the predictor's prior when None) under ``max_ttl_s``
    (``kvCache.maxTTL``) at ``price_per_s`` (:func:`deployment_price_per_s`).

    ``waiting_s``: how long each turn of ``category`` still waiting for its next turn has waited.
    Pauses are learnt when they end, so the short ones are known first; without the waiting turns
    (right-censored pauses) a learner that has run for a minute knows only sub-minute pauses and
    pins for sessions that mostly are not coming back soon (the Mooncake replay, docs/kv-ttl.md)."""
    predictor = pauses if pauses is not None else SessionPausePredictor()
    return choose_ttl(predictor.cdf_function(category, waiting_s), price_per_s=price_per_s,
                      max_ttl_s=max_ttl_s)
