"""Engine invariants: causality, KV capacity, preemption, prefix cache, run truncation,
and the scheduler limits and batching of each engine version."""

from __future__ import annotations


import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sim.conftest import Recorder, make_requests
from tidal.sim.engine import (ENGINE_SEQ_OVERHEAD_S, ENGINE_STEP_OVERHEAD_S,
                              REQUEST_PATH_LATENCY_S, VLLM_V0, VLLM_V05_CHUNKED, VLLM_V1, Engine,
                              EngineConfig, EngineLimits, Sequence, default_engine_limits)
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.perf_model import StepTimeModel
from tidal.sim.traces import LLMRequest

PERF = StepTimeModel(get_model("llama-3.1-8b"), get_accelerator("H100-80GB"), 1)


def drive(engine: Engine, requests, *, check=None) -> None:
    """Minimal event loop for one engine: arrivals and segment ends in time order."""
    i = 0
    while i < len(requests) or engine.next_wake_s is not None:
        wake = engine.next_wake_s if engine.next_wake_s is not None else float("inf")
        if i < len(requests) and requests[i].arrival_s <= wake:
            engine.submit(Sequence(requests[i]), requests[i].arrival_s)
            i += 1
        else:
            engine.wake(wake)
        if check:
            check(engine)


def kv_check(engine: Engine) -> None:
    assert engine.blocks_used <= engine.capacity_blocks
    assert engine.own_blocks_used >= 0
    assert engine.peak_blocks_used <= engine.capacity_blocks


def test_every_request_finishes_after_it_arrives(recorder: Recorder) -> None:
    engine = Engine(0, PERF, 400_000, recorder)
    reqs = make_requests(200, gap_s=0.05)
    drive(engine, reqs, check=kv_check)
    assert len(recorder.finished) == len(reqs)
    for seq, t in recorder.finished:
        assert seq.arrival_s <= seq.first_token_s <= t == seq.finish_s
        assert seq.generated == seq.output_tokens
    assert recorder.output_tokens == sum(r.output_tokens for r in reqs)
    assert recorder.prompt_tokens == sum(r.prompt_tokens for r in reqs)


def test_preemption_happens_when_kv_is_full_and_capacity_is_never_exceeded(
        recorder: Recorder) -> None:
    # 6,000 tokens of KV; each request needs up to ~1,500: more than four at once cannot fit
    engine = Engine(0, PERF, 6_000, recorder)
    reqs = [LLMRequest(arrival_s=0.01 * i, prompt_tokens=500, output_tokens=1000, request_id=i)
            for i in range(12)]
    drive(engine, reqs, check=kv_check)
    assert engine.preemptions > 0
    assert len(recorder.finished) == 12
    assert all(s.generated == s.output_tokens for s, _ in recorder.finished)


def test_without_kv_pressure_nothing_is_preempted(recorder: Recorder) -> None:
    engine = Engine(0, PERF, 400_000, recorder)
    drive(engine, [LLMRequest(arrival_s=0.01 * i, prompt_tokens=500, output_tokens=1000)
                   for i in range(12)])
    assert engine.preemptions == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 5), st.integers(1, 3000), st.integers(1, 400)),
                min_size=1, max_size=40),
       st.integers(4_000, 40_000), st.booleans(), st.sampled_from([VLLM_V1, VLLM_V0, VLLM_V05_CHUNKED]))
def test_kv_never_exceeds_capacity_and_all_finish(rows, kv_tokens, prefix, version) -> None:
    rows = sorted(rows)
    reqs = [LLMRequest(arrival_s=a, prompt_tokens=p, output_tokens=o,
                       hash_ids=tuple(range(p // 512)) if prefix else (), request_id=i)
            for i, (a, p, o) in enumerate(rows) if p + o <= kv_tokens]
    if not reqs:
        return
    rec = Recorder()
    engine = Engine(0, PERF, kv_tokens, rec,
                    EngineConfig(max_num_batched_tokens=1024, engine_version=version))
    drive(engine, reqs, check=kv_check)
    assert len(rec.finished) == len(reqs)
    for seq, t in rec.finished:
        assert seq.arrival_s <= seq.first_token_s <= t


def test_prefix_cache_hits_reduce_prefill_work() -> None:
    shared = tuple(range(8))                  # 8 x 512 = 4,096 shared prompt tokens
    reqs = [LLMRequest(arrival_s=10.0 * i, prompt_tokens=4200, output_tokens=20,
                       hash_ids=shared + (100 + i,), request_id=i) for i in range(5)]
    with_cache, without = Recorder(), Recorder()
    e1 = Engine(0, PERF, 400_000, with_cache, EngineConfig(enable_prefix_cache=True))
    e2 = Engine(0, PERF, 400_000, without, EngineConfig(enable_prefix_cache=False))
    drive(e1, reqs)
    drive(e2, reqs)
    assert with_cache.prompt_tokens < without.prompt_tokens
    cached = {s.req.request_id: s.cached_tokens for s, _ in with_cache.finished}
    assert cached[0] == 0 and all(cached[i] == 4096 for i in range(1, 5))
    ttft_hit = [s.first_token_s - s.arrival_s for s, _ in with_cache.finished][1:]
    ttft_miss = [s.first_token_s - s.arrival_s for s, _ in without.finished][1:]
    assert max(ttft_hit) < min(ttft_miss)


def test_request_joins_a_decode_run_at_the_next_iteration(recorder: Recorder) -> None:
    engine = Engine(0, PERF, 400_000, recorder)
    long_req = LLMRequest(arrival_s=0.0, prompt_tokens=100, output_tokens=2000, request_id=0)
    late = LLMRequest(arrival_s=1.0, prompt_tokens=100, output_tokens=5, request_id=1)
    drive(engine, [long_req, late])
    seqs = {s.req.request_id: s for s, _ in recorder.finished}
    # it must not wait for the 2000-token run to end (~14 s): one step plus its own prefill
    assert seqs[1].first_token_s - 1.0 < 0.05
    assert seqs[0].finish_s > seqs[1].finish_s


def test_decode_run_closed_form_matches_step_by_step() -> None:
    a, b = PERF.decode_run_coefficients(7)
    total = 0.0
    for k in range(50):
        total += PERF.iteration_s(decode_seqs=7, decode_context_tokens=3000 + 7 * k)
    assert abs(StepTimeModel.decode_run_s(a, b, 7, 3000, 50) - total) < 1e-9


@given(st.integers(1, 256), st.integers(0, 500_000), st.floats(0, 100))
def test_iterations_done_inverts_run_time(n, ctx, elapsed) -> None:
    a, b = PERF.decode_run_coefficients(n)
    k = StepTimeModel.decode_iterations_done(a, b, n, ctx, elapsed)
    assert StepTimeModel.decode_run_s(a, b, n, ctx, k) <= elapsed + 1e-12
    assert StepTimeModel.decode_run_s(a, b, n, ctx, k + 1) > elapsed


def test_session_ttl_pins_prefix_against_lru_eviction() -> None:
    # session 1's prefix is pinned; a flood of other prefixes would evict it under plain LRU
    def run(ttl):
        rec = Recorder()
        engine = Engine(0, PERF, 20_000, rec, EngineConfig(session_kv_ttl_s=ttl))
        reqs = [LLMRequest(0.0, 2100, 4, hash_ids=(1, 2, 3, 4), session_id=1, request_id=0)]
        reqs += [LLMRequest(1.0 + i, 2100, 4, hash_ids=(1000 + 4 * i, 1001 + 4 * i,
                                                        1002 + 4 * i, 1003 + 4 * i),
                            session_id=None, request_id=1 + i) for i in range(12)]
        reqs.append(LLMRequest(30.0, 2100, 4, hash_ids=(1, 2, 3, 4), session_id=1,
                               request_id=99))
        drive(engine, reqs, check=kv_check)
        return {s.req.request_id: s.cached_tokens for s, _ in rec.finished}[99]

    assert run(None) == 0
    assert run(600.0) == 2048


def test_per_turn_ttl_chooser_pins_and_counts_pinned_memory_seconds() -> None:
    # The chooser sees each finished turn; the pin lasts until the next turn references the KV.
    seen: list[tuple[int, float]] = []

    def choose(req, now_s):
        seen.append((req.request_id, now_s))
        return 600.0 if req.request_id == 0 else None

    rec = Recorder()
    engine = Engine(0, PERF, 20_000, rec, EngineConfig(session_kv_ttl_fn=choose))
    reqs = [LLMRequest(0.0, 2100, 4, hash_ids=(1, 2, 3, 4), session_id=1, request_id=0)]
    reqs += [LLMRequest(1.0 + i, 2100, 4, hash_ids=(1000 + 4 * i, 1001 + 4 * i, 1002 + 4 * i, 1003 + 4 * i),
                        session_id=None, request_id=1 + i) for i in range(12)]
    reqs.append(LLMRequest(30.0, 2100, 4, hash_ids=(1, 2, 3, 4), session_id=1, request_id=99))
    drive(engine, reqs, check=kv_check)
    assert {s.req.request_id: s.cached_tokens for s, _ in rec.finished}[99] == 2048
    assert [rid for rid, _ in seen] == [0, 99]  # only session turns, once each, when they finish
    end_0 = seen[0][1]
    cache = engine.prefix_cache
    assert cache is not None
    cache.close_pins(1e9)
    # four 512-token entries pinned from turn 0's end until turn 99 references them (~30 s)
    blocks = 4 * cache.kv_blocks_per_entry
    assert cache.pinned_block_s == pytest.approx(blocks * (30.0 - end_0), rel=0.05)


# -- engine limits per engine version and GPU ------------------------------------------------
@pytest.mark.parametrize("accel,batched,seqs", [
    ("H100-80GB", 8192, 1024),   # >= 70 GiB and not an A100: vLLM V1's large defaults
    ("A100-80GB", 2048, 256),    # 80 GB but an A100 (PR #17885)
    ("A100-40GB", 2048, 256), ("L40S", 2048, 256), ("L4", 2048, 256), ("A40", 2048, 256)])
def test_vllm_v1_defaults_follow_the_gpu(accel, batched, seqs) -> None:
    limits = default_engine_limits(get_accelerator(accel), VLLM_V1)
    assert (limits.max_num_batched_tokens, limits.max_num_seqs, limits.chunked_prefill) == (
        batched, seqs, True)


def test_vllm_v0_defaults_and_explicit_limits_win() -> None:
    h100 = get_accelerator("H100-80GB")
    assert default_engine_limits(h100, VLLM_V0) == EngineLimits(2048, 256, chunked_prefill=False)
    limits = EngineConfig(max_num_batched_tokens=4096, max_num_seqs=64).limits(h100)
    assert (limits.max_num_batched_tokens, limits.max_num_seqs) == (4096, 64)
    engine = Engine(0, PERF, 400_000, Recorder(), EngineConfig())
    assert engine.max_num_seqs == 1024 and engine.limits.max_num_batched_tokens == 8192


def test_vllm_v05_with_chunked_prefill_has_its_512_token_budget_on_every_gpu() -> None:
    for accel in ("H100-80GB", "A100-80GB", "L40S"):
        assert default_engine_limits(get_accelerator(accel), VLLM_V05_CHUNKED) == EngineLimits(
            512, 256, chunked_prefill=True)


def test_vllm_v05_overhead_grows_with_the_sequences_in_the_batch() -> None:
    """A decode-only run of n sequences costs step + n x per-sequence overhead per iteration."""
    def decode_s(version: str, n: int) -> float:
        rec = Recorder()
        engine = Engine(0, PERF, 400_000, rec, EngineConfig(engine_version=version))
        drive(engine, [LLMRequest(0.0, 10, 101, request_id=i) for i in range(n)])
        return max(s.finish_s - s.first_token_s for s, _ in rec.finished)

    step, per_seq = ENGINE_STEP_OVERHEAD_S[VLLM_V05_CHUNKED], ENGINE_SEQ_OVERHEAD_S[VLLM_V05_CHUNKED]
    assert per_seq > 0 and ENGINE_SEQ_OVERHEAD_S[VLLM_V1] == ENGINE_SEQ_OVERHEAD_S[VLLM_V0] == 0
    for n in (1, 16):
        # the same 100 decode iterations; only the overheads differ between the versions
        # (to within one iteration boundary: the versions batch the prefill step differently)
        extra = decode_s(VLLM_V05_CHUNKED, n) - decode_s(VLLM_V1, n)
        assert extra == pytest.approx(100 * (step + n * per_seq), rel=0.01)


def test_bad_engine_limits_are_clear_errors() -> None:
    h100 = get_accelerator("H100-80GB")
    with pytest.raises(ValueError, match="max_num_batched_tokens .* must be >= max_num_seqs"):
        EngineConfig(max_num_batched_tokens=128, max_num_seqs=256).limits(h100)
    with pytest.raises(ValueError, match="max_num_seqs must be >= 1"):
        EngineConfig(max_num_seqs=0).limits(h100)
    with pytest.raises(ValueError, match="unknown engine version 'vllm-v9'.*vllm-v1"):
        EngineConfig(engine_version="vllm-v9").limits(h100)


def test_max_num_seqs_caps_the_running_batch() -> None:
    seen = []
    engine = Engine(0, PERF, 400_000, Recorder(), EngineConfig(max_num_seqs=8))
    drive(engine, [LLMRequest(0.0, 50, 200, request_id=i) for i in range(30)],
          check=lambda e: seen.append(len(e.running)))
    assert max(seen) == 8


def _mixed_iterations(version: str) -> int:
    engine = Engine(0, PERF, 400_000, Recorder(), EngineConfig(engine_version=version))
    mixed = 0
    original = engine._schedule_step

    def spy(now_s):
        nonlocal mixed
        plan = original(now_s)
        kinds = {s.in_prefill for s, _ in plan}
        mixed += kinds == {True, False}
        return plan

    engine._schedule_step = spy
    drive(engine, make_requests(60, gap_s=0.02, prompt=700, output=60))
    return mixed


def test_v0_prefills_alone_while_v1_mixes_prefill_chunks_into_decode_iterations() -> None:
    assert _mixed_iterations(VLLM_V0) == 0
    assert _mixed_iterations(VLLM_V1) > 0


def test_token_budget_trades_first_ttft_for_last_under_a_burst() -> None:
    def ttfts(budget: int) -> list[float]:
        rec = Recorder()
        engine = Engine(0, PERF, 400_000, rec, EngineConfig(max_num_batched_tokens=budget))
        drive(engine, [LLMRequest(0.0, 1500, 20, request_id=i) for i in range(16)])
        return sorted(s.first_token_s - s.arrival_s for s, _ in rec.finished)

    small, large = ttfts(2048), ttfts(8192)
    # bigger iterations run the GEMMs more efficiently: the burst's prompts are all in
    # sooner, while the early ones wait for a larger iteration
    assert large[-1] < small[-1] and large[1] > small[1]


# -- request-path latency (API server share) --------------------------------------------------
def test_v0_scheduler_sees_a_request_after_the_request_path_latency() -> None:
    def ttft(version: str) -> float:
        rec = Recorder()
        engine = Engine(0, PERF, 400_000, rec, EngineConfig(engine_version=version))
        drive(engine, [LLMRequest(1.0, 200, 5, request_id=0)])
        seq = rec.finished[0][0]
        return seq.first_token_s - seq.arrival_s

    latency = REQUEST_PATH_LATENCY_S[VLLM_V0]
    v0, v1 = ttft(VLLM_V0), ttft(VLLM_V1)
    assert latency > 0 and REQUEST_PATH_LATENCY_S[VLLM_V1] == 0
    # same prefill, plus the latency and V0's per-iteration overhead
    assert v0 - v1 == pytest.approx(latency + ENGINE_STEP_OVERHEAD_S[VLLM_V0], rel=1e-6)


def test_request_path_latency_keeps_the_request_counted_and_joins_a_run_when_visible() -> None:
    rec = Recorder()
    engine = Engine(0, PERF, 400_000, rec, EngineConfig(engine_version=VLLM_V0))
    long_req = LLMRequest(arrival_s=0.0, prompt_tokens=100, output_tokens=2000, request_id=0)
    late = LLMRequest(arrival_s=1.0, prompt_tokens=100, output_tokens=5, request_id=1)
    counts = []
    drive(engine, [long_req, late], check=lambda e: counts.append(e.num_requests))
    assert max(counts) == 2          # the in-flight request counts while the API server has it
    seqs = {s.req.request_id: s for s, _ in rec.finished}
    latency = REQUEST_PATH_LATENCY_S[VLLM_V0]
    # visible after the latency, then in at the next iteration boundary (not after the run)
    assert latency < seqs[1].first_token_s - 1.0 < latency + 0.05
    assert seqs[0].finish_s > seqs[1].finish_s


@pytest.mark.parametrize("version", [VLLM_V0, VLLM_V1])
def test_engine_speed_stretches_every_iteration(version: str) -> None:
    """--engine-speed 0.5: the same work takes twice as long, request path latency excepted."""
    def latencies(speed: float) -> tuple[float, float]:
        rec = Recorder()
        engine = Engine(0, PERF, 400_000, rec, EngineConfig(engine_version=version, engine_speed=speed))
        drive(engine, [LLMRequest(1.0, 500, 40, request_id=0)])
        seq = rec.finished[0][0]
        path = REQUEST_PATH_LATENCY_S[version]
        return seq.first_token_s - seq.arrival_s - path, seq.finish_s - seq.arrival_s - path

    (ttft, total), (slow_ttft, slow_total) = latencies(1.0), latencies(0.5)
    assert slow_ttft == pytest.approx(2 * ttft, rel=1e-6)
    assert slow_total == pytest.approx(2 * total, rel=1e-6)


@pytest.mark.parametrize("speed", [0.0, -1.0, float("nan"), 1000.0])
def test_engine_speed_out_of_range_is_a_clear_error(speed: float) -> None:
    with pytest.raises(ValueError, match="engine_speed must be in"):
        EngineConfig(engine_speed=speed)
