"""Published end-to-end vLLM measurements and the simulator's prediction for each.

Each :class:`Measurement` is a benchmark as run by ``vllm bench serve`` (or its
predecessor ``benchmark_serving.py``): ``concurrency`` clients, each sending its
next request when the previous one completes (``--max-concurrency C``; with
``--request-rate inf`` and no limit, every request at once). :func:`predict`
replays the same benchmark through one simulated engine replica, with the
engine version's scheduler limits for that GPU (tidal.sim.engine). The
comparison table lives in docs/calibration.md; tests/sim/test_calibration.py
asserts every checked prediction lands within its tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tidal.sim.engine import VLLM_V0, VLLM_V05_CHUNKED, VLLM_V1, Engine, EngineConfig, Sequence
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.perf_model import StepTimeModel, kv_capacity_tokens

# The target: every checked measurement within +-10 % of the published value.
TOLERANCE = 0.10

# ShareGPT (vLLM's ShareGPT_V3 sample, prompts <= 1024 tokens) under the Llama-3
# tokenizer: 230,969 prompt and 194,523 generated tokens over 1,000 requests in a
# published ``benchmark_serving.py --dataset-name sharegpt`` run (Llama-3.2-11B-Vision,
# vLLM 0.6.2, same tokenizer family). Lengths are drawn log-normal (sigma 1) around
# these means, clipped as the benchmark filters them, from a fixed seed.
SHAREGPT_MEAN_PROMPT_TOKENS = 231
SHAREGPT_MEAN_OUTPUT_TOKENS = 195
SHAREGPT_LENGTH_SIGMA = 1.0
SHAREGPT_MAX_PROMPT_TOKENS = 1024
SHAREGPT_MAX_TOTAL_TOKENS = 2048
SHAREGPT_SEED = 0

# The ten ShareGPT prompts of Lambda's vllm-benchmark ``results/prompt_10`` runs
# (input_lens in every result file), with the output lengths each run generated.
LAMBDA_PROMPTS = (13, 25, 27, 10, 329, 29, 399, 328, 4, 205)


def _lambda_requests(outputs: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    # an empty completion (output 0) still costs its prefill; it emits one token here
    return tuple((p, max(1, o)) for p, o in zip(LAMBDA_PROMPTS, outputs))


@dataclass(frozen=True)
class Measurement:
    key: str
    source_id: str       # one id per independent publisher
    source: str          # who measured it, where (URL / table)
    setup: str
    model: str
    accelerator: str
    tp: int
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    num_prompts: int
    metric: str          # tpot_p50_ms, ttft_p50_ms, output_tokens_per_s, throughput_ratio
    value: float
    engine_version: str = VLLM_V1
    # exact (prompt, output) lengths of every request when the publisher lists them
    requests: tuple[tuple[int, int], ...] = ()
    sharegpt_lengths: bool = False   # lengths drawn as SHAREGPT_* describe
    # throughput_ratio: output throughput at ``concurrency`` over this one
    baseline_concurrency: int = 0
    prompts_per_client: int = 0      # num_prompts = this x concurrency when set
    tolerance: float = TOLERANCE
    tolerance_reason: str = ""       # why a measurement has a wider bound than TOLERANCE
    excluded: str = ""               # why a measurement is listed but not checked
    # open loop (``--request-rate R``): Poisson arrivals at this rate instead of
    # ``concurrency`` closed-loop clients; see poisson_arrivals_s
    request_rate_rps: float = 0.0
    # a simulator constant was fitted to this row: it is reproduced, not independently checked
    fitted: bool = False


# Database Mart lists totals only: 22,170 tokens generated for 50 requests capped at 600
# (443 on average), in 21.81 s, which is 600 x the reported 36 ms TPOT plus a prefill: the
# longest request ran to the cap. Outputs are spread evenly from 286 to 600 (mean 443).
_DBM_REQUESTS = tuple((100, int(round(286 + (600 - 286) * i / 49))) for i in range(50))
_DBM_SETUP = ("vLLM, fp16, 1x A40 48GB, 50 requests at once, 100 in / up to 600 out; "
              "outputs spread evenly over 286-600 tokens (mean 443, the published total)")
_LAMBDA = ("Lambda, LambdaLabsML/vllm-benchmark (GitHub), results/prompt_10/{gpus}/{file}: "
           "benchmark_serving.py, 10 ShareGPT prompts at request rate inf, date 2024-09-07/08")
_LAMBDA_SETUP = ("vLLM 0.6.0 (V0 engine, multi-step scheduling 10, no chunked prefill, "
                 "max-num-seqs 256), max-model-len 2048, {what}; the 10 requests' prompt and "
                 "output lengths are replayed exactly")
_LAMBDA_TABLE = ("Lambda, LambdaLabsML/vllm-benchmark benchmark_v0.md, 'vLLM v0.5.4 v.s. "
                 "v0.6.0' tables, row v0.6.0 / scheduler steps 10")
_LAMBDA_TABLE_SETUP = ("vLLM 0.6.0 (V0, multi-step 10, no chunked prefill), rps inf, "
                       "max-num-seq 256, max-seq-len 2048, {n} ShareGPT prompts (lengths not "
                       "listed: drawn as SHAREGPT_* in tidal/sim/calibration.py describe)")

# Crusoe's L40S runs (crusoe-cookbook, content/vllm-l40s-fp8): every result file lists each
# request's prompt and output length; prompts are 488-532 tokens (replayed as each file's
# mean), outputs all 150. Keyed by (model, request rate): (file, mean prompt tokens,
# median TPOT ms, median TTFT ms) as published.
_CRUSOE_RUNS = {
    ("llama-3.1-8b", 1.0): ("vllm-1.0qps-Meta-Llama-3.1-8B-Instruct-20240829-161828.json", 508,
                            25.09, 72.35),
    ("llama-3.1-8b", 3.0): ("vllm-3.0qps-Meta-Llama-3.1-8B-Instruct-20240829-162036.json", 509,
                            29.30, 96.14),
    ("llama-3.1-8b", 5.0): ("vllm-5.0qps-Meta-Llama-3.1-8B-Instruct-20240829-162250.json", 509,
                            34.64, 114.13),
    ("llama-3.1-8b", 7.0): ("vllm-7.0qps-Meta-Llama-3.1-8B-Instruct-20240829-162504.json", 509,
                            42.21, 131.73),
    ("llama-3.1-8b", 9.0): ("vllm-9.0qps-Meta-Llama-3.1-8B-Instruct-20240829-162719.json", 509,
                            56.86, 179.78),
    ("llama-3.1-8b-fp8", 1.0): (
        "vllm-1.0qps-Meta-Llama-3.1-8B-Instruct-FP8-dynamic-20240828-233924.json", 508,
        16.71, 60.82),
    ("llama-3.1-8b-fp8", 3.0): (
        "vllm-3.0qps-Meta-Llama-3.1-8B-Instruct-FP8-dynamic-20240828-234130.json", 509,
        20.04, 79.27),
    ("llama-3.1-8b-fp8", 5.0): (
        "vllm-5.0qps-Meta-Llama-3.1-8B-Instruct-FP8-dynamic-20240828-234342.json", 509,
        24.12, 91.21),
    ("llama-3.1-8b-fp8", 7.0): (
        "vllm-7.0qps-Meta-Llama-3.1-8B-Instruct-FP8-dynamic-20240828-234554.json", 509,
        30.81, 114.28),
    ("llama-3.1-8b-fp8", 9.0): (
        "vllm-9.0qps-Meta-Llama-3.1-8B-Instruct-FP8-dynamic-20240828-234806.json", 509,
        44.32, 150.87),
}
CRUSOE_OUTPUT_TOKENS = 150
CRUSOE_SECONDS_PER_RATE = 120      # run_benchmark.sh: --num-prompts = 120 x QPS
_CRUSOE_SETUP = ("vLLM 0.5.5 (the tutorial's uv.lock), `vllm serve --enable-chunked-prefill` "
                 "(token budget 512, max-num-seqs 256), 1x L40S, {weights}; benchmark_serving.py "
                 "--dataset-name sonnet --sonnet-input-len 550 --sonnet-output-len 150 "
                 "--request-rate {rate:g} --num-prompts {n} (Poisson arrivals, seed 0)")
_CRUSOE_WEIGHTS = {"llama-3.1-8b": "meta-llama/Meta-Llama-3.1-8B-Instruct BF16",
                   "llama-3.1-8b-fp8": "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8-dynamic "
                                       "(W8A8 FP8, BF16 KV cache)"}
# The rows the vLLM 0.5 overheads and the FP8 compute ratio are fitted to (tidal.sim.engine,
# tidal.sim.perf_model); every other Crusoe row checks them.
CRUSOE_FITTED = {("llama-3.1-8b", 1.0, "tpot_p50_ms"), ("llama-3.1-8b", 1.0, "ttft_p50_ms"),
                 ("llama-3.1-8b", 9.0, "tpot_p50_ms"), ("llama-3.1-8b", 9.0, "ttft_p50_ms"),
                 ("llama-3.1-8b-fp8", 1.0, "ttft_p50_ms")}


def _crusoe_measurements() -> tuple[Measurement, ...]:
    rows = []
    for (model, rate), (file, prompt, tpot_ms, ttft_ms) in _CRUSOE_RUNS.items():
        n = int(CRUSOE_SECONDS_PER_RATE * rate)
        tag = "fp8" if model.endswith("-fp8") else "bf16"
        for metric, value in (("tpot_p50_ms", tpot_ms), ("ttft_p50_ms", ttft_ms)):
            rows.append(Measurement(
                f"crusoe-l40s-8b-{tag}-{rate:g}qps-{metric.split('_')[0]}", "crusoe",
                "Crusoe, crusoecloud/crusoe-cookbook (GitHub), content/vllm-l40s-fp8/raw_data/"
                f"{file} (median_{metric.split('_')[0]}_ms)",
                _CRUSOE_SETUP.format(weights=_CRUSOE_WEIGHTS[model], rate=rate, n=n),
                model, "L40S", 1, 1, prompt, CRUSOE_OUTPUT_TOKENS, n, metric, value,
                engine_version=VLLM_V05_CHUNKED, request_rate_rps=rate,
                fitted=(model, rate, metric) in CRUSOE_FITTED))
    return tuple(rows)


MEASUREMENTS: tuple[Measurement, ...] = (
    # ---- InferenceBench: vLLM 0.21, H100, Llama-3.1-8B ------------------------------------
    Measurement(
        "inferencebench-h100-c1-tpot", "inferencebench",
        "InferenceBench 'concurrency sweep' recipe, yobitelcomm.github.io/bench/recipes/"
        "concurrency-sweep (summary table, conc=1)",
        "vLLM 0.21.0, fp16, 1x H100-80GB-HBM3, llm.inference.chatbot-short profile "
        "(prompt length not stated; we assume 128 in / 128 out)",
        "llama-3.1-8b", "H100-80GB", 1, 1, 128, 128, 20, "tpot_p50_ms", 6.48),
    Measurement(
        "inferencebench-h100-c4-tpot", "inferencebench", "same table, conc=4",
        "as above, 4 concurrent clients",
        "llama-3.1-8b", "H100-80GB", 1, 4, 128, 128, 40, "tpot_p50_ms", 6.59),
    Measurement(
        "inferencebench-h100-c16-tpot", "inferencebench", "same table, conc=16",
        "as above, 16 concurrent clients",
        "llama-3.1-8b", "H100-80GB", 1, 16, 128, 128, 160, "tpot_p50_ms", 10.94,
        excluded="the profile's prompt and output lengths are not published and at 16 "
                 "clients TPOT depends on them (prefill chunks share iterations with the "
                 "decodes); the table's throughput column fits no fixed length (conc=1: 122 "
                 "tok/s at 6.48 ms/token leaves ~21 % of each request outside decoding, "
                 "conc=16: 1,384 tok/s at 10.94 ms leaves ~5 %), so lengths vary per request"),
    # ---- J. Musgrave: vLLM 0.23, A100 40GB, Llama-3.1-8B, 1024 in / 128 out ---------------
    Measurement(
        "musgrave-a100-40gb-c1-tpot", "musgrave",
        "J. Musgrave, 'vLLM throughput-latency sweep on NVIDIA A100', johnmusgrave.com/p/"
        "vllm-throughput-latency-sweep-on (text: ~75 tokens/s per request at C=1)",
        "vLLM 0.23.0, BF16, 1x A100 40GB, random 1024 in / 128 out, --ignore-eos, "
        "max-concurrency 1; 75 tok/s -> 13.3 ms per output token",
        "llama-3.1-8b", "A100-40GB", 1, 1, 1024, 128, 20, "tpot_p50_ms", 1000 / 75),
    Measurement(
        "musgrave-a100-40gb-c8-vs-c1-throughput", "musgrave",
        "same post (text: 'a 6.6x gain with almost no latency cost' from C=1 to C=8)",
        "as above; --num-prompts 20 x C at each concurrency; ratio of output throughputs",
        "llama-3.1-8b", "A100-40GB", 1, 8, 1024, 128, 160, "throughput_ratio", 6.6,
        baseline_concurrency=1, prompts_per_client=20),
    # ---- Database Mart: vLLM, A40, Llama-3.1-8B, 50 concurrent ------------------------------
    Measurement(
        "databasemart-a40-c50-tpot", "databasemart",
        "Database Mart, 'vLLM GPU benchmark: A40', databasemart.com/blog/vllm-gpu-benchmark-a40 "
        "(Scenario 1 table, Llama-3.1-8B-Instruct column)",
        _DBM_SETUP, "llama-3.1-8b", "A40", 1, 50, 100, 443, 50, "tpot_p50_ms", 35.96,
        requests=_DBM_REQUESTS),
    Measurement(
        "databasemart-a40-c50-ttft", "databasemart", "same table", "as above",
        "llama-3.1-8b", "A40", 1, 50, 100, 443, 50, "ttft_p50_ms", 219.88,
        excluded="physically inconsistent: 50 x 100 prompt tokens need >= 80 TFLOP, i.e. "
                 ">= 0.53 s at the A40's 149.7 TFLOPS peak before the last first token; a "
                 "median TTFT of 0.22 s would need the median request's prefill to finish "
                 "after < 40 % of that work under FCFS chunked prefill"),
    Measurement(
        "databasemart-a40-c50-throughput", "databasemart",
        "same table", _DBM_SETUP, "llama-3.1-8b", "A40", 1, 50,
        100, 443, 50, "output_tokens_per_s", 1016.60, requests=_DBM_REQUESTS),
    # ---- Lambda: vLLM 0.6.0, 10 ShareGPT prompts at once (exact lengths) -------------------
    Measurement(
        "lambda-h100-8b-p10-tpot", "lambda",
        _LAMBDA.format(gpus="1xH100-80GB-SXM", file="Meta-Llama-3-8B-Instruct_tp1_len2048.json"),
        _LAMBDA_SETUP.format(what="Llama-3-8B-Instruct BF16 (Llama-3.1-8B's shape), 1x H100 SXM"),
        "llama-3.1-8b", "H100-80GB", 1, 10, 0, 0, 10, "tpot_p50_ms", 7.558,
        engine_version=VLLM_V0,
        requests=_lambda_requests((120, 429, 233, 194, 101, 741, 9, 3, 6, 31))),
    Measurement(
        "lambda-h100-8b-p10-ttft", "lambda", "same file (median_ttft_ms)",
        _LAMBDA_SETUP.format(what="as above"),
        "llama-3.1-8b", "H100-80GB", 1, 10, 0, 0, 10, "ttft_p50_ms", 62.19,
        engine_version=VLLM_V0,
        fitted=True,
        requests=_lambda_requests((120, 429, 233, 194, 101, 741, 9, 3, 6, 31))),
    Measurement(
        "lambda-a100-8b-p10-tpot", "lambda",
        _LAMBDA.format(gpus="1xA100-80GB-SXM", file="Meta-Llama-3-8B-Instruct_tp1_len2048.json"),
        _LAMBDA_SETUP.format(what="Llama-3-8B-Instruct BF16, 1x A100 80GB SXM"),
        "llama-3.1-8b", "A100-80GB", 1, 10, 0, 0, 10, "tpot_p50_ms", 12.014,
        engine_version=VLLM_V0,
        requests=_lambda_requests((120, 507, 233, 194, 101, 741, 9, 3, 6, 31))),
    Measurement(
        "lambda-a100-8b-p10-ttft", "lambda", "same file (median_ttft_ms)",
        _LAMBDA_SETUP.format(what="as above"),
        "llama-3.1-8b", "A100-80GB", 1, 10, 0, 0, 10, "ttft_p50_ms", 126.73,
        engine_version=VLLM_V0,
        requests=_lambda_requests((120, 507, 233, 194, 101, 741, 9, 3, 6, 31))),
    Measurement(
        "lambda-h100x4-70b-p10-tpot", "lambda",
        _LAMBDA.format(gpus="4xH100-80GB-SXM", file="Meta-Llama-3-70B-Instruct_tp4_len2048.json"),
        _LAMBDA_SETUP.format(what="Llama-3-70B-Instruct BF16 (Llama-3.1-70B's shape), 4x H100 "
                                  "SXM, TP 4"),
        "llama-3.1-70b", "H100-80GB", 4, 10, 0, 0, 10, "tpot_p50_ms", 18.117,
        engine_version=VLLM_V0,
        requests=_lambda_requests((120, 661, 233, 194, 101, 741, 0, 0, 6, 35))),
    Measurement(
        "lambda-h100x8-70b-p10-tpot", "lambda",
        _LAMBDA.format(gpus="8xH100-80GB-SXM", file="Meta-Llama-3-70B-Instruct_tp8_len2048.json"),
        _LAMBDA_SETUP.format(what="Llama-3-70B-Instruct BF16, 8x H100 SXM, TP 8"),
        "llama-3.1-70b", "H100-80GB", 8, 10, 0, 0, 10, "tpot_p50_ms", 12.179,
        engine_version=VLLM_V0,
        requests=_lambda_requests((120, 624, 233, 194, 101, 741, 0, 0, 6, 35))),
    Measurement(
        "lambda-h100x4-70b-fp8-p10-tpot", "lambda",
        _LAMBDA.format(gpus="4xH100-80GB-SXM",
                       file="Meta-Llama-3.1-70B-Instruct-FP8_tp4_len2048.json"),
        _LAMBDA_SETUP.format(what="neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8 (FP8 weights, "
                                  "BF16 KV cache), 4x H100 SXM, TP 4"),
        "llama-3.1-70b-fp8", "H100-80GB", 4, 10, 0, 0, 10, "tpot_p50_ms", 13.116,
        engine_version=VLLM_V0,
        requests=_lambda_requests((120, 770, 233, 194, 101, 741, 0, 0, 6, 63))),
    Measurement(
        "lambda-h100x1-70b-fp8-p10-tpot", "lambda",
        _LAMBDA.format(gpus="1xH100-80GB-SXM",
                       file="Meta-Llama-3.1-70B-Instruct-FP8_tp1_len2048.json"),
        _LAMBDA_SETUP.format(what="neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8 on ONE H100 SXM "
                                  "(the FP8 weights fit; Lambda reports 4k context at most)"),
        "llama-3.1-70b-fp8", "H100-80GB", 1, 10, 0, 0, 10, "tpot_p50_ms", 32.093,
        engine_version=VLLM_V0,
        fitted=True,
        requests=_lambda_requests((120, 655, 92, 194, 101, 741, 0, 0, 6, 78))),
    # ---- Lambda: vLLM 0.6.0 saturation, thousands of ShareGPT prompts at once --------------
    Measurement(
        "lambda-h100-8b-sharegpt-throughput", "lambda",
        _LAMBDA_TABLE + " ('Llama 3.1 8B: tp=1, rps=inf, num-prompt=5000')",
        _LAMBDA_TABLE_SETUP.format(n="5,000") + "; Llama 3.1 8B BF16, 1x H100 SXM; 2,000 "
        "prompts replayed (steady state is reached long before)",
        "llama-3.1-8b", "H100-80GB", 1, 2000, 0, 0, 2000, "output_tokens_per_s", 8088.35,
        engine_version=VLLM_V0, sharegpt_lengths=True),
    Measurement(
        "lambda-h100x4-70b-sharegpt-throughput", "lambda",
        _LAMBDA_TABLE + " ('Llama 3.1 70B: tp=4, rps=inf, num-prompt=5000')",
        _LAMBDA_TABLE_SETUP.format(n="5,000") + "; Llama 3.1 70B BF16, 4x H100 SXM, TP 4; "
        "2,000 prompts replayed",
        "llama-3.1-70b", "H100-80GB", 4, 2000, 0, 0, 2000, "output_tokens_per_s", 3542.88,
        engine_version=VLLM_V0, sharegpt_lengths=True),
) + _crusoe_measurements()


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


def sharegpt_like_lengths(n: int) -> list[tuple[int, int]]:
    """``n`` (prompt, output) pairs around ShareGPT's Llama-3 means (see SHAREGPT_*)."""
    rng = np.random.default_rng(SHAREGPT_SEED)
    pairs = []
    for mean, cap in ((SHAREGPT_MEAN_PROMPT_TOKENS, SHAREGPT_MAX_PROMPT_TOKENS),
                      (SHAREGPT_MEAN_OUTPUT_TOKENS, SHAREGPT_MAX_TOTAL_TOKENS)):
        mu = np.log(mean) - SHAREGPT_LENGTH_SIGMA ** 2 / 2
        pairs.append(np.clip(rng.lognormal(mu, SHAREGPT_LENGTH_SIGMA, n), 4, cap).astype(int))
    prompts, outputs = pairs
    outputs = np.minimum(outputs, SHAREGPT_MAX_TOTAL_TOKENS - prompts)
    return list(zip(prompts.tolist(), outputs.tolist()))


def _requests(m: Measurement, concurrency: int) -> list[tuple[int, int]]:
    if m.requests:
        return list(m.requests)
    n = m.prompts_per_client * concurrency if m.prompts_per_client else m.num_prompts
    if m.sharegpt_lengths:
        return sharegpt_like_lengths(n)
    return [(m.prompt_tokens, m.output_tokens)] * n


# vLLM's benchmark_serving.py seeds NumPy's global generator with ``--seed`` (default 0)
# and draws each gap between requests as ``np.random.exponential(1 / request_rate)``.
BENCHMARK_SERVING_SEED = 0


def poisson_arrivals_s(n: int, rate_rps: float) -> list[float]:
    """Send times of ``n`` requests as benchmark_serving.py draws them at ``rate_rps``."""
    rng = np.random.RandomState(BENCHMARK_SERVING_SEED)
    gaps = [rng.exponential(1.0 / rate_rps) for _ in range(max(0, n - 1))]
    return [0.0] + np.cumsum(gaps).tolist()


def replay(m: Measurement, concurrency: int | None = None,
           engine_config: EngineConfig | None = None) -> list[Sequence]:
    """Run the closed-loop benchmark ``m`` describes; the finished sequences."""
    concurrency = m.concurrency if concurrency is None else concurrency
    model, accel = get_model(m.model), get_accelerator(m.accelerator)
    perf = StepTimeModel(model, accel, m.tp)
    sink = _Collector()
    # random / ShareGPT prompts: no prefix reuse, as in the benchmarks
    cfg = engine_config or EngineConfig(engine_version=m.engine_version)
    cfg = EngineConfig(max_num_batched_tokens=cfg.max_num_batched_tokens,
                       max_num_seqs=cfg.max_num_seqs, engine_version=cfg.engine_version,
                       enable_prefix_cache=False)
    engine = Engine(0, perf, kv_capacity_tokens(model, accel, m.tp), sink, cfg)
    todo = _requests(m, concurrency)
    if m.request_rate_rps > 0:
        return _replay_open_loop(engine, sink, todo, m.request_rate_rps)
    sent = 0

    def send(t: float) -> None:
        nonlocal sent
        prompt, output = todo[sent]
        engine.submit(Sequence(_Req(t, prompt, output, request_id=sent)), t)
        sent += 1

    for _ in range(min(concurrency, len(todo))):
        send(0.0)
    done = 0
    while engine.next_wake_s is not None:
        t = engine.next_wake_s
        engine.wake(t)
        while done < len(sink.finished):
            done += 1
            if sent < len(todo):
                send(t)
    return sink.finished


def _replay_open_loop(engine: Engine, sink: _Collector, todo: list[tuple[int, int]],
                      rate_rps: float) -> list[Sequence]:
    """Submit ``todo`` at Poisson send times, whatever the engine is doing; run to the end."""
    arrivals = poisson_arrivals_s(len(todo), rate_rps)
    sent = 0
    while sent < len(todo) or engine.next_wake_s is not None:
        wake = engine.next_wake_s
        if sent < len(todo) and (wake is None or arrivals[sent] <= wake):
            prompt, output = todo[sent]
            engine.submit(Sequence(_Req(arrivals[sent], prompt, output, request_id=sent)),
                          arrivals[sent])
            sent += 1
        else:
            engine.wake(wake)
    return sink.finished


def _output_throughput(seqs: list[Sequence]) -> float:
    return sum(s.output_tokens for s in seqs) / max(s.finish_s for s in seqs)


def predict(m: Measurement, engine_config: EngineConfig | None = None) -> float:
    """The simulator's value of ``m.metric`` for the benchmark ``m`` describes."""
    seqs = replay(m, engine_config=engine_config)
    if m.metric == "tpot_p50_ms":
        # vllm bench serve: TPOT over requests with more than one output token
        return float(np.median([(s.finish_s - s.first_token_s) / (s.output_tokens - 1)
                                for s in seqs if s.output_tokens > 1])) * 1e3
    if m.metric == "ttft_p50_ms":
        return float(np.median([s.first_token_s - s.arrival_s for s in seqs])) * 1e3
    if m.metric == "output_tokens_per_s":
        return _output_throughput(seqs)
    if m.metric == "throughput_ratio":
        base = replay(m, m.baseline_concurrency, engine_config)
        return _output_throughput(seqs) / _output_throughput(base)
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
        note = (" (excluded)" if m.excluded
                else " (fitted)" if m.fitted and abs(err) <= m.tolerance
                else "" if abs(err) <= m.tolerance and m.tolerance <= TOLERANCE
                else f" (bound {m.tolerance:.0%})" if abs(err) <= m.tolerance else " FAIL")
        print(f"{m.key:40s} {m.metric:20s} measured {m.value:9.2f} predicted {p:9.2f} "
              f"error {err:+.1%}{note}")
