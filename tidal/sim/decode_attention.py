"""Decode-attention streaming rate, from published decode-kernel benchmarks.

A decoding sequence's attention reads its whole KV cache once per layer and step, so
its cost is the KV bytes over the rate the attention kernel streams them at. That
rate is measured here, not assumed: each table below is a published benchmark of the
FlashAttention-2 paged-KV kernel (the kernel vLLM's FLASH_ATTN backend calls for
decode) at 64 sequences, one query token each, across context lengths, timed on the
GPU with nvbench (cold L2). :func:`fit` fits ``time = fixed + bytes / (e x peak
bandwidth)`` to a table by least squares; the slope gives ``e``, the kernel's
*marginal* streaming efficiency: what one more context token costs.

The fixed part (12-38 us per call at 64 sequences in these tables) is not used: it is
a cold-cache, stand-alone launch at one batch size, and the simulator's end-to-end
batch-1 checks (docs/calibration.md) leave no room for more than the 3 us launch per
layer it keeps (tidal.sim.perf_model). Both fits are listed in docs/calibration.md.

Parts without a table of their own use the table of the kernel family they run:
Ampere (A100, A40) and Ada (L40S, L4) run FlashAttention-2's sm80 kernels, measured on
an A30 (the GA100 chip of the A100, 56 SMs, 933 GB/s); Hopper (H100) has its own table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MIB = 1024**2
GIB = 1024**3


@dataclass(frozen=True)
class DecodeKernelBenchmark:
    """One published decode-kernel table: GPU time per call against bytes read."""

    source: str
    gpu: str
    peak_bandwidth_bps: float        # the benchmark's own peak (nvbench "Global Memory Bus Peak")
    setup: str
    # (context tokens per sequence, bytes read per call (KV + queries), GPU time per call in s)
    rows: tuple[tuple[int, float, float], ...]


_A30_SOURCE = ("JakeFlasher/benchmark_flash_attention (GitHub), commit cadfe100fb21, "
               "{file}: nvbench run_mha_varlen_fwd, FlashAttention-2 paged KV, NVIDIA A30")
_A30_PEAK_BPS = 933e9        # nvbench: "Global Memory Bus Peak: 933 GB/sec"
_H100_PEAK_BPS = 3.35e12     # H100 SXM5 datasheet (the tables' BWUtil column uses it)

BENCHMARKS: dict[str, DecodeKernelBenchmark] = {
    "a30-fa2-gqa4": DecodeKernelBenchmark(
        _A30_SOURCE.format(file="benchmark-64-GQA4-256-32-8-128.md"), "A30", _A30_PEAK_BPS,
        "64 sequences, 32 query / 8 KV heads, head dim 128 (Llama-3-8B's shape), page 256, FP16",
        ((32, 8.5 * MIB, 47.083e-6), (64, 16.5 * MIB, 50.766e-6), (128, 32.5 * MIB, 70.194e-6),
         (256, 64.5 * MIB, 112.256e-6), (512, 128.5 * MIB, 190.933e-6),
         (1024, 256.5 * MIB, 344.139e-6), (2048, 512.5 * MIB, 647.459e-6),
         (4096, 1.000 * GIB, 1.257e-3), (8192, 2.000 * GIB, 2.480e-3),
         (16384, 4.000 * GIB, 4.926e-3))),
    "a30-fa2-gqa8": DecodeKernelBenchmark(
        _A30_SOURCE.format(file="benchmark-64-GQA8-256-64-8-128.md"), "A30", _A30_PEAK_BPS,
        "64 sequences, 64 query / 8 KV heads, head dim 128 (Llama-3-70B's shape), page 256, FP16",
        ((32, 9.0 * MIB, 48.044e-6), (64, 17.0 * MIB, 52.546e-6), (128, 33.0 * MIB, 71.672e-6),
         (256, 65.0 * MIB, 114.139e-6), (512, 129.0 * MIB, 193.475e-6),
         (1024, 257.0 * MIB, 347.112e-6), (2048, 513.0 * MIB, 650.797e-6),
         (4096, 1.001 * GIB, 1.260890e-3), (8192, 2.001 * GIB, 2.484199e-3),
         (16384, 4.001 * GIB, 4.930962e-3))),
    "h100-fa2-gqa8": DecodeKernelBenchmark(
        "microsoft/onnxruntime PR #21414 '[CUDA] Page Attention', comment of 2024-08-29 "
        "'FA2 - paged batch decode', H100 SXM, 'llama3 70B (GQA8) page_size=256' (nvbench); "
        "the rows the thread shows (contexts 32-256)", "H100-80GB", _H100_PEAK_BPS,
        "64 sequences, 64 query / 8 KV heads, head dim 128, page 256, FP16",
        ((32, 9.0 * MIB, 21.135e-6), (64, 17.0 * MIB, 22.958e-6), (128, 33.0 * MIB, 28.780e-6),
         (256, 65.0 * MIB, 43.563e-6))),
}

# Which tables stand for which kernel family (AcceleratorSpec.decode_attention_kernels).
KERNEL_FAMILIES: dict[str, tuple[str, ...]] = {
    "sm80": ("a30-fa2-gqa4", "a30-fa2-gqa8"),
    "sm90": ("h100-fa2-gqa8",),
}


def fit(benchmark: DecodeKernelBenchmark) -> tuple[float, float]:
    """(marginal streaming efficiency, fixed seconds per call) of ``time = a + bytes x b``."""
    read = np.array([r[1] for r in benchmark.rows])
    seconds = np.array([r[2] for r in benchmark.rows])
    slope, intercept = np.polyfit(read, seconds, 1)
    return float(1.0 / (slope * benchmark.peak_bandwidth_bps)), float(intercept)


@lru_cache(maxsize=None)
def streaming_efficiency(family: str) -> float:
    """Fraction of peak bandwidth at which the ``family`` decode kernel streams KV bytes."""
    try:
        names = KERNEL_FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown decode-attention kernel family {family!r}; "
                         f"known: {', '.join(KERNEL_FAMILIES)}") from None
    return float(np.mean([fit(BENCHMARKS[name])[0] for name in names]))
