"""One keep-alive decision for a ServerlessFunction: the single entry point both shells call.

:func:`decide_function` ``(policy_of, observation, state) -> (decision, state)``:

1. learn the instance starts carried in ``observation.starts`` (each uid once; the operator reads
   them from its pods' timestamps, the simulator from its instances) into a bounded sample;
2. the function's cold start is the median of that sample (:func:`cold_start_lead_s`), or
   :data:`~tidal.policies.defaults.FUNCTION_COLD_START_S` before any start was seen;
3. ``policy_of(cold start)`` builds the :class:`~tidal.policies.keepalive.KeepAlivePolicy`: the
   cold start is its pre-warm lead, and when it exceeds the SLO latency the SLO's percentile
   floors the keep-alive end (:func:`slo_tail_percentile`);
4. the policy decides behind the :class:`~tidal.policies.guards.ObservationGuard`.

Why the median: it is the lead the simulator always used (its cold-start model's median), and one
slow start (an image pull on a new node) does not move it. Pure: no I/O, no clock.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tidal.policies.defaults import (
    FUNCTION_COLD_START_S,
    FUNCTION_COLD_START_SAMPLES,
    FUNCTION_COUNTED_STARTS,
)
from tidal.policies.guards import ObservationGuard
from tidal.policies.interface import POOL_FUNCTION, Decision, Observation, ReplicaStart
from tidal.policies.keepalive import (
    KeepAlivePolicy,
    KeepAliveState,
    state_from_dict,
    state_to_dict,
    worth_persisting,
)

STARTS_KEY = "coldStarts"
"""Key of the learnt starts in the persisted keep-alive state's JSON (the keep-alive state's own
reader ignores it)."""


def start_seconds(start: ReplicaStart) -> float:
    """Time from an instance's creation until it served: the sum of its phases."""
    return start.scheduling_s + start.image_pull_s + start.weights_load_s + start.engine_init_s


def cold_start_lead_s(samples_s: Sequence[float]) -> float:
    """The function's cold start from its observed starts: their median, or the default
    (:data:`FUNCTION_COLD_START_S`) before any was seen."""
    return float(statistics.median(samples_s)) if samples_s else FUNCTION_COLD_START_S


def slo_tail_percentile(
    latency_s: float | None, percentile: float, cold_start_s: float
) -> float | None:
    """The percentile of idle times the keep-alive must cover for the SLO, or None (no floor).

    An invocation that waits a cold start longer than the latency target misses it, so at most
    ``100 - percentile`` % of the invocations may wait one: the keep-alive must then outlast the
    ``percentile``-th percentile of the idle times. A cold start within the target costs the SLO
    nothing and adds no floor (``latency_s`` None: no absolute target)."""
    if latency_s is None or cold_start_s <= latency_s:
        return None
    return percentile


@dataclass(frozen=True)
class ColdStarts:
    """What a function learnt of its instance starts (bounded, immutable)."""

    samples_s: tuple[float, ...] = ()
    """Durations of the most recent starts, oldest first (at most :data:`FUNCTION_COLD_START_SAMPLES`)."""
    counted: tuple[str, ...] = ()
    """Uids of the starts already learnt, oldest first (at most :data:`FUNCTION_COUNTED_STARTS`)."""

    @property
    def lead_s(self) -> float:
        return cold_start_lead_s(self.samples_s)

    def learn(self, starts: Iterable[ReplicaStart]) -> ColdStarts:
        """The starts of pool ``function`` not learnt before added (each uid once)."""
        seen = set(self.counted)
        samples, counted = list(self.samples_s), list(self.counted)
        for start in starts:
            if start.pool != POOL_FUNCTION or start.uid in seen:
                continue
            seen.add(start.uid)
            counted.append(start.uid)
            samples.append(max(0.0, start_seconds(start)))
        if len(counted) == len(self.counted):
            return self
        return ColdStarts(
            tuple(samples[-FUNCTION_COLD_START_SAMPLES:]), tuple(counted[-FUNCTION_COUNTED_STARTS:])
        )

    def to_dict(self) -> dict[str, Any]:
        return {"samplesS": list(self.samples_s), "counted": list(self.counted)}

    @classmethod
    def from_dict(cls, data: Any) -> ColdStarts:
        """The starts :meth:`to_dict` wrote; empty when ``data`` is not such a record."""
        try:
            samples = [float(v) for v in (data or {}).get("samplesS") or []]
            counted = [str(v) for v in (data or {}).get("counted") or []]
        except (AttributeError, TypeError, ValueError):
            return cls()
        samples = [v for v in samples if v >= 0 and v == v and v != float("inf")]
        return cls(
            tuple(samples[-FUNCTION_COLD_START_SAMPLES:]), tuple(counted[-FUNCTION_COUNTED_STARTS:])
        )


@dataclass(frozen=True)
class FunctionState:
    """What :func:`decide_function` remembers between ticks."""

    keepalive: KeepAliveState | None = None
    starts: ColdStarts = field(default_factory=ColdStarts)
    policy: KeepAlivePolicy | None = None
    """The policy of the previous tick (its learnt windows are cached in ``keepalive``)."""


def decide_function(
    policy_of: Callable[[float], KeepAlivePolicy], observation: Observation, state: Any
) -> tuple[Decision, FunctionState]:
    """Learn the observation's instance starts, build the policy for the learnt cold start and
    decide. ``state`` is the previous :class:`FunctionState` (anything else: a fresh one)."""
    st = state if isinstance(state, FunctionState) else FunctionState()
    starts = st.starts.learn(observation.starts)
    policy = policy_of(starts.lead_s)
    keepalive = st.keepalive
    if keepalive is not None and keepalive.learned is not None and st.policy is not None and (
        replace(st.policy, cold_start_s=policy.cold_start_s) != policy
    ):
        # The windows were learnt under other settings (an SLO floor that came or went, a spec
        # change): learn them again from the same histogram.
        keepalive = replace(keepalive, learned=policy.learn(keepalive.histogram, keepalive.memory_mb))
    decision, new_keepalive = ObservationGuard(policy).decide(observation, keepalive)
    return decision, FunctionState(new_keepalive, starts, policy)


def function_state_to_dict(state: FunctionState) -> dict[str, Any] | None:
    """The JSON a shell persists: the keep-alive state with the learnt starts beside it."""
    if state.keepalive is None:
        return None
    return {**state_to_dict(state.keepalive), STARTS_KEY: state.starts.to_dict()}


def function_state_from_dict(data: Any) -> FunctionState | None:
    """The state :func:`function_state_to_dict` wrote (a state written before starts were learnt
    has none), or None when ``data`` is no keep-alive state."""
    keepalive = state_from_dict(data)
    if keepalive is None:
        return None
    starts = ColdStarts.from_dict(data.get(STARTS_KEY) if isinstance(data, Mapping) else None)
    return FunctionState(keepalive, starts)


def function_worth_persisting(before: FunctionState | None, after: FunctionState) -> bool:
    """Whether a shell should write the state now: the keep-alive state says so
    (:func:`~tidal.policies.keepalive.worth_persisting`), or a start was learnt."""
    if after.keepalive is None:
        return False
    if before is None or before.keepalive is None:
        return True
    return worth_persisting(before.keepalive, after.keepalive) or before.starts != after.starts


@dataclass(frozen=True)
class LearningKeepAlive:
    """An :class:`~tidal.policies.interface.Autoscaler` for shells that run a fixed policy
    configuration (the serverless simulator): :func:`decide_function` with ``base`` at the learnt
    cold start and the SLO floor from ``slo_latency_s`` / ``slo_percentile``."""

    base: KeepAlivePolicy
    slo_latency_s: float | None = None
    slo_percentile: float = 99.0

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def inner(self) -> KeepAlivePolicy:
        """The policy at the default cold start (benches derive variants from it)."""
        return self.policy_of(FUNCTION_COLD_START_S)

    def policy_of(self, cold_start_s: float) -> KeepAlivePolicy:
        return replace(
            self.base,
            cold_start_s=cold_start_s,
            slo_tail_percentile=slo_tail_percentile(
                self.slo_latency_s, self.slo_percentile, cold_start_s
            ),
        )

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, FunctionState]:
        return decide_function(self.policy_of, observation, state)
