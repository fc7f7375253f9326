"""Published end-to-end measurements and the simulator's prediction for each.

Each :class:`Measurement` is a closed-loop benchmark as run by ``vllm bench
serve --max-concurrency C`` (C clients, each sending its next request when
the previous one completes, fixed prompt/output lengths). :func:`predict`
replays the same benchmark through one simulated engine replica. The
comparison table lives in docs/calibration.md; tests/sim/test_calibration.py
asserts every prediction lands within ``TOLERANCE``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tidal.sim.engine import Engine, EngineConfig, Sequence
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.perf_model import StepTimeModel, kv_capacity_tokens

TOLERANCE = 0.25


@dataclass(frozen=True)
class Measurement:
    key: str
    source: str          # who measured it, where (URL / figure / table)
    setup: str
    model: str
    accelerator: str
    tp: int
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    num_prompts: int
    metric: str          # "tpot_p50_ms", "ttft_p50_ms" or "output_tokens_per_s"
    value: float
    excluded: str = ""   # why a measurement is listed but not used for the check


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        "inferencebench-h100-c1-tpot",
        "InferenceBench 'concurrency sweep' recipe, yobitelcomm.github.io/bench/recipes/"
        "concurrency-sweep (summary table, conc=1)",
        "vLLM 0.21.0, fp16, 1x H100-80GB-HBM3, llm.inference.chatbot-short profile "
        "(prompt length not stated; we assume 128 in / 128 out)",
        "llama-3.1-8b", "H100-80GB", 1, 1, 128, 128, 20, "tpot_p50_ms", 6.48),
    Measurement(
        "inferencebench-h100-c4-tpot",
        "same table, conc=4", "as above, 4 concurrent clients",
        "llama-3.1-8b", "H100-80GB", 1, 4, 128, 128, 40, "tpot_p50_ms", 6.59),
    Measurement(
        "musgrave-a100-40gb-c1-tpot",
        "J. Musgrave, 'vLLM throughput-latency sweep on NVIDIA A100', johnmusgrave.com/p/"
        "vllm-throughput-latency-sweep-on (text: ~75 tokens/s per request at C=1)",
        "vLLM 0.23.0, BF16, 1x A100 40GB, random 1024 in / 128 out, --ignore-eos, "
        "max-concurrency 1; 75 tok/s -> 13.3 ms per output token",
        "llama-3.1-8b", "A100-40GB", 1, 1, 1024, 128, 20, "tpot_p50_ms", 1000 / 75),
    Measurement(
        "databasemart-a40-c50-tpot",
        "Database Mart, 'vLLM GPU benchmark: A40', databasemart.com/blog/vllm-gpu-benchmark-a40 "
        "(Scenario 1 table, Llama-3.1-8B-Instruct column)",
        "vLLM, fp16, 1x A40 48GB, 50 concurrent requests, 100 in / up to 600 out "
        "(22,170 tokens generated for 50 requests: 443 on average, used here)",
        "llama-3.1-8b", "A40", 1, 50, 100, 443, 50, "tpot_p50_ms", 35.96),
    Measurement(
        "databasemart-a40-c50-ttft",
        "same table", "as above", "llama-3.1-8b", "A40", 1, 50, 100, 443, 50,
        "ttft_p50_ms", 219.88,
        excluded="physically inconsistent: 50 x 100 prompt tokens need >= 80 TFLOP, i.e. "
                 ">= 0.53 s at the A40's 149.7 TFLOPS peak before the last first token; a "
                 "median TTFT of 0.22 s would need the median request's prefill to finish "
                 "after < 40 % of that work under FCFS chunked prefill"),
    Measurement(
        "databasemart-a40-c50-throughput",
        "same table", "as above; benchmark duration 21.81 s", "llama-3.1-8b", "A40", 1, 50,
        100, 443, 50, "output_tokens_per_s", 1016.60),
)


class _Collector:
    def __init__(self) -> None:
        self.finished: list[Sequence] = []

    def on_first_token(self, seq, now_s):
        pass

    def on_finish(self, seq, now_s):
        self.finished.append(seq)

    def on_prefill_done(self, seq, now_s):
        pass

    def on_tokens(self, prompt_tokens, output_tokens, now_s):
        pass


@dataclass(frozen=True)
class _Req:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple = ()
    session_id: None = None
    request_id: int = 0


def predict(m: Measurement, engine_config: EngineConfig = EngineConfig()) -> float:
    """The simulator's value of ``m.metric`` for the benchmark ``m`` describes."""
    model, accel = get_model(m.model), get_accelerator(m.accelerator)
    perf = StepTimeModel(model, accel, m.tp)
    sink = _Collector()
    # random prompts: no prefix reuse, as in the benchmarks
    cfg = EngineConfig(max_num_batched_tokens=engine_config.max_num_batched_tokens,
                       max_num_seqs=engine_config.max_num_seqs, enable_prefix_cache=False)
    engine = Engine(0, perf, kv_capacity_tokens(model, accel, m.tp), sink, cfg)
    sent = 0

    def send(t: float) -> None:
        nonlocal sent
        engine.submit(Sequence(_Req(t, m.prompt_tokens, m.output_tokens, request_id=sent)), t)
        sent += 1

    for _ in range(min(m.concurrency, m.num_prompts)):
        send(0.0)
    done = 0
    while engine.next_wake_s is not None:
        t = engine.next_wake_s
        engine.wake(t)
        while done < len(sink.finished):
            done += 1
            if sent < m.num_prompts:
                send(t)
    seqs = sink.finished
    if m.metric == "tpot_p50_ms":
        return float(np.median([(s.finish_s - s.first_token_s) / (s.output_tokens - 1)
                                for s in seqs])) * 1e3
    if m.metric == "ttft_p50_ms":
        return float(np.median([s.first_token_s - s.arrival_s for s in seqs])) * 1e3
    if m.metric == "output_tokens_per_s":
        return sum(s.output_tokens for s in seqs) / max(s.finish_s for s in seqs)
    raise ValueError(f"unknown metric {m.metric!r}")


def checked_measurements() -> tuple[Measurement, ...]:
    return tuple(m for m in MEASUREMENTS if not m.excluded)


def comparison_table() -> list[tuple[Measurement, float, float]]:
    """(measurement, predicted, relative error) for every measurement, excluded ones too."""
    rows = []
    for m in MEASUREMENTS:
        p = predict(m)
        rows.append((m, p, (p - m.value) / m.value))
    return rows


if __name__ == "__main__":
    for m, p, err in comparison_table():
        note = " (excluded)" if m.excluded else ""
        print(f"{m.key:36s} {m.metric:20s} measured {m.value:9.2f} predicted {p:9.2f} "
              f"error {err:+.1%}{note}")
