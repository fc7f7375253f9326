"""How long one engine iteration takes: measured operator times + first-principles attention.

An iteration (one forward pass of a continuous-batching engine) processes
``n_tokens`` tokens: one per decoding sequence plus the prefill chunks
scheduled this step. Its time is the sum of

* the non-attention operators of every layer (QKV/out projections, MLP,
  norms, rotary, residual adds) -- Vidur's measured per-layer medians for the
  accelerator, interpolated in ``n_tokens`` and scaled by weight size when the
  model itself was not profiled. An accelerator without profiles (A100-40GB,
  L40S, L4) takes the tables of its ``profile_proxy`` (the same chip, or the
  nearest profiled part of its class) scaled per operator by the ratio of the
  two parts' rooflines; the same ratio (FP8 against BF16 roofline) turns the
  BF16 tables into FP8-weight times. A part with less bandwidth and no more
  compute than its proxy is therefore never faster than it;
* two all-reduces per layer under tensor parallelism (measured NVLink tables,
  or a ring all-reduce over the datasheet link bandwidth);
* attention from first principles: prefill chunks cost the FLOPs of QK^T and
  AV against the prior context plus the causal half of the chunk; decoding
  sequences cost the bytes of their KV cache, streamed at the rate published
  decode-kernel benchmarks measure for the part's kernel family
  (tidal.sim.decode_attention), plus one kernel launch per layer;
* the LM head for every sequence that emits a token (roofline: it is not in
  the profiles).

The engine software's own per-iteration overhead depends on the engine version
and is added by tidal.sim.engine.

Every constant is listed, with its source, in docs/calibration.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tidal.sim import decode_attention, vidur_tables
from tidal.sim.hardware import (ACCELERATORS, BF16_BYTES, PROFILED_SHAPES, AcceleratorSpec,
                                ModelSpec)

MATMUL_GROUPS = ("qkv_proj", "out_proj", "mlp_up", "mlp_down")
ELEMENTWISE_GROUPS = ("mlp_act", "elementwise")

# FlashAttention-2 (Dao, 2023, Fig. 4-5) reaches 50-73 % of A100 peak in the forward
# pass for head dim 128; we take the low end because serving chunks are short.
ATTN_PREFILL_FLOP_EFFICIENCY = 0.5
# Latency of a small NCCL all-reduce inside a node: the floor of Vidur's measured
# single-node all-reduce tables (7-25 us on H100/A100 DGX).
ALLREDUCE_FLOOR_S = 10e-6
# Launch floor of one small kernel on the roofline path: the smallest per-operator
# medians in Vidur's A100/H100 tables are 1-4 us.
ROOFLINE_KERNEL_FLOOR_S = 3e-6
# FP8 linear layers stream their weights at a lower fraction of peak bandwidth than
# the BF16 ones Vidur measured (vLLM's W8A8 path adds a per-token activation-quantisation
# kernel before each GEMM, and FP8 GEMMs at decode batch sizes are less tuned). Fitted
# to Lambda's published 70B-FP8 TPOT on one H100 (docs/calibration.md) and checked on
# the same model at TP 4, which it was not fitted to.
FP8_WEIGHT_STREAMING_EFFICIENCY_RATIO = 0.85


@lru_cache(maxsize=1)
def fitted_roofline_efficiencies() -> tuple[float, float]:
    """(compute efficiency, bandwidth efficiency) of the projection matmuls.

    Fitted on Vidur's measured Llama-2-7B tables on A100 and H100: bandwidth
    efficiency from 1-token (weight-streaming) times, compute efficiency from
    4096-token times. They set the rooflines whose ratios transfer measured tables
    to unprofiled GPUs and to FP8, and the LM head.
    """
    shape = PROFILED_SHAPES["Llama-2-7b-hf"]
    grid = vidur_tables.TOKEN_GRID
    compute_effs, bw_effs = [], []
    for accel_name in ("A100-80GB", "H100-80GB"):
        accel = ACCELERATORS[accel_name]
        table = vidur_tables.OPERATOR_MS[(accel.vidur_profile, "Llama-2-7b-hf", 1)]
        elements = sum(shape.weight_elements(g) for g in MATMUL_GROUPS)
        t_one = sum(table[g][0] for g in MATMUL_GROUPS) * 1e-3
        t_big = sum(table[g][-1] for g in MATMUL_GROUPS) * 1e-3
        bw_effs.append(elements * shape.weight_bytes / accel.memory_bandwidth_bps / t_one)
        compute_effs.append(2 * grid[-1] * elements / accel.peak_bf16_flops / t_big)
    return float(np.mean(compute_effs)), float(np.mean(bw_effs))


def _matmul_roofline_s(n: np.ndarray, elements: float, weight_bytes: float,
                       accel: AcceleratorSpec) -> np.ndarray:
    """Roofline time of one matmul over ``n`` tokens: compute or weight streaming, floored.

    FP8 weights run on FP8 tensor cores where the part has them (W8A8), at the part's
    measured share of that peak (``fp8_compute_efficiency_ratio``); elsewhere vLLM
    dequantises in the kernel (weight-only FP8) and computes at the BF16 rate.
    """
    eff_c, eff_m = fitted_roofline_efficiencies()
    fp8 = weight_bytes < BF16_BYTES and accel.peak_fp8_flops is not None
    peak = accel.peak_fp8_flops if fp8 else accel.peak_bf16_flops
    if fp8:
        eff_c *= accel.fp8_compute_efficiency_ratio
    t_compute = 2 * n * elements / (peak * eff_c)
    if weight_bytes < BF16_BYTES:
        eff_m *= FP8_WEIGHT_STREAMING_EFFICIENCY_RATIO
    t_memory = elements * weight_bytes / (accel.memory_bandwidth_bps * eff_m)
    return np.maximum(np.maximum(t_compute, t_memory), ROOFLINE_KERNEL_FLOOR_S)


# Beyond the profiled token counts time grows linearly (compute-bound GEMMs); the slope is
# the least-squares slope over the grid points from this count on, anchored at the last
# measured point. Checked by holding out the 4096-token point of every Vidur table
# (tests/sim/test_calibration.py): median error 2.2 % at TP >= 2 against 3.5 % for the
# slope of the last interval alone, and no systematic bias at TP >= 2 (mean +1 %).
EXTRAPOLATION_FIT_FROM_TOKENS = 1024


def _extrapolated(n: np.ndarray, grid: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Interpolate a measured table on the token grid; linear beyond it (see above)."""
    fit = grid >= EXTRAPOLATION_FIT_FROM_TOKENS
    slope = float(np.polyfit(grid[fit], ys[fit], 1)[0]) if fit.sum() >= 2 else (
        (ys[-1] - ys[-2]) / (grid[-1] - grid[-2]))
    return np.where(n <= grid[-1], np.interp(n, grid, ys), ys[-1] + slope * (n - grid[-1]))


def _profiled(accelerator: AcceleratorSpec) -> AcceleratorSpec | None:
    """The accelerator whose measured tables stand for ``accelerator`` (itself or its proxy)."""
    if accelerator.vidur_profile:
        return accelerator
    if accelerator.profile_proxy:
        return ACCELERATORS[accelerator.profile_proxy]
    return None


@dataclass
class StepTimeModel:
    """Iteration time for one replica: ``model`` on ``tp`` GPUs of ``accelerator``."""

    model: ModelSpec
    accelerator: AcceleratorSpec
    tp: int = 1
    max_tokens: int = 16384
    _fixed_s: list[float] = field(init=False, repr=False)
    source: str = field(init=False)

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise ValueError(f"tensor-parallel degree must be >= 1, got {self.tp}")
        n = np.arange(self.max_tokens + 1, dtype=float)
        n[0] = 1.0
        ref = _profiled(self.accelerator)
        key = (ref.vidur_profile, self.model.vidur_base, self.tp) if ref else None
        if key in vidur_tables.OPERATOR_MS:
            layer_s, emb_s = self._measured_layer_s(n, vidur_tables.OPERATOR_MS[key], ref)
            self.source = f"vidur:{key[0]}/{key[1]}/tp{self.tp}"
            if ref is not self.accelerator:
                self.source += f" scaled to {self.accelerator.name}"
        else:
            layer_s, emb_s = self._roofline_layer_s(n)
            self.source = "roofline"
        if self.model.weight_bytes < BF16_BYTES:
            self.source += " (FP8 weights)"
        allreduce_s = self._allreduce_s(n * self.model.hidden * self.model.dtype_bytes)
        # one attention kernel launch per layer in every iteration
        attn_launch_s = self.model.n_layers * ROOFLINE_KERNEL_FLOOR_S
        fixed = self.model.n_layers * (layer_s + 2 * allreduce_s) + emb_s + attn_launch_s
        fixed[0] = 0.0
        self._fixed_s = fixed.tolist()
        _, eff_m = fitted_roofline_efficiencies()
        per_gpu_kv_layer = self.model.kv_bytes_per_token / self.model.n_layers / self.tp
        # seconds of decode attention per token of context (all layers): the KV cache is
        # streamed at the rate measured for the part's decode-attention kernel
        attn_eff = decode_attention.streaming_efficiency(self.accelerator.decode_attention_kernels)
        self.decode_attn_s_per_ctx_token = (
            self.model.n_layers * per_gpu_kv_layer / (self.accelerator.memory_bandwidth_bps * attn_eff))
        # seconds of prefill attention per (query, key) pair (all layers)
        self.prefill_attn_s_per_pair = (
            self.model.n_layers * 4 * (self.model.n_heads / self.tp) * self.model.head_dim
            / (self.accelerator.peak_bf16_flops * ATTN_PREFILL_FLOP_EFFICIENCY))
        eff_c, _ = fitted_roofline_efficiencies()
        head_elements = self.model.hidden * self.model.vocab / self.tp
        self._lm_head_weight_s = head_elements * self.model.dtype_bytes / (
            self.accelerator.memory_bandwidth_bps * eff_m)
        self._lm_head_flop_s = 2 * head_elements / (self.accelerator.peak_bf16_flops * eff_c)

    # -- construction helpers -------------------------------------------------------
    def _measured_layer_s(self, n: np.ndarray, table: dict,
                          ref: AcceleratorSpec) -> tuple[np.ndarray, np.ndarray]:
        """Measured BF16 per-layer times of ``ref``, transferred to this model, part and format."""
        grid = np.asarray(vidur_tables.TOKEN_GRID, dtype=float)
        base = PROFILED_SHAPES[self.model.vidur_base]
        acc = self.accelerator
        total = np.zeros_like(n)
        emb = np.zeros_like(n)
        for group, times_ms in table.items():
            ys = np.asarray(times_ms) * 1e-3
            t = _extrapolated(n, grid, ys)
            t = t * (self.model.weight_elements(group) / base.weight_elements(group))
            if group in MATMUL_GROUPS:
                if ref is not acc or self.model.weight_bytes != BF16_BYTES:
                    elements = self.model.weight_elements(group) / self.tp
                    t = t * (_matmul_roofline_s(n, elements, self.model.weight_bytes, acc)
                             / _matmul_roofline_s(n, elements, BF16_BYTES, ref))
            elif ref is not acc:        # elementwise and embedding: activation streaming
                t = t * (ref.memory_bandwidth_bps / acc.memory_bandwidth_bps)
            if group == "embedding":
                emb = t
            else:
                total = total + t
        return total, emb

    def _roofline_layer_s(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, eff_m = fitted_roofline_efficiencies()
        acc, m = self.accelerator, self.model
        total = np.zeros_like(n)
        for group in MATMUL_GROUPS:
            total += _matmul_roofline_s(n, m.weight_elements(group) / self.tp, m.weight_bytes, acc)
        for group in ELEMENTWISE_GROUPS:
            width = m.weight_elements(group) / (self.tp if group == "mlp_act" else 1)
            kernels = 1 if group == "mlp_act" else 5
            t_memory = 2 * n * width * m.dtype_bytes / (acc.memory_bandwidth_bps * eff_m)
            total += np.maximum(t_memory, kernels * ROOFLINE_KERNEL_FLOOR_S)
        emb = np.maximum(n * m.hidden * m.dtype_bytes / (acc.memory_bandwidth_bps * eff_m),
                         ROOFLINE_KERNEL_FLOOR_S)
        return total, emb

    def _allreduce_s(self, message_bytes: np.ndarray) -> np.ndarray:
        if self.tp == 1:
            return np.zeros_like(message_bytes)
        ref = _profiled(self.accelerator)
        same_links = ref is not None and ref.interconnect_bps == self.accelerator.interconnect_bps
        key = (ref.vidur_profile if same_links else None, self.tp)
        if key in vidur_tables.ALL_REDUCE_MS:
            sizes = np.asarray(vidur_tables.ALL_REDUCE_SIZE_GRID_BYTES, dtype=float)
            ys = np.asarray(vidur_tables.ALL_REDUCE_MS[key]) * 1e-3
            slope = (ys[-1] - ys[-2]) / (sizes[-1] - sizes[-2])
            return np.where(message_bytes <= sizes[-1], np.interp(message_bytes, sizes, ys),
                            ys[-1] + slope * (message_bytes - sizes[-1]))
        ring = 2 * (self.tp - 1) / self.tp * message_bytes / self.accelerator.interconnect_bps
        return ring + ALLREDUCE_FLOOR_S

    # -- queries --------------------------------------------------------------------
    def fixed_s(self, n_tokens: int) -> float:
        """Everything except attention and LM head for an iteration of ``n_tokens`` tokens."""
        if n_tokens <= self.max_tokens:
            return self._fixed_s[n_tokens]
        per_token = (self._fixed_s[-1] - self._fixed_s[-2])
        return self._fixed_s[-1] + per_token * (n_tokens - self.max_tokens)

    def lm_head_s(self, n_logits: int) -> float:
        if n_logits <= 0:
            return 0.0
        return max(self._lm_head_weight_s, n_logits * self._lm_head_flop_s)

    def prefill_attention_s(self, chunk_tokens: int, prior_tokens: int) -> float:
        pairs = chunk_tokens * (prior_tokens + (chunk_tokens + 1) / 2)
        return pairs * self.prefill_attn_s_per_pair

    def iteration_s(self, *, decode_seqs: int, decode_context_tokens: int,
                    prefill_chunks: list[tuple[int, int]] = (), prefill_finishing: int = 0) -> float:
        """Time of one iteration.

        ``prefill_chunks`` holds (chunk tokens, tokens already in the KV cache);
        ``prefill_finishing`` counts chunks that complete their prompt (they emit a token).
        """
        n_tokens = decode_seqs + sum(c for c, _ in prefill_chunks)
        t = self.fixed_s(n_tokens) + self.lm_head_s(decode_seqs + prefill_finishing)
        t += decode_context_tokens * self.decode_attn_s_per_ctx_token
        for chunk, prior in prefill_chunks:
            t += self.prefill_attention_s(chunk, prior)
        return t

    # -- closed form for runs of identical decode-only iterations --------------------
    def decode_run_coefficients(self, n_seqs: int) -> tuple[float, float]:
        """(A, B): iteration k of a decode-only run takes A + B * (C0 + n_seqs * k)."""
        return (self.fixed_s(n_seqs) + self.lm_head_s(n_seqs), self.decode_attn_s_per_ctx_token)

    @staticmethod
    def decode_run_s(a: float, b: float, n_seqs: int, context0: int, k: int) -> float:
        """Total time of ``k`` decode iterations starting with ``context0`` context tokens."""
        return k * a + b * (k * context0 + n_seqs * k * (k - 1) / 2)

    @staticmethod
    def decode_iterations_done(a: float, b: float, n_seqs: int, context0: int,
                               elapsed_s: float) -> int:
        """How many whole iterations of a decode run fit into ``elapsed_s`` (inverse of above)."""
        if elapsed_s <= 0:
            return 0
        qa = b * n_seqs / 2
        qb = a + b * context0 - qa
        if qa <= 0:
            k = elapsed_s / qb
        else:
            k = (-qb + math.sqrt(qb * qb + 4 * qa * elapsed_s)) / (2 * qa)
        k = int(k)
        # guard floating error at the boundary
        while k > 0 and StepTimeModel.decode_run_s(a, b, n_seqs, context0, k) > elapsed_s:
            k -= 1
        while StepTimeModel.decode_run_s(a, b, n_seqs, context0, k + 1) <= elapsed_s:
            k += 1
        return k


def kv_capacity_tokens(model: ModelSpec, accelerator: AcceleratorSpec, tp: int, *,
                       gpu_memory_utilization: float = 0.9,
                       runtime_overhead_bytes_per_gpu: float = 2.5 * 1024**3) -> int:
    """Tokens of KV cache a replica holds: (memory x utilisation - weights - overhead) / KV per token.

    ``gpu_memory_utilization`` is vLLM's documented default (0.9). The per-GPU
    runtime overhead (activation peak during the profiling run, CUDA graphs,
    NCCL buffers) of ~2.5 GiB is what vLLM's start-up log reports for 7-8B
    models ("model weights take ...; PyTorch activation peak memory ...").
    """
    usable = tp * (accelerator.memory_bytes * gpu_memory_utilization
                   - runtime_overhead_bytes_per_gpu) - model.weights_bytes
    if usable <= 0:
        raise ValueError(
            f"{model.name} ({model.weights_bytes / 1e9:.0f} GB of weights) does not fit on "
            f"{tp} x {accelerator.name}; raise the tensor-parallel degree")
    return int(usable // model.kv_bytes_per_token)
