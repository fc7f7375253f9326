"""Event-driven replay of serverless invocations on function instances, driven by any Autoscaler.

Each function has its own instances (no shared node capacity is modelled). An
invocation runs on a ready instance with a free slot (``concurrency`` slots per
instance); otherwise it joins an instance that is starting and has a free slot;
otherwise a new instance is started for it (a cold start: it waits the whole
cold-start time); if the function is at ``max_instances`` it queues FIFO for
the next free slot. An instance that runs nothing is idle; the decision below
says when idle instances go.

The activator (:class:`ActivatorModel`, on by default as in a cluster installed with it,
docs/activator.md): an invocation that arrives while its function has no *ready* instance is
held by the activator, so its wait is the instance's remaining start time. Beyond
``queue_limit`` held invocations of one function it is refused at once (503, counted as
``rejected_queue_full``); one still held ``hold_timeout_s`` after it arrived is refused then
(``rejected_timeout``). A refused invocation never runs and misses its SLO. ``activator=None``
models a platform without one (every invocation waits however long it takes).

At every tick (``tick_s``, HPA's 15 s as in ``tidal.sim.runner``) the runner
builds a :class:`FunctionPoolObservation` per function (pool ``"function"``),
with the instances that became ready since the previous tick in
``Observation.starts`` (their cold start as the total of a ``ReplicaStart``, as
the operator reads it from a pod), calls ``autoscaler.decide(observation,
state)`` with that function's own state and applies the decision:

- ``desired_replicas["function"]`` is the number of instances wanted now. If
  the function has fewer, new ones are started at once (pre-warm); if it has
  more, idle ones above the count are removed (oldest idle first). It never
  caps demand: an invocation that finds no instance still cold-starts one. A
  decision without the key keeps the previous count (0 at the start).
- ``details["idle_timeout_s"]`` (``DETAIL_IDLE_TIMEOUT_S``), when present, lets
  the platform manage idle instances as FaaS platforms do: an instance above the
  desired count is removed only once it has been idle that long, in continuous
  time from the end of its last execution (or from becoming ready), not rounded
  to ticks (``inf``: never). A changed timeout applies at once to idle
  instances. Without the key (policies that manage instances through the count,
  like ``tidal.policies.keepalive.KeepAlivePolicy``, or any LLM autoscaler)
  idle instances above the count are removed at the tick, as a Deployment's
  replica count would.

Same workload, policy, config and seed give identical results: cold starts are
drawn from one generator per function seeded by ``(seed, function position)``,
so the k-th instance of a function gets the same draw under every policy.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tidal.activator.settings import HOLD_TIMEOUT_S, QUEUE_LIMIT
from tidal.api.serverlessfunction import DEFAULT_SLO_PERCENTILE
from tidal.policies.baselines.keepalive_fixed import DETAIL_IDLE_TIMEOUT_S
from tidal.policies.interface import POOL_FUNCTION, Autoscaler, Observation, ReplicaStart
from tidal.sim.serverless.coldstart import HUAWEI_R1, FunctionColdStartModel
from tidal.sim.serverless.observation import FunctionPoolObservation
from tidal.sim.serverless.workload import FunctionWorkload

# Kubernetes HPA default sync period, the operator's default tick (as tidal.sim.runner).
DEFAULT_TICK_S = 15.0
# One-minute window, the usual Prometheus rate() range (as tidal.sim.runner).
DEFAULT_METRICS_WINDOW_S = 60.0
# One invocation per instance at a time: Azure Functions consumption plan and AWS Lambda.
DEFAULT_CONCURRENCY = 1
# Latency budget on top of an invocation's own run time: 1 s, the limit for the user's
# flow of thought to stay uninterrupted (Nielsen, "Response Times: The 3 Important
# Limits", 1993). Cold starts of the Huawei model (median ~1 s) mostly break it.
DEFAULT_SLO_SLACK_S = 1.0

_FINISH, _READY, _EXPIRE, _TICK = 0, 1, 2, 3


def _discard(items: list, item: object) -> None:
    """Remove ``item`` (known to be present); O(1) when it is last, the common case."""
    if items[-1] is item:
        items.pop()
    else:
        items.remove(item)
_STARTING, _READY_PHASE, _GONE = 0, 1, 2


@dataclass(frozen=True)
class FunctionSLO:
    """Per-invocation latency target, cold start and queueing included.

    ``latency_s`` set: an absolute end-to-end target (as ``ServerlessFunction.spec.slo``).
    Otherwise the target is the invocation's own run time plus ``slack_s``, so
    functions that run for minutes are judged on the delay the platform added.
    """

    latency_s: float | None = None
    slack_s: float = DEFAULT_SLO_SLACK_S
    percentile: float = DEFAULT_SLO_PERCENTILE
    """Of an absolute target (spec.slo.percentile): what tidal's auto policy keeps functions for
    when their cold start exceeds the target (attainment is reported as a fraction either way)."""

    def __post_init__(self) -> None:
        if self.latency_s is not None and self.latency_s < 0:
            raise ValueError(f"SLO latency must be >= 0 s, got {self.latency_s}")
        if not 0 < self.percentile < 100:
            raise ValueError(f"SLO percentile must be in (0, 100), got {self.percentile}")
        if self.slack_s < 0:
            raise ValueError(f"SLO slack must be >= 0 s, got {self.slack_s}")

    def targets(self, duration_s: np.ndarray) -> np.ndarray:
        if self.latency_s is not None:
            return np.full(len(duration_s), self.latency_s)
        return duration_s + self.slack_s

    def describe(self) -> str:
        return (f"p{self.percentile:g} latency <= {self.latency_s:g} s" if self.latency_s is not None
                else f"latency <= run time + {self.slack_s:g} s")


REJECTED_QUEUE_FULL, REJECTED_TIMEOUT = 1, 2
"""Codes in ``FunctionSimResult.invocations["rejected"]`` (0: served)."""


@dataclass(frozen=True)
class ActivatorModel:
    """The activator's limits, with the defaults of ``tidal activator`` (tidal/activator/settings.py)."""

    queue_limit: int = QUEUE_LIMIT
    hold_timeout_s: float = HOLD_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.queue_limit < 1:
            raise ValueError(f"activator queue_limit must be >= 1, got {self.queue_limit}")
        if not self.hold_timeout_s > 0:
            raise ValueError(f"activator hold_timeout_s must be > 0, got {self.hold_timeout_s}")


@dataclass(frozen=True)
class FunctionSimConfig:
    concurrency: int = DEFAULT_CONCURRENCY
    max_instances: int | None = None
    tick_s: float = DEFAULT_TICK_S
    metrics_window_s: float = DEFAULT_METRICS_WINDOW_S
    cold_start: FunctionColdStartModel = HUAWEI_R1
    slo: FunctionSLO = FunctionSLO()
    seed: int = 0
    activator: ActivatorModel | None = ActivatorModel()

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_instances is not None and self.max_instances < 1:
            raise ValueError(f"max_instances must be >= 1 or None, got {self.max_instances}")
        if self.tick_s <= 0 or self.metrics_window_s <= 0:
            raise ValueError("tick_s and metrics_window_s must be > 0")


class _Instance:
    __slots__ = ("id", "fn", "phase", "created_s", "ready_s", "removed_s", "prewarm",
                 "cold_start_s", "active", "reserved", "pending", "idle_since", "idle_total",
                 "in_free", "in_idle")

    def __init__(self, iid: int, fn: "_Function", now: float, cold_start_s: float,
                 prewarm: bool) -> None:
        self.id = iid
        self.fn = fn
        self.phase = _STARTING
        self.created_s = now
        self.ready_s = now + cold_start_s
        self.removed_s: float | None = None
        self.prewarm = prewarm
        self.cold_start_s = cold_start_s
        self.active = 0
        self.reserved = 0
        self.pending: list[int] = []
        self.idle_since: float | None = None
        self.idle_total = 0.0
        self.in_free = False
        self.in_idle = False


class _Function:
    """Mutable per-function platform state (local to one Simulation)."""

    __slots__ = ("idx", "memory_mb", "rng", "free", "starting_free", "idle", "queue", "live",
                 "n_ready", "n_starting", "running", "waiting", "floor", "idle_timeout_s",
                 "state", "window", "arrivals_tick", "cold_tick", "last_arrival_s",
                 "idle_since_s", "gaps", "peak_tick", "starts")

    def __init__(self, idx: int, memory_mb: float, seed: int, window_ticks: int) -> None:
        self.idx = idx
        self.memory_mb = memory_mb
        self.rng = np.random.default_rng((seed, 1, idx))
        self.free: list[_Instance] = []
        self.starting_free: list[_Instance] = []
        self.idle: list[_Instance] = []
        self.queue: deque[int] = deque()
        self.live = 0
        self.n_ready = 0
        self.n_starting = 0
        self.running = 0
        self.waiting = 0
        self.floor = 0
        self.idle_timeout_s: float | None = None
        self.state: Any = None
        self.window: deque[int] = deque(maxlen=window_ticks)
        self.arrivals_tick = 0
        self.cold_tick = 0
        self.last_arrival_s: float | None = None
        self.idle_since_s: float | None = None
        self.gaps: list[float] = []
        self.peak_tick = 0
        self.starts: list[ReplicaStart] = []


@dataclass
class FunctionSimResult:
    """Outcome of one replay: per-invocation and per-instance arrays, a timeline, the summary."""

    summary: dict[str, Any]
    invocations: dict[str, np.ndarray]
    instances: dict[str, np.ndarray]
    timeline: dict[str, list]
    per_function: dict[str, np.ndarray]
    wall_s: float = 0.0


class FunctionSimulation:
    """One replay of ``workload`` under ``autoscaler`` with ``config``."""

    def __init__(self, workload: FunctionWorkload, autoscaler: Autoscaler,
                 config: FunctionSimConfig = FunctionSimConfig()) -> None:
        self.workload = workload
        self.autoscaler = autoscaler
        self.cfg = config
        window_ticks = max(1, math.ceil(config.metrics_window_s / config.tick_s))
        self.functions = [
            _Function(i, float(m), config.seed, window_ticks)
            for i, m in enumerate(workload.memory_mb)]
        n = workload.invocations
        self._arrival = workload.arrival_s.tolist()
        self._fn_of = workload.function_index.tolist()
        self._dur = workload.duration_s.tolist()
        self.start_s = [math.nan] * n
        self.finish_s = [math.nan] * n
        self.cold = [False] * n
        self.triggered = [False] * n
        self.held = [False] * n
        self.rejected = [0] * n
        self.instance_of = [-1] * n
        self.instances: list[_Instance] = []
        self._heap: list[tuple] = []
        self._seq = 0
        self.now_s = 0.0
        self.timeline: dict[str, list] = {k: [] for k in (
            "t_s", "arrivals", "cold_starts", "instances", "ready", "idle", "starting",
            "running", "floor")}
        self._ran = False
        self._arrived = 0
        self._finished = 0
        self._cost_at: dict[float, tuple[list[float], list[float]]] = {}

    # -- events -----------------------------------------------------------------------------
    def _push(self, t: float, kind: int, a: Any = None, b: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, a, b))

    def run(self, progress: Callable[[float, float], None] | None = None) -> FunctionSimResult:
        """Replay to the end; returns the result (a Simulation runs once)."""
        if self._ran:
            raise RuntimeError("a FunctionSimulation runs once; build a new one")
        self._ran = True
        from tidal.sim.serverless.results import build_result

        wall0 = time.perf_counter()
        horizon = self.workload.horizon_s
        arrival = self._arrival
        n = len(arrival)
        i = 0
        heap = self._heap
        self._push(0.0, _TICK)
        last_progress = -1.0
        snaps = sorted({self.workload.measure_from_s, horizon})
        while True:
            if snaps and (heap or i < n) and min(
                    heap[0][0] if heap else math.inf, arrival[i] if i < n else math.inf
            ) >= snaps[0]:
                at = snaps.pop(0)
                self._cost_at[at] = self._snapshot_cost(at)
            if heap and (i >= n or heap[0][0] <= arrival[i]):
                t = heap[0][0]
                if i >= n and t >= horizon and self._inflight() == 0:
                    break
                t, _, kind, a, b = heapq.heappop(heap)
                self.now_s = t
                if kind == _FINISH:
                    self._on_finish(a, b, t)
                elif kind == _READY:
                    self._on_ready(a, t)
                elif kind == _EXPIRE:
                    if a.phase == _READY_PHASE and a.active == 0 and a.idle_since == b:
                        self._maybe_expire(a, t)
                else:
                    self._on_tick(t)
                    if progress is not None and t - last_progress >= 60.0:
                        last_progress = t
                        progress(min(t, horizon), horizon)
                    if i < n or t + self.cfg.tick_s < horizon or self._inflight() > 0:
                        self._push(t + self.cfg.tick_s, _TICK)
            elif i < n:
                self.now_s = arrival[i]
                self._on_arrival(i, arrival[i])
                i += 1
            else:
                break
        for at in snaps:
            self._cost_at[at] = self._snapshot_cost(at)
        finished = [f for f in self.finish_s if not math.isnan(f)]
        end_s = max([horizon, self.now_s] + ([max(finished)] if finished else []))
        self.now_s = end_s
        if progress is not None:
            progress(horizon, horizon)
        return build_result(self, end_s, time.perf_counter() - wall0)

    def _snapshot_cost(self, at_s: float) -> tuple[list[float], list[float]]:
        """Each instance's life and idle time inside ``[0, at_s)``, taken when time reaches it.

        Cost is compared over the measured window only: idle time after it is an
        artefact of the replay ending (in production more invocations would come).
        """
        life, idle = [], []
        for x in self.instances:
            end = at_s if x.removed_s is None else min(x.removed_s, at_s)
            life.append(max(0.0, end - x.created_s))
            idle.append(x.idle_total + (at_s - x.idle_since if x.idle_since is not None
                                        else 0.0))
        return life, idle

    def _inflight(self) -> int:
        """Invocations arrived and not finished, over all functions."""
        return self._arrived - self._finished

    # -- invocations ------------------------------------------------------------------------
    def _on_arrival(self, k: int, t: float) -> None:
        fn = self.functions[self._fn_of[k]]
        self._arrived += 1
        fn.arrivals_tick += 1
        fn.peak_tick = max(fn.peak_tick, fn.running + fn.waiting + 1)
        fn.last_arrival_s = t
        if fn.idle_since_s is not None:
            fn.gaps.append(t - fn.idle_since_s)
            fn.idle_since_s = None
        c = self.cfg.concurrency
        if fn.free:
            inst = fn.free[-1] if c == 1 else max(fn.free, key=lambda x: (x.active, x.id))
            self._start(k, inst, t, cold=False)
            return
        activator = self.cfg.activator
        if activator is not None and fn.n_ready == 0:
            if fn.waiting >= activator.queue_limit:
                self._reject(k, REJECTED_QUEUE_FULL)
                return
            self.held[k] = True
        fn.waiting += 1
        if fn.starting_free:
            inst = fn.starting_free[-1]
            self._reserve(inst, k)
            return
        if self.cfg.max_instances is None or fn.live < self.cfg.max_instances:
            inst = self._new_instance(fn, t, prewarm=False)
            self.triggered[k] = True
            self._reserve(inst, k)
            return
        fn.queue.append(k)

    def _reject(self, k: int, code: int) -> None:
        """The activator refuses invocation ``k`` (503): it never runs."""
        self.rejected[k] = code
        self.cold[k] = False
        self._finished += 1

    def _timed_out(self, k: int, t: float) -> bool:
        """Whether held invocation ``k`` was refused before it could start at ``t``."""
        activator = self.cfg.activator
        if activator is None or not self.held[k] or t - self._arrival[k] <= activator.hold_timeout_s:
            return False
        self._reject(k, REJECTED_TIMEOUT)
        return True

    def _reserve(self, inst: _Instance, k: int) -> None:
        inst.reserved += 1
        inst.pending.append(k)
        self.cold[k] = True
        inst.fn.cold_tick += 1
        if inst.reserved >= self.cfg.concurrency and inst in inst.fn.starting_free:
            _discard(inst.fn.starting_free, inst)

    def _start(self, k: int, inst: _Instance, t: float, *, cold: bool) -> None:
        fn = inst.fn
        if inst.active == 0 and inst.idle_since is not None:
            inst.idle_total += t - inst.idle_since
            inst.idle_since = None
            if inst.in_idle:
                _discard(fn.idle, inst)
                inst.in_idle = False
        inst.active += 1
        if inst.active >= self.cfg.concurrency and inst.in_free:
            _discard(fn.free, inst)
            inst.in_free = False
        self.start_s[k] = t
        finish = t + self._dur[k]
        self.finish_s[k] = finish
        self.instance_of[k] = inst.id
        self.cold[k] = cold
        fn.running += 1
        self._push(finish, _FINISH, inst, k)

    def _on_finish(self, inst: _Instance, k: int, t: float) -> None:
        fn = inst.fn
        self._finished += 1
        fn.running -= 1
        inst.active -= 1
        while fn.queue:
            fn.waiting -= 1
            queued = fn.queue.popleft()
            if not self._timed_out(queued, t):
                self._start(queued, inst, t, cold=False)
                return
        self._settle(inst, t)
        if fn.running == 0 and fn.waiting == 0:
            fn.idle_since_s = t

    def _settle(self, inst: _Instance, t: float) -> None:
        """After a slot of a ready instance frees: back to the free list, maybe idle."""
        fn = inst.fn
        if inst.active < self.cfg.concurrency and not inst.in_free:
            fn.free.append(inst)
            inst.in_free = True
        if inst.active == 0:
            inst.idle_since = t
            fn.idle.append(inst)
            inst.in_idle = True
            self._maybe_expire(inst, t)

    # -- instances --------------------------------------------------------------------------
    def _new_instance(self, fn: _Function, t: float, *, prewarm: bool) -> _Instance:
        cold_start_s = sum(self.cfg.cold_start.sample(fn.rng))
        inst = _Instance(len(self.instances), fn, t, cold_start_s, prewarm)
        self.instances.append(inst)
        fn.live += 1
        fn.n_starting += 1
        fn.starting_free.append(inst)
        self._push(inst.ready_s, _READY, inst)
        return inst

    def _on_ready(self, inst: _Instance, t: float) -> None:
        fn = inst.fn
        inst.phase = _READY_PHASE
        fn.n_starting -= 1
        fn.n_ready += 1
        # What the operator reads from a pod's timestamps; only the total is modelled.
        fn.starts.append(ReplicaStart(str(inst.id), POOL_FUNCTION, "", None, 0.0, 0.0, 0.0,
                                      inst.cold_start_s))
        if inst in fn.starting_free:
            _discard(fn.starting_free, inst)
        pending, inst.pending = inst.pending, []
        for k in pending:
            fn.waiting -= 1
            if not self._timed_out(k, t):
                self._start(k, inst, t, cold=True)
        while fn.queue and inst.active < self.cfg.concurrency:
            fn.waiting -= 1
            queued = fn.queue.popleft()
            if not self._timed_out(queued, t):
                self._start(queued, inst, t, cold=False)
        self._settle(inst, t)
        if fn.running == 0 and fn.waiting == 0 and fn.idle_since_s is None:
            fn.idle_since_s = t  # every held invocation timed out: idle again

    def _maybe_expire(self, inst: _Instance, t: float) -> None:
        """Apply the platform's idle timeout to an idle instance (no-op without one)."""
        fn = inst.fn
        if fn.idle_timeout_s is None:
            return
        deadline = inst.idle_since + fn.idle_timeout_s
        if deadline <= t:
            if fn.live > fn.floor:
                self._remove(inst, t)
        elif not math.isinf(deadline):
            self._push(deadline, _EXPIRE, inst, inst.idle_since)

    def _remove(self, inst: _Instance, t: float) -> None:
        fn = inst.fn
        inst.phase = _GONE
        inst.removed_s = t
        inst.idle_total += t - inst.idle_since
        inst.idle_since = None
        if inst.in_free:
            _discard(fn.free, inst)
            inst.in_free = False
        if inst.in_idle:
            _discard(fn.idle, inst)
            inst.in_idle = False
        fn.live -= 1
        fn.n_ready -= 1

    # -- autoscaler -------------------------------------------------------------------------
    def _observe(self, fn: _Function, t: float) -> Observation:
        fn.window.append(fn.arrivals_tick)
        span = max(1e-9, min(self.cfg.metrics_window_s, t))
        pool = FunctionPoolObservation(
            ready_replicas=fn.n_ready, starting_replicas=fn.n_starting,
            request_rate_rps=sum(fn.window) / span, running_requests=float(fn.running),
            waiting_requests=float(fn.waiting), idle_replicas=len(fn.idle),
            arrivals_since_last_tick=fn.arrivals_tick, cold_starts_since_last_tick=fn.cold_tick,
            last_arrival_s=fn.last_arrival_s, idle_since_s=fn.idle_since_s,
            idle_gaps_s=tuple(fn.gaps), peak_in_flight_since_last_tick=max(
                fn.peak_tick, fn.running + fn.waiting), memory_mb=fn.memory_mb,
            concurrency=self.cfg.concurrency)
        starts, fn.gaps, fn.starts = tuple(fn.starts), [], []
        fn.peak_tick = fn.running + fn.waiting
        return Observation(now_s=t, pools={POOL_FUNCTION: pool}, starts=starts)

    def _on_tick(self, t: float) -> None:
        arrivals = cold = 0
        name = getattr(self.autoscaler, "name", type(self.autoscaler).__name__)
        for fn in self.functions:
            arrivals += fn.arrivals_tick
            cold += fn.cold_tick
            decision, fn.state = self.autoscaler.decide(self._observe(fn, t), fn.state)
            fn.arrivals_tick = fn.cold_tick = 0
            self._apply(fn, decision.desired_replicas.get(POOL_FUNCTION),
                        decision.details.get(DETAIL_IDLE_TIMEOUT_S), t, name)
        self._record(t, arrivals, cold)

    def _apply(self, fn: _Function, desired: int | None, timeout: Any, t: float,
               name: str) -> None:
        if desired is not None:
            if desired < 0:
                raise ValueError(f"policy {name!r} asked for {desired} instances of function "
                                 f"{fn.idx}; desired_replicas['function'] must be >= 0")
            fn.floor = int(desired)
            if self.cfg.max_instances is not None:
                fn.floor = min(fn.floor, self.cfg.max_instances)
        if timeout is not None:
            timeout = float(timeout)
            if math.isnan(timeout) or timeout < 0:
                raise ValueError(f"policy {name!r} returned details['{DETAIL_IDLE_TIMEOUT_S}'] = "
                                 f"{timeout!r}; it must be seconds >= 0 (inf: never)")
        if timeout != fn.idle_timeout_s:
            fn.idle_timeout_s = timeout
            for inst in list(fn.idle):
                if inst.phase == _READY_PHASE:
                    self._maybe_expire(inst, t)
        if fn.idle and fn.live > fn.floor:
            # fn.idle is in the order instances went idle: oldest first.
            for inst in list(fn.idle):
                if fn.live <= fn.floor or (timeout is not None and inst.idle_since + timeout > t):
                    break
                self._remove(inst, t)
        while fn.live < fn.floor:
            self._new_instance(fn, t, prewarm=True)

    def _record(self, t: float, arrivals: int, cold: int) -> None:
        tl = self.timeline
        fns = self.functions
        tl["t_s"].append(t)
        tl["arrivals"].append(arrivals)
        tl["cold_starts"].append(cold)
        tl["instances"].append(sum(f.live for f in fns))
        tl["ready"].append(sum(f.n_ready for f in fns))
        tl["idle"].append(sum(len(f.idle) for f in fns))
        tl["starting"].append(sum(f.n_starting for f in fns))
        tl["running"].append(sum(f.running for f in fns))
        tl["floor"].append(sum(f.floor for f in fns))
