"""Decode attention from measured kernel tables (tidal.sim.decode_attention, docs/calibration.md)."""

from __future__ import annotations

import pytest

from tidal.sim import decode_attention
from tidal.sim.decode_attention import BENCHMARKS, KERNEL_FAMILIES, fit, streaming_efficiency
from tidal.sim.hardware import ACCELERATORS, MODELS
from tidal.sim.perf_model import StepTimeModel


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_fit_reproduces_every_measured_row(name) -> None:
    """time = fixed + bytes / (e x peak) describes each table it is fitted to."""
    bench = BENCHMARKS[name]
    eff, fixed_s = fit(bench)
    assert 0.5 < eff <= 1.0 and fixed_s > 0
    for tokens, read, seconds in bench.rows:
        predicted = fixed_s + read / (eff * bench.peak_bandwidth_bps)
        # small contexts are launch- and latency-bound, so the line is looser there
        assert abs(predicted - seconds) / seconds < (0.15 if tokens >= 128 else 0.35), (name, tokens)


def test_tables_are_bandwidth_bound_at_long_contexts() -> None:
    """The longest rows stream at >= 90 % of peak: the slope is a bandwidth, not noise."""
    for name in KERNEL_FAMILIES["sm80"]:
        bench = BENCHMARKS[name]
        _, read, seconds = bench.rows[-1]
        assert read / seconds / bench.peak_bandwidth_bps > 0.9


def test_every_accelerator_has_a_measured_kernel_family() -> None:
    for accel in ACCELERATORS.values():
        assert 0.5 < streaming_efficiency(accel.decode_attention_kernels) <= 1.0
    with pytest.raises(ValueError, match="sm80"):
        streaming_efficiency("sm70")


@pytest.mark.parametrize("accel", sorted(ACCELERATORS))
def test_step_model_streams_kv_at_the_measured_rate(accel) -> None:
    a = ACCELERATORS[accel]
    model = MODELS["llama-3.1-8b"]
    perf = StepTimeModel(model, a, 1)
    expected = model.kv_bytes_per_token / (
        a.memory_bandwidth_bps * decode_attention.streaming_efficiency(a.decode_attention_kernels))
    assert perf.decode_attn_s_per_ctx_token == pytest.approx(expected, rel=1e-12)
    # one more sequence of 1,000 tokens in the batch costs exactly its KV bytes at that rate
    base = perf.iteration_s(decode_seqs=64, decode_context_tokens=64_000)
    more = perf.iteration_s(decode_seqs=64, decode_context_tokens=65_000)
    assert more - base == pytest.approx(1000 * expected, rel=1e-9)
