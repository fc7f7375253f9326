"""The search primitive: replay one window of a trace on a fixed, already-running deployment
and score the requests that arrived in it.

Both searched references (static-peak and the oracle) ask the simulator itself the same
question, "do ``replicas`` meet the SLO for the requests arriving in ``[start, end)``?",
instead of trusting a capacity model. A probe replays the arrivals of ``[start - warmup,
end)`` with every pod Ready at the window's start (so queues and running batches left by
the warm-up are in place) and scores only the arrivals in ``[start, end)``.

Requests that no replica count can serve within the targets are left out of the score
(see :func:`feasibility`): sizing for them would only add GPUs that cannot help.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tidal.bench.workloads import BenchSLO
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.perf_model import kv_capacity_tokens
from tidal.sim.runner import SimConfig, SimResult, Simulation
from tidal.sim.traces import LLMRequest

# Output tokens of the single request the feasibility search replays: two, so the first
# token is a real prefill result and the request still has a decode step.
_FEASIBILITY_OUTPUT_TOKENS = 2


@dataclass(frozen=True)
class Feasibility:
    """Which requests can meet the targets at all, on an idle replica of this setup.

    ``max_prompt_tokens`` is the longest prompt whose TTFT, alone on an idle replica (with an
    empty prefix cache), is within the TTFT target; ``kv_capacity_tokens`` bounds prompt plus
    output (the engine rejects longer requests).
    """

    max_prompt_tokens: int
    kv_capacity_tokens: int

    def feasible(self, prompt_tokens: int, output_tokens: int) -> bool:
        return (prompt_tokens <= self.max_prompt_tokens
                and prompt_tokens + output_tokens <= self.kv_capacity_tokens)

    def count_infeasible(self, requests: Sequence[LLMRequest]) -> tuple[int, int]:
        """(requests over the TTFT prompt limit, requests longer than the KV cache)."""
        too_long = sum(1 for r in requests if r.prompt_tokens + r.output_tokens
                       > self.kv_capacity_tokens)
        slow = sum(1 for r in requests if r.prompt_tokens > self.max_prompt_tokens
                   and r.prompt_tokens + r.output_tokens <= self.kv_capacity_tokens)
        return slow, too_long


def _isolated_ttft_s(config: SimConfig, prompt_tokens: int) -> float | None:
    replicas = {pool: 1 for pool in config.pools}
    request = LLMRequest(arrival_s=0.0, prompt_tokens=prompt_tokens,
                         output_tokens=_FEASIBILITY_OUTPUT_TOKENS)
    result = Simulation([request], FixedReplicas(replicas),
                        dataclasses.replace(config, initial_replicas=replicas)).run()
    ttft = result.requests["ttft_s"]
    return float(ttft[0]) if ttft.size else None


def feasibility(config: SimConfig, slo: BenchSLO, longest_prompt_tokens: int) -> Feasibility:
    """Binary search of the longest prompt meeting the TTFT target alone on an idle replica.

    TTFT of a lone request grows with its prompt (more prefill chunks, longer attention),
    so the feasible prompts are exactly ``[1, max_prompt_tokens]``. The search stops at the
    trace's longest prompt (``longest_prompt_tokens``) and at what the KV cache can hold.
    """
    kv = kv_capacity_tokens(get_model(config.model), get_accelerator(config.accelerator),
                            config.tp)
    # the engine allocates whole KV blocks: leave one block of slack for the output tokens
    fits = kv - 2 * config.engine.kv_block_tokens - _FEASIBILITY_OUTPUT_TOKENS
    lo, hi = 0, max(1, min(longest_prompt_tokens, fits))     # lo: known feasible (0 = none)
    probe = _isolated_ttft_s(config, hi)
    if probe is not None and probe <= slo.ttft_s:
        return Feasibility(hi, kv)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ttft = _isolated_ttft_s(config, mid)
        if ttft is not None and ttft <= slo.ttft_s:
            lo = mid
        else:
            hi = mid
    return Feasibility(lo, kv)


@dataclass(frozen=True)
class Score:
    """Counts over the scored requests of one replay; fractions are over feasible ones."""

    scored: int
    feasible: int
    ttft_met: int
    both_met: int

    @property
    def ttft_fraction(self) -> float:
        return self.ttft_met / self.feasible if self.feasible else 1.0

    @property
    def both_fraction(self) -> float:
        return self.both_met / self.feasible if self.feasible else 1.0


def score_result(result: SimResult, requests: Sequence[LLMRequest], limits: Feasibility,
                 start_s: float, end_s: float, offset_s: float = 0.0) -> Score:
    """Score the arrivals in ``[start_s, end_s)`` of a replay whose clock is shifted by
    ``offset_s`` (replay time = trace time - offset). Unfinished and rejected requests miss."""
    scored = [r for r in requests if start_s <= r.arrival_s < end_s]
    feasible = sum(1 for r in scored if limits.feasible(r.prompt_tokens, r.output_tokens))
    done = result.requests
    arrival = done["arrival_s"] + offset_s
    in_span = (arrival >= start_s) & (arrival < end_s)
    ok = in_span & (done["prompt_tokens"] <= limits.max_prompt_tokens)
    ttft_met = int(np.count_nonzero(ok & done["met_ttft"]))
    both_met = int(np.count_nonzero(ok & done["met_ttft"] & done["met_tpot"]))
    return Score(scored=len(scored), feasible=feasible, ttft_met=ttft_met, both_met=both_met)


class WindowProbe:
    """Scores windows of one trace on fixed deployments; remembers every answer."""

    def __init__(self, requests: Sequence[LLMRequest], config: SimConfig, slo: BenchSLO,
                 limits: Feasibility, warmup_s: float) -> None:
        self.requests = requests
        self.arrivals = [r.arrival_s for r in requests]
        self.config = config
        self.slo = slo
        self.limits = limits
        self.warmup_s = warmup_s
        self.replays = 0
        self._memo: dict[tuple[float, float, tuple[tuple[str, int], ...]], Score] = {}

    def score(self, start_s: float, end_s: float, replicas: Mapping[str, int]) -> Score:
        key = (start_s, end_s, tuple(sorted(replicas.items())))
        if key not in self._memo:
            self._memo[key] = self._replay(start_s, end_s, dict(replicas))
        return self._memo[key]

    def _replay(self, start_s: float, end_s: float, replicas: dict[str, int]) -> Score:
        offset = max(0.0, start_s - self.warmup_s)
        lo = bisect.bisect_left(self.arrivals, offset)
        hi = bisect.bisect_left(self.arrivals, end_s)
        window = [dataclasses.replace(r, arrival_s=r.arrival_s - offset)
                  for r in self.requests[lo:hi]]
        scored = [r for r in self.requests[lo:hi] if r.arrival_s >= start_s]
        if not scored:
            return Score(0, 0, 0, 0)
        self.replays += 1
        config = dataclasses.replace(self.config, initial_replicas=replicas)
        result = Simulation(window, FixedReplicas(replicas), config).run()
        return score_result(result, scored, self.limits, start_s, end_s, offset)
