"""Dynamo-SLA-planner-style baseline: forecast the next interval's load, size pools from a profile.

After NVIDIA Dynamo's SLA planner (ai-dynamo/dynamo ``components/planner``,
``utils/planner_core.py``; defaults in ``PlannerDefaults``, cited in
``tidal.policies.baselines.defaults``). Every ``adjustment_interval_s`` (180 s):

1. average what was observed over the interval: request rate, input and output lengths
   (token rates / request rate), TTFT, ITL, and in-flight requests per decode replica;
2. correction factors against the pre-deployment profile: ``p = observed TTFT / profiled
   TTFT(isl)`` and ``d = observed ITL / profiled ITL(load per replica, isl + osl/2)``;
3. predict the next interval's request rate, input and output length with a load forecaster
   (one per signal, tidal's Holt-Winters standing in for Dynamo's default ARIMA);
4. prefill replicas ``ceil(rate x isl x min(1, p) / profiled prefill tokens/s(isl))``;
   decode replicas ``ceil(rate x osl / best profiled decode tokens/s meeting ITL target / d)``,
   the ITL target being divided by ``d`` before the profile is searched;
5. bound each pool by ``[min_replicas, max_replicas]`` (Dynamo: ``min_endpoint`` 1 and a GPU
   budget; here the per-pool bounds the bench gives every policy).

The profile (:class:`tidal.policies.baselines.profile.PerformanceProfile`) is handed to the
constructor; the policy never reads the simulator's performance model. Departures
(docs/baselines.md): the observation's TTFT/ITL are the shell's window percentiles, not
interval means; in-flight requests per decode replica replace Dynamo's
``num_req x duration / interval / replicas`` (the same quantity by Little's law); for the
unified pool -- which this planner version does not support -- a replica shares its time
between prefill and decode, so the two fractional needs add: ``ceil(prefill need + decode
need)``. An interval without the request-rate metric keeps the current sizes (Dynamo logs the
failure and skips the adjustment); until a forecaster has two cells it predicts the last value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.hpa import validate_bounds
from tidal.policies.baselines.profile import PerformanceProfile
from tidal.policies.interface import (POOL_DECODE, POOL_PREFILL, POOL_UNIFIED, Decision,
                                      Observation, PoolObservation, Reason)
from tidal.predictors import load_forecaster_from_state, make_load_forecaster

REASON_INITIAL = "planner-initial"
REASON_BETWEEN = "planner-between-adjustments"
REASON_NO_METRICS = "planner-no-metrics"
REASON_PREFILL = "planner-prefill"
REASON_DECODE = "planner-decode"
REASON_UNIFIED = "planner-unified"

_SIGNALS = ("rate_rps", "isl_tokens", "osl_tokens")
_MEANS = ("rate_rps", "prompt_tps", "output_tps", "ttft_s", "itl_s", "decode_load")


def _decode_pool(pools: Mapping[str, PoolObservation]) -> PoolObservation | None:
    return pools.get(POOL_DECODE) or pools.get(POOL_UNIFIED)


def _sample(obs: Observation) -> dict[str, float | None]:
    """This tick's values of the signals the planner averages over an interval."""
    pools = obs.pools
    first = pools.get(POOL_PREFILL) or pools.get(POOL_UNIFIED)
    dec = _decode_pool(pools)
    prompt = [p.prompt_tokens_rps for p in pools.values() if p.prompt_tokens_rps is not None]
    output = [p.output_tokens_rps for p in pools.values() if p.output_tokens_rps is not None]
    load = None
    if dec is not None and dec.running_requests is not None and dec.ready_replicas > 0:
        load = dec.running_requests / dec.ready_replicas
    return {"rate_rps": first.arrival_rate_rps if first is not None else None,
            "prompt_tps": sum(prompt) if prompt else None,
            "output_tps": sum(output) if output else None,
            "ttft_s": dec.ttft_s if dec is not None else None,
            "itl_s": dec.tpot_s if dec is not None else None,
            "decode_load": load}


@dataclass(frozen=True)
class DynamoStylePlanner:
    """SLA planner sizing prefill/decode (or unified) pools from a forecast and a profile."""

    profile: PerformanceProfile
    min_replicas: int = d.DYNAMO_MIN_ENDPOINT
    max_replicas: int = 16
    ttft_s: float = d.DYNAMO_TTFT_S
    itl_s: float = d.DYNAMO_ITL_S
    adjustment_interval_s: float = d.DYNAMO_ADJUSTMENT_INTERVAL_S
    forecaster: str = d.DYNAMO_FORECASTER
    name: str = "dynamo-planner"

    def __post_init__(self) -> None:
        validate_bounds(self.min_replicas, self.max_replicas)
        if not (self.ttft_s > 0 and self.itl_s > 0):
            raise ValueError("ttft_s and itl_s must be > 0")
        if not self.adjustment_interval_s > 0:
            raise ValueError("adjustment_interval_s must be > 0")
        make_load_forecaster(self.forecaster, self.adjustment_interval_s,
                             capacity=d.DYNAMO_FORECAST_HISTORY_CELLS)  # names a bad forecaster

    @property
    def tick_s(self) -> float:
        return self.adjustment_interval_s

    def _bounded(self, n: int) -> int:
        return min(max(n, self.min_replicas), self.max_replicas)

    def _predict(self, now_s: float, values: dict[str, float],
                 states: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
        predicted, new_states = {}, {}
        for name in _SIGNALS:
            if name in states:
                f = load_forecaster_from_state(states[name])
            else:
                f = make_load_forecaster(self.forecaster, self.adjustment_interval_s,
                                         capacity=d.DYNAMO_FORECAST_HISTORY_CELLS)
            f.observe(now_s, values[name])
            horizon = self.adjustment_interval_s
            p = f.forecast((horizon,), (0.5,)).at(horizon, 0.5)
            enough = f.grid.n_valid >= 2  # type: ignore[attr-defined]
            predicted[name] = max(0.0, p) if (enough and math.isfinite(p)) else values[name]
            new_states[name] = f.to_state()
        return predicted, new_states

    def _adjust(self, obs: Observation, st: dict[str, Any]) -> tuple[dict[str, int], list[Reason]]:
        means = {k: (s / n if n else None) for k, (s, n) in st["acc"].items()}
        rate = means["rate_rps"]
        if rate is None:
            return ({p: int(st["desired"].get(p, self._bounded(o.current_replicas)))
                     for p, o in obs.pools.items()},
                    [Reason(REASON_NO_METRICS, "no request-rate metric this interval; "
                            "keeping the current sizes", p) for p in obs.pools])
        prefill, decode = self.profile.prefill, self.profile.decode
        # lengths of the interval's requests; with no traffic, the last interval's lengths
        isl = (means["prompt_tps"] / rate if (rate > 0 and means["prompt_tps"])
               else st.get("isl", 0.0))
        osl = (means["output_tps"] / rate if (rate > 0 and means["output_tps"])
               else st.get("osl", 0.0))
        st["isl"], st["osl"] = isl, osl
        if means["ttft_s"] is not None and isl > 0:
            st["p_corr"] = means["ttft_s"] / prefill.ttft_at(isl)
        if means["itl_s"] is not None and means["decode_load"] is not None:
            st["d_corr"] = means["itl_s"] / decode.itl_at(means["decode_load"], isl + osl / 2)
        p_corr, d_corr = float(st.get("p_corr", 1.0)), float(st.get("d_corr", 1.0))
        pred, st["forecasters"] = self._predict(
            obs.now_s, {"rate_rps": rate, "isl_tokens": isl, "osl_tokens": osl},
            st.get("forecasters", {}))
        n_rate, n_isl, n_osl = pred["rate_rps"], pred["isl_tokens"], pred["osl_tokens"]
        st["forecast_rps"] = n_rate
        prefill_need = n_rate * n_isl * min(1.0, p_corr) / prefill.throughput_at(n_isl)
        corrected_itl = self.itl_s / d_corr if d_corr > 0 else self.itl_s
        decode_thpt = decode.best_throughput(corrected_itl, n_isl + n_osl / 2)
        decode_need = n_rate * n_osl / decode_thpt
        detail = (f"predicted {n_rate:.2f} req/s, isl {n_isl:.0f}, osl {n_osl:.0f}; "
                  f"correction TTFT {p_corr:.2f}, ITL {d_corr:.2f}")
        desired: dict[str, int] = {}
        reasons: list[Reason] = []
        for pool in obs.pools:
            if pool == POOL_PREFILL:
                need, code = prefill_need, REASON_PREFILL
            elif pool == POOL_DECODE:
                need, code = decode_need, REASON_DECODE
            else:
                need, code = prefill_need + decode_need, REASON_UNIFIED
            n = self._bounded(math.ceil(need - d.TIME_SLACK_S))
            desired[pool] = n
            reasons.append(Reason(code, f"{detail}: need {need:.2f} -> {n}", pool))
        return desired, reasons

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        now = observation.now_s
        st: dict[str, Any] = dict(state) if isinstance(state, dict) else {}
        if "last_adjust_s" not in st:
            desired = {p: self._bounded(o.current_replicas) if o.current_replicas
                       else self._bounded(self.min_replicas) for p, o in observation.pools.items()}
            st = {"last_adjust_s": now, "desired": desired,
                  "acc": {k: [0.0, 0] for k in _MEANS}}
            return (Decision(desired_replicas=desired, reasons=tuple(
                Reason(REASON_INITIAL, f"deployed at {n}; first adjustment after "
                       f"{self.adjustment_interval_s:g}s", p) for p, n in desired.items())), st)
        acc = {k: list(v) for k, v in st["acc"].items()}
        for k, v in _sample(observation).items():
            if v is not None:
                acc[k][0] += v
                acc[k][1] += 1
        st["acc"] = acc
        if now - st["last_adjust_s"] < self.adjustment_interval_s - d.TIME_SLACK_S:
            desired = dict(st["desired"])
            return (Decision(desired_replicas=desired, reasons=tuple(
                Reason(REASON_BETWEEN, f"next adjustment not due; keeping {n}", p)
                for p, n in desired.items()), forecast_rps=st.get("forecast_rps")), st)
        desired, reasons = self._adjust(observation, st)
        st.update(last_adjust_s=now, desired=desired, acc={k: [0.0, 0] for k in _MEANS})
        return (Decision(desired_replicas=desired, reasons=tuple(reasons),
                         forecast_rps=st.get("forecast_rps")), st)
