"""HeteroScale-style baseline: decode tokens/s the one signal, prefill and decode scaled together.

After Li et al., "Taming the Chaos: Coordinated Autoscaling for Heterogeneous and Disaggregated
LLM Inference" (ByteDance, arXiv:2508.19559, 2025): a production study found decode
tokens-per-second (TPS) the most robust scaling signal for P/D-disaggregated serving; the
metrics-driven policy applies proportional control to it and scales the prefill and decode pools
together at a fixed P/D ratio so the architecture stays balanced.

Here: ``decode replicas = ceil(decode output tokens/s / target_decode_tps_per_replica)``,
skipped while the per-replica TPS is within a 10 % band of the target (HPA-style dead band);
``prefill replicas = ceil(decode replicas x pd_ratio)``. The target TPS per decode replica
and the P/D ratio come from profiling (:mod:`tidal.policies.baselines.profile` or the bench),
never from the simulator. A unified pool is scaled on its own output tokens/s with the same
target. A tick without the TPS metric keeps the current sizes.

What the parts of the paper available do not fix is tidal's choice and marked so in
``tidal.policies.baselines.defaults``: the control period (15 s) and the dead band (0.1). The
paper's topology-aware scheduling, heterogeneous hardware pools and its latency-based negative
feedback are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.hpa import validate_bounds, within_tolerance
from tidal.policies.interface import (POOL_DECODE, POOL_PREFILL, POOL_UNIFIED, Decision,
                                      Observation, Reason)

REASON_TPS = "heteroscale-decode-tps"
REASON_WITHIN_BAND = "heteroscale-within-band"
REASON_NO_METRICS = "heteroscale-no-metrics"
REASON_RATIO = "heteroscale-pd-ratio"
REASON_BETWEEN = "heteroscale-between-periods"


@dataclass(frozen=True)
class HeteroScaleStyle:
    """Proportional control on decode TPS; prefill follows at ``pd_ratio`` prefill per decode."""

    target_decode_tps_per_replica: float
    pd_ratio: float = 1.0
    min_replicas: int = 1
    max_replicas: int = 16
    tolerance: float = d.HETEROSCALE_TOLERANCE
    period_s: float = d.HETEROSCALE_PERIOD_S
    name: str = "heteroscale"

    def __post_init__(self) -> None:
        validate_bounds(self.min_replicas, self.max_replicas)
        if not self.target_decode_tps_per_replica > 0:
            raise ValueError("target_decode_tps_per_replica must be > 0, got "
                             f"{self.target_decode_tps_per_replica}")
        if not self.pd_ratio > 0:
            raise ValueError(f"pd_ratio must be > 0, got {self.pd_ratio}")
        if not (self.tolerance >= 0 and self.period_s > 0):
            raise ValueError("tolerance must be >= 0 and period_s > 0")

    @property
    def tick_s(self) -> float:
        return self.period_s

    def _bounded(self, n: int) -> int:
        return min(max(n, self.min_replicas), self.max_replicas)

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        now, pools = observation.now_s, observation.pools
        st: dict[str, Any] = dict(state) if isinstance(state, dict) else {}
        if "last_s" in st and now - st["last_s"] < self.period_s - d.TIME_SLACK_S:
            desired = dict(st["desired"])
            return Decision(desired_replicas=desired, reasons=tuple(
                Reason(REASON_BETWEEN, f"next period not due; keeping {n}", p)
                for p, n in desired.items())), st
        lead = POOL_DECODE if POOL_DECODE in pools else POOL_UNIFIED
        obs = pools.get(lead)
        desired: dict[str, int] = {}
        reasons: list[Reason] = []
        if obs is None or obs.output_tokens_rps is None:
            for p, o in pools.items():
                desired[p] = self._bounded(o.current_replicas)
                reasons.append(Reason(REASON_NO_METRICS, "decode tokens/s unavailable; "
                                      f"keeping {desired[p]}", p))
        else:
            tps, current = obs.output_tokens_rps, obs.current_replicas
            per_replica = tps / obs.ready_replicas if obs.ready_replicas else math.inf
            ratio = per_replica / self.target_decode_tps_per_replica
            if obs.ready_replicas and within_tolerance(ratio, self.tolerance):
                n, code = current, REASON_WITHIN_BAND
            else:
                n, code = math.ceil(tps / self.target_decode_tps_per_replica), REASON_TPS
            n = self._bounded(n)
            desired[lead] = n
            reasons.append(Reason(code, f"decode {tps:.0f} tokens/s, target "
                                  f"{self.target_decode_tps_per_replica:g}/replica -> {n}", lead))
            if POOL_PREFILL in pools:
                m = self._bounded(math.ceil(n * self.pd_ratio - d.TIME_SLACK_S))
                desired[POOL_PREFILL] = m
                reasons.append(Reason(REASON_RATIO, f"{n} decode x P/D ratio {self.pd_ratio:g} "
                                      f"-> {m}", POOL_PREFILL))
        st = {"last_s": now, "desired": desired}
        return Decision(desired_replicas=desired, reasons=tuple(reasons)), st
