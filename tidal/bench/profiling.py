"""Pre-deployment profiles for the profile-driven rivals, measured on the simulator's engine.

Dynamo's SLA planner is deployed after a profiling job (ai-dynamo/dynamo ``benchmarks/profiler``;
docs "Pre-Deployment Profiling") that runs the real engine before any traffic arrives:

- **prefill**: one request at a time (no in-flight batching, no KV reuse) at ISLs from 100 to
  ``max_context_length - 512`` in 16 steps; TTFT, and throughput ``isl / TTFT`` per GPU
  (``utils/profile_prefill.py``);
- **decode**: at 6 steps of ISL (output length 500, context ``isl + osl / 2``), concurrencies
  from 1 to the most requests the KV cache holds in 6 steps, the prefill skipped (the profiler
  warms the prefix cache so only decode is timed); ITL and output tokens/s per GPU
  (``utils/profile_decode.py``).

The planner then interpolates: TTFT and prefill throughput against ISL (``PrefillInterpolator``,
1-D), ITL and decode throughput on the (KV usage, context length) plane (``DecodeInterpolator``),
searching, at the forecast context, the highest throughput whose ITL meets the target
(``find_best_throughput_per_gpu``).

:func:`profile_engine` does the same sweep on the simulator's engine for one bench setup -- the
rival's legitimate input, as if its profiler had run on the real GPUs -- and returns the
:class:`~tidal.policies.baselines.profile.PerformanceProfile` the policies interpolate linearly.
Departures, all forced by the profile's shape or the simulator: the decode grid is rectangular in
(context, concurrency) -- Dynamo's concurrencies depend on the ISL -- so the concurrency axis is
the sweep of the shortest context and, at a longer context, a concurrency past what its KV cache
holds repeats the nearest measured point (Dynamo fills points outside its measured hull with the
nearest neighbour); concurrency is also capped at the engine's ``max_num_seqs`` (past it requests
queue and the measured ITL would count the queueing); interpolation is linear, not cubic.

The profile always comes from the engine as modelled (speed 1): under ``--perturb`` the engine the
cells run on is slower or faster, and a profile measured before deployment does not know it.
Profiles are cached per (model, accelerator, TP, engine settings), so a bench process measures
each setup once, whatever the number of cells.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from functools import lru_cache

from tidal.policies.baselines import defaults as d
from tidal.policies.baselines.profile import DecodeProfile, PerformanceProfile, PrefillProfile
from tidal.sim.engine import ROLE_DECODE, ROLE_PREFILL, Engine, EngineConfig, Sequence
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.perf_model import StepTimeModel, kv_capacity_tokens
from tidal.sim.runner import SimConfig
from tidal.sim.traces import LLMRequest

MODEL_CONTEXT_TOKENS = 131_072
"""``max_context_length`` handed to the profiler: Llama 3.1's context window (its Hugging Face
config's ``max_position_embeddings``), the ``--max-model-len`` vLLM serves it with by default;
capped by what one replica's KV cache holds."""


class _Finished:
    """Engine listener that only records finished sequences (prefill role: prefill done)."""

    def __init__(self) -> None:
        self.done: list[Sequence] = []

    def on_first_token(self, seq: Sequence, now_s: float) -> None:
        pass

    def on_finish(self, seq: Sequence, now_s: float) -> None:
        self.done.append(seq)

    def on_prefill_done(self, seq: Sequence, now_s: float) -> None:
        self.done.append(seq)

    def on_tokens(self, prompt_tokens: int, output_tokens: int, now_s: float) -> None:
        pass


@dataclass(frozen=True)
class _Bench:
    """One replica's engine settings, as the profiler deploys it."""

    model: str
    accelerator: str
    tp: int
    engine: EngineConfig

    def engine_for(self, role: str, listener: _Finished) -> Engine:
        model, accel = get_model(self.model), get_accelerator(self.accelerator)
        return Engine(0, StepTimeModel(model, accel, self.tp),
                      kv_capacity_tokens(model, accel, self.tp), listener, self.engine, role)

    @property
    def kv_tokens(self) -> int:
        return kv_capacity_tokens(get_model(self.model), get_accelerator(self.accelerator), self.tp)


def _run(engine: Engine) -> None:
    while engine.next_wake_s is not None:
        engine.wake(engine.next_wake_s)


def prefill_ttft_s(bench: _Bench, isl_tokens: int) -> float:
    """TTFT of one request of ``isl_tokens`` alone on an idle prefill engine."""
    sink = _Finished()
    engine = bench.engine_for(ROLE_PREFILL, sink)
    seq = Sequence(LLMRequest(arrival_s=0.0, prompt_tokens=isl_tokens,
                              output_tokens=d.DYNAMO_PROFILE_PREFILL_OSL_TOKENS))
    engine.submit(seq, 0.0)
    _run(engine)
    assert seq.first_token_s is not None
    return float(seq.first_token_s)


def decode_point(bench: _Bench, isl_tokens: int, concurrency: int) -> tuple[float, float]:
    """(mean ITL s, output tokens/s) of ``concurrency`` requests decoding together from a prompt
    of ``isl_tokens`` whose KV is already in place (the prefill skipped, as Dynamo's warm-up does)."""
    sink = _Finished()
    engine = bench.engine_for(ROLE_DECODE, sink)
    osl = d.DYNAMO_PROFILE_DECODE_OSL_TOKENS
    seqs = []
    for i in range(concurrency):
        seq = Sequence(LLMRequest(arrival_s=0.0, prompt_tokens=isl_tokens, output_tokens=osl,
                                  request_id=i))
        # what the runner does when the KV reaches a decode instance: first token already out
        seq.computed = seq.prefill_target = seq.prompt_tokens
        seq.generated = 1
        seq.first_token_s = 0.0
        seqs.append(seq)
        engine.submit(seq, 0.0)
    _run(engine)
    itl = [s.finish_s / (osl - 1) for s in seqs if s.finish_s is not None]
    end_s = max(s.finish_s for s in seqs if s.finish_s is not None)
    return sum(itl) / len(itl), concurrency * (osl - 1) / end_s


def _steps(start: int, stop: int, granularity: int) -> list[int]:
    """Python's ``range(start, stop, (stop - start) // granularity)`` as the profiler sweeps
    (with the step at least 1 and ``start`` kept when the range is empty)."""
    step = max(1, (stop - start) // granularity)
    values = list(range(start, stop, step))
    return values or [start]


def _max_context_tokens(bench: _Bench) -> int:
    return min(MODEL_CONTEXT_TOKENS, bench.kv_tokens)


def _prefill_profile(bench: _Bench) -> PrefillProfile:
    top = _max_context_tokens(bench) - d.DYNAMO_PROFILE_CONTEXT_RESERVE_TOKENS
    isls = _steps(d.DYNAMO_PROFILE_MIN_ISL_TOKENS, top,
                  d.DYNAMO_PREFILL_INTERPOLATION_GRANULARITY)
    ttft = [prefill_ttft_s(bench, isl) for isl in isls]
    return PrefillProfile(tuple(float(x) for x in isls), tuple(ttft),
                          tuple(isl / t for isl, t in zip(isls, ttft)))


def _decode_profile(bench: _Bench) -> DecodeProfile:
    osl = d.DYNAMO_PROFILE_DECODE_OSL_TOKENS
    granularity = d.DYNAMO_DECODE_INTERPOLATION_GRANULARITY
    isls = _steps(d.DYNAMO_PROFILE_MIN_ISL_TOKENS, _max_context_tokens(bench) - osl, granularity)
    max_seqs = bench.engine.limits(get_accelerator(bench.accelerator)).max_num_seqs

    def most_requests(isl: int) -> int:
        return max(1, min(bench.kv_tokens // (isl + osl), max_seqs,
                          d.DYNAMO_DECODE_MAX_CONCURRENCY))

    concurrency = _steps(1, most_requests(isls[0]), granularity)
    memo: dict[tuple[int, int], tuple[float, float]] = {}
    itl_rows, thpt_rows = [], []
    for isl in isls:
        row = []
        for n in concurrency:
            key = (isl, min(n, most_requests(isl)))
            if key not in memo:
                memo[key] = decode_point(bench, *key)
            row.append(memo[key])
        itl_rows.append(tuple(itl for itl, _ in row))
        thpt_rows.append(tuple(t for _, t in row))
    return DecodeProfile(tuple(float(isl + osl / 2) for isl in isls),
                         tuple(float(n) for n in concurrency), tuple(itl_rows), tuple(thpt_rows))


@lru_cache(maxsize=8)
def _profile(bench: _Bench) -> PerformanceProfile:
    return PerformanceProfile(_prefill_profile(bench), _decode_profile(bench))


def profile_engine(config: SimConfig) -> PerformanceProfile:
    """The pre-deployment profile of ``config``'s (model, accelerator, TP, engine settings), on
    the engine as modelled (``engine_speed`` 1: a ``--perturb`` engine is not what was profiled).
    Measured once per process and setup."""
    engine = dataclasses.replace(config.engine, engine_speed=1.0, enable_prefix_cache=False,
                                 session_kv_ttl_s=None)
    return _profile(_Bench(config.model, config.accelerator, config.tp, engine))


@dataclass(frozen=True)
class HeteroScaleTargets:
    """HeteroScale's two profiled numbers for a workload's typical request."""

    target_decode_tps_per_replica: float
    pd_ratio: float


def workload_lengths(requests: Seq[LLMRequest]) -> tuple[float, float]:
    """Mean (prompt, output) tokens: the ISL/OSL a user hands Dynamo's profiler (``sla.isl``,
    ``sla.osl``) and HeteroScale's load tests, from the workload's history."""
    if not requests:
        raise ValueError("no requests to take the typical lengths from")
    n = len(requests)
    return (sum(r.prompt_tokens for r in requests) / n,
            sum(r.output_tokens for r in requests) / n)


def heteroscale_targets(profile: PerformanceProfile, isl_tokens: float, osl_tokens: float,
                        itl_target_s: float) -> HeteroScaleTargets:
    """Decode tokens/s one replica sustains within the ITL target at the workload's context, and
    the P/D ratio that balances the pools for that request: prefill replica-seconds per request
    (``isl / prefill tokens/s``) over decode replica-seconds per request (``osl / decode
    tokens/s``). HeteroScale takes both from offline load tests (its P/D-ratio study); this is
    the same measurement read off the profile."""
    if not (isl_tokens > 0 and osl_tokens > 0 and itl_target_s > 0):
        raise ValueError("isl_tokens, osl_tokens and itl_target_s must be > 0")
    decode_tps = profile.decode.best_throughput(itl_target_s, isl_tokens + osl_tokens / 2)
    prefill_tps = profile.prefill.throughput_at(isl_tokens)
    ratio = (isl_tokens / prefill_tps) / (osl_tokens / decode_tps)
    return HeteroScaleTargets(decode_tps, ratio if math.isfinite(ratio) and ratio > 0 else 1.0)
