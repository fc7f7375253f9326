"""Event-driven replay of an LLM workload on a simulated cluster, driven by any Autoscaler.

One heap of timed events (engine segment ends, pods becoming Ready, KV
transfers, autoscaler ticks) plus a pointer into the sorted arrival list. At
every tick the runner builds an :class:`Observation` from what an operator
could scrape (pod phases, windowed request/token rates, running/waiting
requests, KV usage, TTFT/TPOT percentile over the metrics window, the request
rate at each pool's entry, the start phases of serving pods), calls
``autoscaler.decide(observation, state)`` and applies the desired replicas:
scale-up creates pods that go through the cold-start lifecycle; scale-down
removes pending/starting pods first and drains ready ones: a draining pod gets no new requests and
goes away once its last request finished, or, with ``drain_window_s``, when its drain window ends
(Kubernetes' termination grace period), losing what it still held (counted as dropped).

A mixed cluster (``SimConfig.classes``) has nodes of several accelerator classes in limited
numbers: each pod runs on its class's hardware model, the observation carries the replicas per
class and each class's free GPUs (``placement``, ``accelerators``), and a decision that places
replicas per class (``decision.details["placement"]``, ``{pool: {class: replicas}}``) is applied per
class. Requests go to the Ready replica with the fewest requests among those whose KV cache holds
them (least outstanding requests, as with one class: a slower replica keeps its requests longer,
so it is sent fewer).

Same inputs and seed -> identical result (the only randomness is the seeded
cold-start jitter; ties are broken by insertion order).
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Sequence as Seq

import numpy as np

from tidal.controllers.modeldeployment_observe import IMAGE_CACHED_BELOW_S
from tidal.policies.interface import (POOL_DECODE, POOL_PREFILL, POOL_UNIFIED, AcceleratorProfile,
                                      Autoscaler, Decision, Observation, PoolObservation, ReplicaStart)
from tidal.sim.cluster import DRAINING, PENDING, READY, STARTING, Cluster, Pod
from tidal.sim.coldstart import ColdStartParams
from tidal.sim.engine import (ROLE_DECODE, ROLE_PREFILL, ROLE_UNIFIED, Engine, EngineConfig,
                              RequestLike, Sequence)
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.metrics import PoolMetrics
from tidal.sim.perf_model import StepTimeModel, kv_capacity_tokens
from tidal.sim.prefix_cache import ResidencyHistograms
from tidal.activator.settings import DEMAND_SIGNAL_INTERVAL_S
from tidal.sim.serverless.platform import ActivatorModel

MODE_UNIFIED = "unified"
MODE_DISAGGREGATED = "disaggregated"

# Kubernetes HPA controller default sync period (--horizontal-pod-autoscaler-sync-period).
DEFAULT_TICK_S = 15.0
# A one-minute window, the usual Prometheus rate() range for request metrics.
DEFAULT_METRICS_WINDOW_S = 60.0
# KV transfer between prefill and decode nodes over one 200 Gb/s RDMA NIC (25 GB/s),
# plus a fixed per-transfer setup latency.
DEFAULT_KV_TRANSFER_BPS = 25e9
DEFAULT_KV_TRANSFER_LATENCY_S = 1e-3
# Stop a run whose requests cannot finish (e.g. a policy holding zero replicas)
# this long after the last arrival; what is left is reported as unfinished.
DEFAULT_DRAIN_HORIZON_S = 3600.0


@dataclass(frozen=True)
class SLO:
    """Per-request latency targets.

    Defaults are the MLPerf Inference server-scenario limits for Llama-3.1-8B
    (TTFT 2 s, TPOT 100 ms); ``percentile`` is the percentile shells report in
    observations (90 %, the attainment target DistServe evaluates against).
    """

    ttft_s: float = 2.0
    tpot_s: float = 0.1
    percentile: float = 0.9


@dataclass(frozen=True)
class SimClass:
    """One accelerator class of a mixed cluster: its name (the AcceleratorClass's), simulator hardware
    (tidal/sim/hardware.py key), node count, and price per GPU-hour (``None``: the hardware table's)."""

    name: str
    accelerator: str
    nodes: int
    gpu_hour_cost_usd: float | None = None
    gpus_per_node: int | None = None
    """GPUs per node (``None``: the hardware table's), to model a class with only a few GPUs."""


@dataclass(frozen=True)
class SimConfig:
    model: str = "llama-3.1-8b"
    accelerator: str = "H100-80GB"
    tp: int = 1
    mode: str = MODE_UNIFIED
    nodes: int = 4
    initial_replicas: Mapping[str, int] | None = None  # None: the policy's decision at t=0
    tick_s: float = DEFAULT_TICK_S
    metrics_window_s: float = DEFAULT_METRICS_WINDOW_S
    slo: SLO = SLO()
    engine: EngineConfig = EngineConfig()
    cold_start: ColdStartParams = ColdStartParams()
    image_cached: bool = False
    weights_cached: bool = False
    kv_transfer_bps: float = DEFAULT_KV_TRANSFER_BPS
    kv_transfer_latency_s: float = DEFAULT_KV_TRANSFER_LATENCY_S
    gpu_hour_cost_usd: float | None = None
    drain_horizon_s: float = DEFAULT_DRAIN_HORIZON_S
    drain_window_s: float | None = None
    """How long a pod removed by a scale-down may finish its requests before it is killed (tidal's
    rendered pods: preStop delay + ``spec.engine.drainTimeout``); None: until they finish."""
    activator: ActivatorModel | None = None
    """The activator in front of the workload's entry (docs/activator.md): a request that arrives
    while the entry cannot serve (no Ready replica of every entry-path pool: unified, or prefill
    and decode) is held until it can, refused past ``queue_limit`` held requests or after
    ``hold_timeout_s`` (counted, never run). Held requests for an entry pool without pods make the
    autoscaler decide at once (at most every ``DEMAND_SIGNAL_INTERVAL_S``), as the operator does on
    the activator's demand annotation. None: requests wait at the entry pool however long it takes
    (no limits) and wake it at the next tick."""
    seed: int = 0
    classes: tuple[SimClass, ...] = ()
    """A mixed cluster (module docstring); empty: ``nodes`` nodes of ``accelerator``, one class."""

    @property
    def pools(self) -> tuple[str, ...]:
        if self.mode == MODE_UNIFIED:
            return (POOL_UNIFIED,)
        if self.mode == MODE_DISAGGREGATED:
            return (POOL_PREFILL, POOL_DECODE)
        raise ValueError(f"mode must be {MODE_UNIFIED!r} or {MODE_DISAGGREGATED!r}, "
                         f"got {self.mode!r}")


@dataclass
class SimResult:
    """Outcome of one replay. ``summary`` is deterministic in (trace, policy, config)."""

    summary: dict[str, Any]
    timeline: dict[str, list]
    decisions: list[dict[str, Any]]
    requests: dict[str, np.ndarray]
    pods: list[dict[str, Any]]
    wall_s: float = 0.0


_ROLE = {POOL_UNIFIED: ROLE_UNIFIED, POOL_PREFILL: ROLE_PREFILL, POOL_DECODE: ROLE_DECODE}
_EV_ENGINE, _EV_READY, _EV_KV, _EV_TICK, _EV_KILL, _EV_HOLD_TIMEOUT, _EV_DEMAND = 0, 1, 2, 3, 4, 5, 6


class _PoolListener:
    """Engine callbacks for one pod, forwarded to the simulation with the pool attached."""

    __slots__ = ("sim", "pool", "pod")

    def __init__(self, sim: "Simulation", pool: str, pod: Pod) -> None:
        self.sim, self.pool, self.pod = sim, pool, pod

    def on_first_token(self, seq: Sequence, now_s: float) -> None:
        ttft = now_s - seq.arrival_s
        self.sim._metrics[self.pool].current.ttft_s.append(ttft)
        self.sim._latency_window.current.ttft_s.append(ttft)

    def on_finish(self, seq: Sequence, now_s: float) -> None:
        self.sim._on_finish(seq, self.pool, now_s)

    def on_prefill_done(self, seq: Sequence, now_s: float) -> None:
        self.sim._on_prefill_done(seq, now_s)

    def on_tokens(self, prompt_tokens: int, output_tokens: int, now_s: float) -> None:
        bucket = self.sim._metrics[self.pool].current
        bucket.prompt_tokens += prompt_tokens
        bucket.output_tokens += output_tokens


class Simulation:
    """One replay of ``requests`` under ``autoscaler`` with ``config``."""

    def __init__(self, requests: Seq[RequestLike], autoscaler: Autoscaler,
                 config: SimConfig = SimConfig()) -> None:
        self.cfg = config
        self.residency_reported: dict[str, ResidencyHistograms] = {}
        """Per pool, every KV-block residency value the engines reported in the run (the bench reads it)."""
        self.requests = requests
        self.autoscaler = autoscaler
        self.model = get_model(config.model)
        self.mixed = len(config.classes) > 0
        self.classes = config.classes or (SimClass(config.accelerator, config.accelerator, config.nodes,
                                                   config.gpu_hour_cost_usd),)
        self._hardware = {c.name: get_accelerator(c.accelerator) for c in self.classes}
        for c in self.classes:
            if c.gpus_per_node is not None:
                self._hardware[c.name] = replace(self._hardware[c.name], gpus_per_node=c.gpus_per_node)
        self._perf = {n: StepTimeModel(self.model, hw, config.tp) for n, hw in self._hardware.items()}
        self._kv = {n: kv_capacity_tokens(self.model, hw, config.tp) for n, hw in self._hardware.items()}
        first = self.classes[0].name
        self.accelerator = self._hardware[first]
        self.perf = self._perf[first]
        self.kv_tokens = max(self._kv.values())
        self.rng = np.random.default_rng(config.seed)
        self.cluster = Cluster(self.accelerator, self.model, nodes=config.nodes,
                               cold_start=config.cold_start, rng=self.rng,
                               image_cached=config.image_cached,
                               weights_cached=config.weights_cached,
                               classes=[(c.name, self._hardware[c.name], c.nodes) for c in self.classes]
                               if self.mixed else None)
        self.pools = config.pools
        self._metrics = {p: PoolMetrics(config.metrics_window_s) for p in self.pools}
        self._gateway: dict[str, deque[Sequence]] = {p: deque() for p in self.pools}
        self._ready: dict[str, list[Pod]] = {p: [] for p in self.pools}
        self._heap: list[tuple] = []
        self._counter = 0
        self._pushed_version: dict[int, int] = {}
        self._finished: list[Sequence] = []
        self._rejected: list[Sequence] = []
        self._dropped: list[Sequence] = []
        # The activator (cfg.activator): held requests in arrival order by token; a timed-out one
        # leaves the dict and is skipped when the queue is released.
        self._held: deque[int] = deque()
        self._held_seqs: dict[int, Sequence] = {}
        self._held_tokens = 0
        self._last_demand_s = -math.inf
        self.activator_arrivals: list[float] = []
        """Arrival times of the requests that found the entry unable to serve (what the activator
        reports in its demand annotation, refused ones included)."""
        self.activator_waits: list[float] = []
        self.refused_queue_full: list[Sequence] = []
        self.refused_timeout: list[Sequence] = []
        self._outstanding = 0
        self._policy_state: Any = None
        self.timeline: dict[str, list] = {"t_s": [], "arrival_rps": []}
        for p in self.pools:
            for k in ("ready", "starting", "pending", "draining", "desired"):
                self.timeline[f"{p}.{k}"] = []
        self.timeline.update({"ttft_p50_s": [], "ttft_p99_s": [], "tpot_p50_s": [],
                              "tpot_p99_s": []})
        self.decisions: list[dict[str, Any]] = []
        self._arrivals_window: PoolMetrics = PoolMetrics(config.metrics_window_s)
        self._latency_window: PoolMetrics = PoolMetrics(config.metrics_window_s)
        self.now_s = 0.0

    # -- event plumbing -------------------------------------------------------------
    def _push(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._counter += 1
        heapq.heappush(self._heap, (t, kind, self._counter, a, b))

    def _kick(self, pod: Pod) -> None:
        engine: Engine = pod.engine  # type: ignore[assignment]
        if engine.next_wake_s is not None and self._pushed_version.get(pod.id) != engine.version:
            self._pushed_version[pod.id] = engine.version
            self._push(engine.next_wake_s, _EV_ENGINE, pod, engine.version)

    # -- routing ----------------------------------------------------------------------
    def _route(self, seq: Sequence, pool: str, now_s: float) -> None:
        if self.mixed:
            self._route_mixed(seq, pool, now_s)
            return
        ready = self._ready[pool]
        if not ready:
            self._gateway[pool].append(seq)
            return
        best = ready[0]
        best_load = best.engine.num_requests  # type: ignore[union-attr]
        for pod in ready[1:]:
            load = pod.engine.num_requests  # type: ignore[union-attr]
            if load < best_load:
                best, best_load = pod, load
        best.engine.submit(seq, now_s)  # type: ignore[union-attr]
        self._kick(best)

    def _route_mixed(self, seq: Sequence, pool: str, now_s: float) -> bool:
        """Fewest requests over the Ready replicas whose KV cache holds the request; none -> it waits
        at the gateway. Returns whether it was routed."""
        need = seq.prompt_tokens + seq.output_tokens
        best, best_load = None, math.inf
        for pod in self._ready[pool]:
            if self._kv[pod.klass] < need:
                continue
            load = pod.engine.num_requests  # type: ignore[union-attr]
            if load < best_load:
                best, best_load = pod, load
        if best is None:
            self._gateway[pool].append(seq)
            return False
        best.engine.submit(seq, now_s)  # type: ignore[union-attr]
        self._kick(best)
        return True

    def _flush_gateway(self, pool: str, now_s: float) -> None:
        queue = self._gateway[pool]
        if self.mixed:
            waiting = list(queue)
            queue.clear()
            for seq in waiting:
                self._route_mixed(seq, pool, now_s)  # what fits no Ready replica goes back, in order
            return
        while queue and self._ready[pool]:
            self._route(queue.popleft(), pool, now_s)

    # -- the activator ----------------------------------------------------------------------
    def entry_ready(self) -> bool:
        """Whether a request at the entry can be served now: a Ready replica of every pool."""
        return all(self._ready[p] for p in self.pools)

    @property
    def activator_held(self) -> int:
        """Requests the activator holds now."""
        return len(self._held_seqs)

    def _hold(self, seq: Sequence, now_s: float) -> None:
        activator = self.cfg.activator
        assert activator is not None
        self.activator_arrivals.append(now_s)
        if len(self._held_seqs) >= activator.queue_limit:
            self.refused_queue_full.append(seq)   # 503 at once, never runs
            return
        self._outstanding += 1
        self._held_tokens += 1
        self._held.append(self._held_tokens)
        self._held_seqs[self._held_tokens] = seq
        self._push(now_s + activator.hold_timeout_s, _EV_HOLD_TIMEOUT, self._held_tokens)
        if not self._entry_pool_has_pods() and now_s - self._last_demand_s >= DEMAND_SIGNAL_INTERVAL_S:
            # The activator's demand annotation: the operator decides at once (tidal_md_demand).
            self._last_demand_s = now_s
            self._push(now_s, _EV_DEMAND)

    def _entry_pool_has_pods(self) -> bool:
        pool = self.pools[0]
        return any(self.cluster.count(pool, phase) for phase in (PENDING, STARTING, READY))

    def _demand_tick(self, now_s: float) -> None:
        """A decision between ticks, as the operator's demand handler makes one when the activator
        reports requests for an entry pool without replicas: the same observation as a tick, but no
        metrics bucket closes (the operator's scrapes do not move either)."""
        if self._entry_pool_has_pods():
            return
        obs = self.observe(now_s)
        decision, self._policy_state = self.autoscaler.decide(obs, self._policy_state)
        self._record(now_s, obs, decision)
        self._apply(decision.desired_replicas, now_s)

    def _hold_timeout(self, token: int) -> None:
        seq = self._held_seqs.pop(token, None)
        if seq is not None:                 # still held: 503, never runs
            self.refused_timeout.append(seq)
            self._outstanding -= 1

    def _release_held(self, now_s: float) -> None:
        """The entry became ready: forward every held request, first arrived first."""
        while self._held and self.entry_ready():
            seq = self._held_seqs.pop(self._held.popleft(), None)
            if seq is not None:
                self.activator_waits.append(now_s - seq.arrival_s)
                self._route(seq, self.pools[0], now_s)

    # -- request lifecycle ---------------------------------------------------------------
    def _on_arrival(self, req: RequestLike, now_s: float) -> None:
        seq = Sequence(req)
        self._arrivals_window.current.arrivals += 1
        first_pool = self.pools[0]
        self._metrics[first_pool].current.arrivals += 1
        if seq.prompt_tokens + seq.output_tokens > self.kv_tokens:
            self._rejected.append(seq)      # vLLM rejects requests longer than its KV cache
            return
        if self.cfg.activator is not None and not self.entry_ready():
            self._hold(seq, now_s)
            return
        self._outstanding += 1
        self._route(seq, first_pool, now_s)

    def _on_prefill_done(self, seq: Sequence, now_s: float) -> None:
        # a prefill engine's request completes here (vLLM counts it in request_success_total)
        self._metrics[POOL_PREFILL].current.completions += 1
        seq.prefill_replica = seq.replica
        seq.transfer_s = (seq.prompt_tokens * self.model.kv_bytes_per_token
                          / self.cfg.kv_transfer_bps + self.cfg.kv_transfer_latency_s)
        self._push(now_s + seq.transfer_s, _EV_KV, seq)

    def _on_kv_arrived(self, seq: Sequence, now_s: float) -> None:
        # the client sees its first token once the decode instance holds the KV
        seq.first_token_s = now_s
        seq.kv_ready_s = now_s
        self._metrics[POOL_DECODE].current.arrivals += 1
        self._metrics[POOL_DECODE].current.ttft_s.append(now_s - seq.arrival_s)
        self._latency_window.current.ttft_s.append(now_s - seq.arrival_s)
        if seq.output_tokens <= 1:
            seq.finish_s = now_s
            self._on_finish(seq, POOL_DECODE, now_s)
            return
        seq.computed = seq.prompt_tokens
        seq.prefill_target = seq.prompt_tokens
        seq.generated = 1
        seq.own_blocks, seq.shared_refs, seq.admitted = 0, (), False
        self._route(seq, POOL_DECODE, now_s)

    def _on_finish(self, seq: Sequence, pool: str, now_s: float) -> None:
        self._finished.append(seq)
        self._metrics[pool].current.completions += 1
        self._outstanding -= 1
        if seq.output_tokens > 1 and seq.first_token_s is not None:
            tpot = (now_s - seq.first_token_s) / (seq.output_tokens - 1)
            self._metrics[pool].current.tpot_s.append(tpot)
            self._latency_window.current.tpot_s.append(tpot)

    # -- pods -------------------------------------------------------------------------------
    def _make_engine(self, pod: Pod) -> Engine:
        klass = pod.klass if self.mixed else self.classes[0].name
        return Engine(pod.id, self._perf[klass], self._kv[klass], _PoolListener(self, pod.pool, pod),
                      self.cfg.engine, role=_ROLE[pod.pool])

    def _start_pending(self, now_s: float) -> None:
        for pod in self.cluster.schedule_pending(now_s):
            self._push(now_s + pod.cold_start.total_s, _EV_READY, pod)  # type: ignore[union-attr]

    def _on_pod_ready(self, pod: Pod, now_s: float) -> None:
        if pod.phase != STARTING:
            return                          # removed while starting
        self.cluster.mark_ready(pod, now_s)
        pod.engine = self._make_engine(pod)
        self._ready[pod.pool].append(pod)
        self._flush_gateway(pod.pool, now_s)
        if self._held:
            self._release_held(now_s)

    def _collect_residency(self, pod: Pod) -> None:
        """What ``pod``'s engine reported of KV-block residency since the last collection, into its
        pool's current metrics bucket (as Prometheus scrapes it; nothing when it does not report)."""
        cache = getattr(pod.engine, "prefix_cache", None)
        if cache is not None and cache.residency_sample_rate:
            reported = cache.take_residency()
            self._metrics[pod.pool].add_residency(reported)
            self.residency_reported.setdefault(pod.pool, ResidencyHistograms()).add(reported)

    def _terminate(self, pod: Pod, now_s: float) -> None:
        self._collect_residency(pod)
        if pod in self._ready[pod.pool]:
            self._ready[pod.pool].remove(pod)
        self.cluster.terminate(pod, now_s)
        self._start_pending(now_s)

    def _kill(self, pod: Pod, now_s: float) -> None:
        """The drain window of ``pod`` ended: if it still holds requests, they are lost."""
        if pod.phase != DRAINING:
            return                          # it finished its requests in time
        lost = pod.engine.abort_all()  # type: ignore[union-attr]
        pod.dropped_requests = len(lost)
        self._dropped += lost
        self._outstanding -= len(lost)
        self._terminate(pod, now_s)

    def _apply(self, desired: Mapping[str, int], now_s: float,
               placement: Mapping[str, Mapping[str, int]] | None = None) -> None:
        """Replicas per pool, or, on a mixed cluster with ``placement``, per pool and class."""
        for pool in self.pools:
            if self.mixed and placement is not None and pool in placement:
                for klass, n in placement[pool].items():
                    if klass in self._hardware:
                        self._apply_pool(pool, max(0, int(n)), now_s, klass)
            elif pool in desired:
                self._apply_pool(pool, max(0, int(desired[pool])), now_s, self.classes[0].name if self.mixed else None)

    def _apply_pool(self, pool: str, want: int, now_s: float, klass: str | None) -> None:
        """``want`` replicas of ``pool`` (of ``klass`` only, when given)."""
        mine = (lambda pods: pods) if klass is None else (lambda pods: [p for p in pods if p.klass == klass])
        pending = mine(self.cluster.pods_in(pool, PENDING))
        starting = mine(self.cluster.pods_in(pool, STARTING))
        ready = mine(self.cluster.pods_in(pool, READY))
        current = len(pending) + len(starting) + len(ready)
        if want > current:
            for _ in range(want - current):
                self.cluster.create_pod(pool, self.cfg.tp, now_s, klass)
            self._start_pending(now_s)
        elif want < current:
            excess = current - want
            victims = (sorted(pending, key=lambda p: -p.id) + sorted(starting, key=lambda p: -p.id)
                       + sorted(ready, key=lambda p: (p.engine.num_requests, -p.id)))
            for pod in victims[:excess]:
                if pod.phase in (PENDING, STARTING):
                    self.cluster.terminate(pod, now_s)
                else:
                    self._ready[pool].remove(pod)
                    self.cluster.begin_drain(pod, now_s)
                    if pod.engine.num_requests == 0:  # type: ignore[union-attr]
                        self._terminate(pod, now_s)
                    elif self.cfg.drain_window_s is not None:
                        self._push(now_s + self.cfg.drain_window_s, _EV_KILL, pod)
            self._start_pending(now_s)

    # -- observation --------------------------------------------------------------------
    def _in_flight(self, pool: str) -> tuple[int, int]:
        """Requests running and waiting in ``pool``: on its engines, at its gateway, and (the entry
        pool) held by the activator."""
        serving = self.cluster.pods_in(pool, READY, DRAINING)
        running = sum(len(p.engine.running) for p in serving)  # type: ignore[union-attr]
        waiting = (sum(len(p.engine.waiting) for p in serving)  # type: ignore[union-attr]
                   + len(self._gateway[pool]) + (len(self._held_seqs) if pool == self.pools[0] else 0))
        return running, waiting

    def observe(self, now_s: float, in_flight: Optional[dict[str, tuple[int, int]]] = None) -> Observation:
        """What the operator would observe now; ``in_flight`` (running, waiting per pool) when the
        caller has just counted it (``_tick``), else counted here."""
        obs = self._observe_pools(now_s, in_flight or {})
        if not self.mixed:
            return obs
        placement = {pool: {c.name: 0 for c in self.classes} for pool in self.pools}
        for pod in self.cluster.pods_in_any_pool(PENDING, STARTING, READY):
            placement[pod.pool][pod.klass] += 1
        accelerators = {}
        for c in self.classes:
            hw = self._hardware[c.name]
            price = c.gpu_hour_cost_usd if c.gpu_hour_cost_usd is not None else hw.gpu_hour_cost_usd
            accelerators[c.name] = AcceleratorProfile(c.name, price, hw.peak_bf16_flops / 1e12,
                                                      hw.memory_bandwidth_bps / 1e9, float(hw.memory_bytes),
                                                      free_gpus=self.cluster.free_gpus(c.name),
                                                      free_by_node=self.cluster.free_gpus_by_node(c.name))
        return Observation(now_s=now_s, pools=obs.pools, starts=obs.starts, accelerators=accelerators,
                           placement=placement)

    def _with_classes(self, obs: Observation) -> Observation:
        """``obs`` with the mixed cluster's placement and free GPUs (the first decision's view)."""
        full = self.observe(0.0)
        return replace(obs, accelerators=full.accelerators, placement=full.placement)

    def _observe_pools(self, now_s: float, in_flight: dict[str, tuple[int, int]]) -> Observation:
        pools = {}
        q = self.cfg.slo.percentile
        for pool in self.pools:
            m = self._metrics[pool]
            rate, prompt_rps, output_rps = m.rates(now_s, 0.0)
            running, waiting = in_flight[pool] if pool in in_flight else self._in_flight(pool)
            ready = self.cluster.pods_in(pool, READY)
            kv = (float(np.mean([p.engine.kv_usage_ratio for p in ready]))  # type: ignore
                  if ready else None)
            pools[pool] = PoolObservation(
                ready_replicas=len(ready),
                starting_replicas=self.cluster.count(pool, STARTING),
                pending_replicas=self.cluster.count(pool, PENDING),
                draining_replicas=self.cluster.count(pool, DRAINING),
                request_rate_rps=rate, in_flight_change_rps=m.in_flight_change(now_s, 0.0, running + waiting),
                prompt_tokens_rps=prompt_rps, output_tokens_rps=output_rps, running_requests=float(running),
                waiting_requests=float(waiting), kv_cache_usage_ratio=kv,
                ttft_s=m.latency_percentile("ttft_s", q),
                tpot_s=m.latency_percentile("tpot_s", q),
                # arrivals are counted where requests enter the pool, with or without pods
                entry_request_rate_rps=m.arrival_rate(now_s, 0.0), peak_request_rate_rps=m.peak_rate(),
                kv_residency=m.kv_residency())
            if self.cfg.activator is not None and self._no_pods(pool):
                pools[pool] = self._activator_view(pool, pools[pool], m, now_s)
        return Observation(now_s=now_s, pools=pools, starts=self._starts())

    def _no_pods(self, pool: str) -> bool:
        return not self.cluster.pods_in(pool, PENDING, STARTING, READY, DRAINING)

    def _activator_view(self, pool: str, obs: PoolObservation, m: PoolMetrics, now_s: float) -> PoolObservation:
        """A pool without pods behind the activator, as the operator observes it
        (tidal/controllers/modeldeployment_entry.py ``entry_observation``): no engine reports
        anything, so the activator's held arrivals are the entry pool's request rate, entry rate and
        peak (counted per tick), nothing runs, the held requests wait; another pool of the path has
        nothing arriving (the activator holds every request until the whole path is Ready)."""
        entry = pool == self.pools[0]
        rate = m.arrival_rate(now_s, 0.0) if entry else 0.0
        peak = m.peak_arrival_count_rate() if entry else 0.0
        return replace(obs, request_rate_rps=rate, entry_request_rate_rps=rate, peak_request_rate_rps=peak,
                       in_flight_change_rps=0.0, prompt_tokens_rps=0.0, output_tokens_rps=0.0,
                       running_requests=0.0, waiting_requests=obs.waiting_requests if entry else 0.0)

    def _starts(self) -> tuple[ReplicaStart, ...]:
        """Cold starts of the pods serving now, as the operator reads them from pod timestamps
        (tidal/controllers/modeldeployment_observe.py ``start_times``), so both shells hand the core
        the same kind of record: pending time counts as scheduling, weights load cannot be told from
        engine init, and a pull under IMAGE_CACHED_BELOW_S means a cached image. Pods that existed
        when replay began have no start."""
        out = []
        for pool in self.pools:
            for pod in self.cluster.pods_in(pool, READY, DRAINING):
                cs = pod.cold_start
                if cs is None or pod.prewarmed or pod.scheduled_s is None:
                    continue
                out.append(ReplicaStart(
                    f"pod-{pod.id}", pool, pod.klass if self.mixed else self.cfg.accelerator,
                    pod.node.name if pod.node else None,
                    scheduling_s=pod.scheduled_s - pod.created_s + cs.scheduling_s, image_pull_s=cs.image_s,
                    weights_load_s=0.0, engine_init_s=cs.weights_s + cs.engine_init_s,
                    image_cached=cs.image_s < IMAGE_CACHED_BELOW_S))
        return tuple(out)

    def _tick(self, now_s: float) -> None:
        if self.cfg.engine.kv_metrics_sample:
            for pod in self.cluster.pods_in_any_pool(READY, DRAINING):
                self._collect_residency(pod)
        in_flight = {pool: self._in_flight(pool) for pool in self._metrics}
        for pool, m in self._metrics.items():
            m.close(now_s, float(sum(in_flight[pool])))
        self._arrivals_window.close(now_s)
        self._latency_window.close(now_s)
        obs = self.observe(now_s, in_flight)
        decision, self._policy_state = self.autoscaler.decide(obs, self._policy_state)
        self._record(now_s, obs, decision)
        self._apply(decision.desired_replicas, now_s, decision.details.get("placement"))

    def _record(self, now_s: float, obs: Observation, decision: Decision) -> None:
        tl = self.timeline
        tl["t_s"].append(now_s)
        tl["arrival_rps"].append(self._arrivals_window.arrival_rate(now_s, 0.0))
        for pool in self.pools:
            po = obs.pools[pool]
            tl[f"{pool}.ready"].append(po.ready_replicas)
            tl[f"{pool}.starting"].append(po.starting_replicas)
            tl[f"{pool}.pending"].append(po.pending_replicas)
            tl[f"{pool}.draining"].append(po.draining_replicas)
            tl[f"{pool}.desired"].append(int(decision.desired_replicas.get(pool, po.current_replicas)))
        lw = self._latency_window
        tl["ttft_p50_s"].append(lw.latency_percentile("ttft_s", 0.5))
        tl["ttft_p99_s"].append(lw.latency_percentile("ttft_s", 0.99))
        tl["tpot_p50_s"].append(lw.latency_percentile("tpot_s", 0.5))
        tl["tpot_p99_s"].append(lw.latency_percentile("tpot_s", 0.99))
        self.decisions.append({
            "t_s": now_s, "desired": dict(decision.desired_replicas),
            "reasons": [{"code": r.code, "message": r.message, "pool": r.pool}
                        for r in decision.reasons],
            "forecast_rps": decision.forecast_rps})

    # -- main loop -----------------------------------------------------------------------------
    def run(self, progress: Callable[[float, float], None] | None = None) -> SimResult:
        wall0 = time.perf_counter()
        reqs = self.requests
        n = len(reqs)
        last_arrival = reqs[-1].arrival_s if n else 0.0
        horizon = last_arrival + self.cfg.drain_horizon_s
        # The deployment exists at its initial size when replay starts (pre-warmed pods).
        initial = self.cfg.initial_replicas
        layout: Mapping[str, Mapping[str, int]] | None = None
        if initial is None:
            obs0 = Observation(now_s=0.0, pools={p: PoolObservation(ready_replicas=0)
                                                 for p in self.pools})
            if self.mixed:
                obs0 = self._with_classes(obs0)
            decision, self._policy_state = self.autoscaler.decide(obs0, None)
            initial = decision.desired_replicas
            layout = decision.details.get("placement") if self.mixed else None
        for pool in self.pools:
            by_class = (dict(layout[pool]) if layout is not None and pool in layout
                        else {None: int(initial.get(pool, 0))})
            for klass, count in by_class.items():
                for _ in range(int(count)):
                    pod = self.cluster.create_pod(pool, self.cfg.tp, 0.0, klass)
                    if self.cluster.start_prewarmed(pod, 0.0):
                        pod.engine = self._make_engine(pod)
                        self._ready[pool].append(pod)
        self._start_pending(0.0)
        self._push(self.cfg.tick_s, _EV_TICK)
        i = 0
        heap = self._heap
        next_progress = 0.0
        while True:
            next_arrival = reqs[i].arrival_s if i < n else math.inf
            if heap and heap[0][0] <= next_arrival:
                t, kind, _, a, b = heapq.heappop(heap)
                if t > horizon:
                    self.now_s = horizon
                    break
                self.now_s = t
                if kind == _EV_ENGINE:
                    pod: Pod = a
                    engine: Engine = pod.engine  # type: ignore[assignment]
                    if engine.version != b:
                        continue
                    engine.wake(t)
                    self._kick(pod)
                    if pod.phase == DRAINING and engine.num_requests == 0:
                        self._terminate(pod, t)
                elif kind == _EV_KV:
                    self._on_kv_arrived(a, t)
                elif kind == _EV_KILL:
                    self._kill(a, t)
                elif kind == _EV_READY:
                    self._on_pod_ready(a, t)
                elif kind == _EV_HOLD_TIMEOUT:
                    self._hold_timeout(a)
                elif kind == _EV_DEMAND:
                    self._demand_tick(t)
                else:
                    self._tick(t)
                    if i < n or self._outstanding > 0:
                        self._push(t + self.cfg.tick_s, _EV_TICK)
                    if progress is not None and t >= next_progress:
                        progress(min(t, last_arrival), last_arrival)
                        next_progress = t + 60.0
            elif i < n:
                self.now_s = next_arrival
                self._on_arrival(reqs[i], next_arrival)
                i += 1
            else:
                break
            if i >= n and self._outstanding == 0:
                break           # everything replayed and finished
        if progress is not None:
            progress(last_arrival, last_arrival)
        return self._result(time.perf_counter() - wall0)

    # -- results ------------------------------------------------------------------------------
    def _result(self, wall_s: float) -> SimResult:
        from tidal.sim.summary import build_result
        return build_result(self, wall_s)
