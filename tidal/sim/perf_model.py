"""How long one engine iteration takes: measured operator times + first-principles attention.

An iteration (one forward pass of a continuous-batching engine) processes
``n_tokens`` tokens: one per decoding sequence plus the prefill chunks
scheduled this step. Its time is the sum of

* the non-attention operators of every layer (QKV/out projections, MLP,
  norms, rotary, residual adds) -- Vidur's measured per-layer medians for the
  accelerator, interpolated in ``n_tokens`` and scaled by weight size when the
  model itself was not profiled; a roofline with efficiencies fitted on the
  measured A100/H100 tables when the accelerator was not profiled (L4, L40S);
* two all-reduces per layer under tensor parallelism (measured NVLink tables,
  or a ring all-reduce over the datasheet link bandwidth);
* attention from first principles: prefill chunks cost the FLOPs of QK^T and
  AV against the prior context plus the causal half of the chunk; decoding
  sequences cost the bytes of their KV cache read at memory bandwidth;
* the LM head for every sequence that emits a token (roofline: it is not in
  the profiles);
* a fixed per-iteration engine overhead.

Every constant is listed, with its source, in docs/calibration.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from tidal.sim import vidur_tables
from tidal.sim.hardware import (ACCELERATORS, PROFILED_SHAPES, AcceleratorSpec, ModelSpec)

MATMUL_GROUPS = ("qkv_proj", "out_proj", "mlp_up", "mlp_down")
ELEMENTWISE_GROUPS = ("mlp_act", "elementwise")

# FlashAttention-2 (Dao, 2023, Fig. 4-5) reaches 50-73 % of A100 peak in the forward
# pass for head dim 128; we take the low end because serving chunks are short.
ATTN_PREFILL_FLOP_EFFICIENCY = 0.5
# Fraction of peak HBM bandwidth that paged decode attention achieves. Not measured
# in the Vidur data (attention kernels were not profiled); assumption checked only
# indirectly through the end-to-end comparisons in tests/sim/test_calibration.py.
ATTN_DECODE_BW_EFFICIENCY = 0.6
# Latency of a small NCCL all-reduce inside a node: the floor of Vidur's measured
# single-node all-reduce tables (7-25 us on H100/A100 DGX).
ALLREDUCE_FLOOR_S = 10e-6
# Launch floor of one small kernel on the roofline path: the smallest per-operator
# medians in Vidur's A100/H100 tables are 1-4 us.
ROOFLINE_KERNEL_FLOOR_S = 3e-6
# Non-GPU time per iteration (scheduling, sampling, detokenisation not hidden by
# async scheduling). vLLM >= 0.6 overlaps most CPU work with the GPU step (vLLM blog,
# 2024-09-05 "vLLM v0.6.0: 2.7x throughput"); the value was fitted to the published
# batch-1 TPOT measurements in docs/calibration.md.
ENGINE_STEP_OVERHEAD_S = 0.3e-3


@lru_cache(maxsize=1)
def fitted_roofline_efficiencies() -> tuple[float, float]:
    """(compute efficiency, bandwidth efficiency) of the projection matmuls.

    Fitted on Vidur's measured Llama-2-7B tables on A100 and H100: bandwidth
    efficiency from 1-token (weight-streaming) times, compute efficiency from
    4096-token times. Used only for accelerators without profiles.
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
        bw_effs.append(elements * shape.dtype_bytes / accel.memory_bandwidth_bps / t_one)
        compute_effs.append(2 * grid[-1] * elements / accel.peak_bf16_flops / t_big)
    return float(np.mean(compute_effs)), float(np.mean(bw_effs))


@dataclass
class StepTimeModel:
    """Iteration time for one replica: ``model`` on ``tp`` GPUs of ``accelerator``."""

    model: ModelSpec
    accelerator: AcceleratorSpec
    tp: int = 1
    max_tokens: int = 16384
    step_overhead_s: float = ENGINE_STEP_OVERHEAD_S
    _fixed_s: list[float] = field(init=False, repr=False)
    source: str = field(init=False)

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise ValueError(f"tensor-parallel degree must be >= 1, got {self.tp}")
        n = np.arange(self.max_tokens + 1, dtype=float)
        n[0] = 1.0
        key = (self.accelerator.vidur_profile, self.model.vidur_base, self.tp)
        if key in vidur_tables.OPERATOR_MS:
            layer_s, emb_s = self._measured_layer_s(n, vidur_tables.OPERATOR_MS[key])
            self.source = f"vidur:{key[0]}/{key[1]}/tp{self.tp}"
        else:
            layer_s, emb_s = self._roofline_layer_s(n)
            self.source = "roofline"
        allreduce_s = self._allreduce_s(n * self.model.hidden * self.model.dtype_bytes)
        fixed = self.model.n_layers * (layer_s + 2 * allreduce_s) + emb_s + self.step_overhead_s
        fixed[0] = 0.0
        self._fixed_s = fixed.tolist()
        per_gpu_kv_layer = self.model.kv_bytes_per_token / self.model.n_layers / self.tp
        # seconds of decode attention per token of context (all layers)
        self.decode_attn_s_per_ctx_token = (
            self.model.n_layers * per_gpu_kv_layer
            / (self.accelerator.memory_bandwidth_bps * ATTN_DECODE_BW_EFFICIENCY))
        # seconds of prefill attention per (query, key) pair (all layers)
        self.prefill_attn_s_per_pair = (
            self.model.n_layers * 4 * (self.model.n_heads / self.tp) * self.model.head_dim
            / (self.accelerator.peak_bf16_flops * ATTN_PREFILL_FLOP_EFFICIENCY))
        eff_c, eff_m = fitted_roofline_efficiencies()
        head_elements = self.model.hidden * self.model.vocab / self.tp
        self._lm_head_weight_s = head_elements * self.model.dtype_bytes / (
            self.accelerator.memory_bandwidth_bps * eff_m)
        self._lm_head_flop_s = 2 * head_elements / (self.accelerator.peak_bf16_flops * eff_c)

    # -- construction helpers -------------------------------------------------------
    def _measured_layer_s(self, n: np.ndarray, table: dict) -> tuple[np.ndarray, np.ndarray]:
        grid = np.asarray(vidur_tables.TOKEN_GRID, dtype=float)
        base = PROFILED_SHAPES[self.model.vidur_base]
        total = np.zeros_like(n)
        emb = np.zeros_like(n)
        for group, times_ms in table.items():
            ys = np.asarray(times_ms) * 1e-3
            # linear extrapolation past the profiled 4096 tokens (compute-bound regime)
            slope = (ys[-1] - ys[-2]) / (grid[-1] - grid[-2])
            t = np.where(n <= grid[-1], np.interp(n, grid, ys), ys[-1] + slope * (n - grid[-1]))
            t = t * (self.model.weight_elements(group) / base.weight_elements(group))
            if group == "embedding":
                emb = t
            else:
                total = total + t
        return total, emb

    def _roofline_layer_s(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        eff_c, eff_m = fitted_roofline_efficiencies()
        acc, m = self.accelerator, self.model
        total = np.zeros_like(n)
        for group in MATMUL_GROUPS:
            elements = m.weight_elements(group) / self.tp
            t_compute = 2 * n * elements / (acc.peak_bf16_flops * eff_c)
            t_memory = elements * m.dtype_bytes / (acc.memory_bandwidth_bps * eff_m)
            total += np.maximum(np.maximum(t_compute, t_memory), ROOFLINE_KERNEL_FLOOR_S)
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
        key = (self.accelerator.vidur_profile, self.tp)
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
