"""The decision-core contract shared by the operator shell and the simulator shell.

Both shells build an :class:`Observation`, hand it to an :class:`Autoscaler`
together with the state the autoscaler returned last time, and apply the
:class:`Decision` they get back. Nothing here performs I/O, so a policy that
looks good in simulation is byte-for-byte the code that runs in the cluster.

Metrics are ``None`` when they could not be read. Policies must treat ``None``
as "unknown" (hold), never as zero: a missing metric never scales to zero. A pool
whose Ready replicas did not all report is partially observed
(``PoolObservation.unobserved_replicas``): never scaled down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

POOL_UNIFIED = "unified"
POOL_PREFILL = "prefill"
POOL_DECODE = "decode"
POOL_FUNCTION = "function"


Cumulative = tuple[tuple[float, float], ...]
"""Histogram buckets as Prometheus gives them: ``(le, count of observations <= le)``, by ``le``, the
last one ``+Inf``."""


@dataclass(frozen=True)
class KvResidency:
    """Increments, over a metrics window, of vLLM's sampled KV-block residency histograms
    (``--kv-cache-metrics``; vllm/v1/core/kv_cache_metrics.py): what the core learns session pauses
    from for ``kvCache.ttl: auto`` (tidal/predictors/kv_residency.py).

    ``reuse_gap``: ``vllm:kv_block_reuse_gap_seconds``, time between consecutive prefix-cache hits of
    a sampled block (up to three per block, reported when it is evicted). ``idle_before_evict``:
    ``vllm:kv_block_idle_before_evict_seconds``, time from a sampled block's last access to its
    eviction. Both summed over the pool's pods, as cumulative bucket counts (not rates)."""

    reuse_gap: Cumulative
    idle_before_evict: Cumulative
    window_s: float
    """The window the increments cover; ticks closer together than it see overlapping windows
    (the core weights each tick's increments by interval / window)."""


@dataclass(frozen=True)
class PoolObservation:
    """What a shell could see of one pool (all replicas of one role) at one instant.

    Rates are per second, latencies are the SLO percentile over the shell's
    metrics window. ``None`` means the metric was unavailable.
    """

    ready_replicas: int
    starting_replicas: int = 0
    pending_replicas: int = 0
    draining_replicas: int = 0
    request_rate_rps: float | None = None
    """Requests the pool *completed* per second: what engines count (vLLM
    ``request_success_total``, SGLang ``num_requests_total``), and so what both shells read. Under
    overload it stays at the pool's capacity while arrivals grow; :attr:`arrival_rate_rps` adds the
    change in flight to it."""
    prompt_tokens_rps: float | None = None
    output_tokens_rps: float | None = None
    running_requests: float | None = None
    waiting_requests: float | None = None
    kv_cache_usage_ratio: float | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    peak_request_rate_rps: float | None = None
    """The highest arrival rate over one scrape interval (the simulator: one tick) within the
    metrics window, estimated like :attr:`arrival_rate_rps` (completions plus the growth in flight). Bursts shorter than the window hide in ``request_rate_rps`` and set the tail
    latency a percentile SLO is about; the SLO planner sizes on this peak."""
    unobserved_replicas: int = 0
    """Ready replicas whose in-flight count was missing, stale or rejected this tick. The metrics
    above then cover only the other replicas: the pool is *partially observed*, and a policy may
    scale it up on what the reporting replicas show but must never scale it down
    (tidal/policies/guards.py)."""
    in_flight_change_rps: float | None = None
    """Change of the pool's requests in flight (running + waiting) over the metrics window, divided
    by the window: negative while a backlog drains. With ``request_rate_rps`` it gives the arrival
    rate (requests are conserved: arrived = completed + still in flight). ``None``: not read."""
    entry_request_rate_rps: float | None = None
    """Requests per second arriving at the pool's entry (its Service, gateway or activator), which
    can be read while the pool has no replicas; the demand signal that wakes a pool at zero.
    ``None``: the shell has no such signal (the operator without the activator; with it, the
    activator's held arrivals, tidal/controllers/modeldeployment_entry.py)."""
    kv_residency: KvResidency | None = None
    """The pool's KV-block residency histogram increments over the window; ``None``: not read (SGLang,
    which has no such metric, or vLLM without ``--kv-cache-metrics``)."""

    @property
    def arrival_rate_rps(self) -> float | None:
        """Requests arriving per second over the window, from what engines export: completions plus
        the change in flight (conservation), never below zero; the completion rate alone when the
        change is unknown or unusable. ``None`` when the completion rate is. Policies size on this,
        not on ``request_rate_rps``, which saturates at capacity exactly when load exceeds it."""
        done = self.request_rate_rps
        change = self.in_flight_change_rps
        if done is None or change is None or not math.isfinite(change) or not math.isfinite(done) or done < 0:
            return done
        return max(0.0, done + change)

    @property
    def current_replicas(self) -> int:
        """Replicas that exist or are on their way (the base for scale decisions)."""
        return self.ready_replicas + self.starting_replicas + self.pending_replicas


@dataclass(frozen=True)
class AcceleratorProfile:
    """One accelerator class a workload may use, as the core sees it (from an AcceleratorClass)."""

    name: str
    hourly_cost: float
    peak_tflops: float
    memory_bandwidth_gbps: float
    memory_bytes: float
    free_gpus: int | None = None
    """GPUs of this class no pod holds right now (AcceleratorClass ``status.free``, the operator's
    inventory; the simulator's cluster). ``None``: unknown, so placement never spills for it."""
    free_by_node: tuple[int, ...] | None = None
    """The same GPUs per node (``status.freeByNode``): a replica of several GPUs needs them on one node.
    ``None``: not reported, placement then counts ``free_gpus`` as if on one node."""


@dataclass(frozen=True)
class ReplicaStart:
    """One replica start the shell saw complete, with its phases (seconds), for the cold-start
    predictor. ``uid`` identifies the replica so the core learns each start once."""

    uid: str
    pool: str
    accelerator: str
    node: str | None
    scheduling_s: float
    image_pull_s: float
    weights_load_s: float
    engine_init_s: float
    image_cached: bool = False
    weights_cached: bool = False


@dataclass(frozen=True)
class Observation:
    """One tick's view of a workload: time, per-pool metrics, and whether metrics were readable.

    The fields after ``metrics_available`` serve the per-workload entry points in tidal/core;
    pool-only policies ignore them.
    """

    now_s: float
    pools: Mapping[str, PoolObservation]
    metrics_available: bool = True
    accelerators: Mapping[str, AcceleratorProfile] = field(default_factory=dict)
    """Accelerator classes that exist, by name (absent ones are simply not listed)."""
    placement: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Replicas each pool currently has per accelerator class (the Deployments' spec.replicas)."""
    starts: tuple[ReplicaStart, ...] = ()
    """Replica starts visible this tick; already learnt ones are skipped by uid."""
    interval_s: float | None = None
    """The shell's tick interval (the forecaster's grid is never finer than it)."""
    grant_gpus: int | None = None
    """GPUs the FairSharePolicy governing this workload's tenant grants it (``None``: none governs it);
    the core caps the replicas it asks for to fit (tidal/core/grant.py)."""
    forecast_rps: float | None = None
    """Filled by the core, not by shells: the entry request rate to provision for one predicted cold
    start ahead (the forecast's median), when ``spec.autoscaling.prewarm`` is on and a forecast
    exists. A policy that pre-warms sizes on ``max(observed rate, forecast_rps)``."""


@dataclass(frozen=True)
class Reason:
    """Why a decision came out as it did. Reasons are data; shells only format them."""

    code: str
    message: str
    pool: str | None = None


@dataclass(frozen=True)
class Decision:
    """Desired replicas per pool, plus the reasons and the forecast that produced them."""

    desired_replicas: Mapping[str, int]
    reasons: tuple[Reason, ...] = ()
    forecast_rps: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


class Autoscaler(Protocol):
    """A pure policy. ``state`` is whatever the policy returned last tick (``None`` at first).

    Implementations must be deterministic in (observation, state) and must not
    mutate either argument; persistence of ``state`` is the shell's job.
    """

    name: str

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        ...
