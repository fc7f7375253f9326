"""Performance profile of one (model, accelerator class, tensor-parallel degree), from the CRs alone.

The SLO planner (tidal/policies/capacity.py, planner.py) needs step times before it has seen a
single request: how long a prompt takes to prefill, how long one decode iteration takes at a given
batch and context, and how many tokens of KV cache one replica holds. This module derives them
from what a user writes in a ModelDeployment (parameters, dtype, weights size) and an
AcceleratorClass (peak FLOP/s, memory bandwidth, memory), with a roofline:

- prefill of ``n`` tokens is compute-bound: ``2 x parameters x n`` FLOPs at ``peak x e_c``, plus
  attention ``4 x layers x hidden x n x (prior + n/2)`` FLOPs at ``peak x e_attn``, never faster
  than one read of the weights;
- a decode iteration of ``b`` sequences at mean context ``c`` is bandwidth-bound: the weights plus
  ``b x c`` tokens of KV read at ``bandwidth x e_m`` (or compute-bound at ``2 x parameters x b``
  FLOPs, whichever is slower), plus a kernel-launch floor per layer;
- KV bytes per token are ``2 (K and V) x layers x kv_heads x head_dim x bytes``; a replica holds
  ``(TP x memory x utilisation - TP x reserve - weights) / KV bytes per token`` tokens.

Tensor parallelism divides FLOPs, bytes and memory by TP (ideal scaling: all-reduce time is left
to the online correction in tidal/policies/capacity.py). The efficiencies are named defaults
below, with sources; the simulator's step-time model is never read (it is the ground truth the
planner is measured against).

The CR does not state layers, KV heads or head dimension, so :func:`model_shape` takes them from
the published Llama-3 shape nearest in parameter count unless the caller passes them. Models with
full multi-head attention (Llama-2-7B: 32 KV heads) have 4x the KV bytes that derivation assumes;
callers who know the shape pass it, and the online correction absorbs the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tidal.api.modeldeployment import ModelSpec
from tidal.api.types import parse_quantity_bytes
from tidal.policies.defaults import DTYPE_BYTES
from tidal.policies.interface import AcceleratorProfile

# --- roofline efficiencies (defaults with sources) ------------------------------------------------

COMPUTE_EFFICIENCY = 0.736
"""Fraction of datasheet peak FLOP/s that dense matmuls reach: fitted on Vidur's measured Llama-2-7B
A100/H100 operator tables at 4096 tokens (docs/calibration.md, "accelerators not profiled", ``e_c``)."""
BANDWIDTH_EFFICIENCY = 0.760
"""Fraction of datasheet memory bandwidth that weight and KV streaming reaches: fitted on the same
Vidur tables at 1 token (docs/calibration.md, ``e_m``)."""
ATTENTION_EFFICIENCY = 0.5
"""Fraction of peak FLOP/s the prefill attention kernel reaches: FlashAttention-2 forward pass runs
at 50-73 % of A100 peak (Dao 2023); the low end, as docs/calibration.md takes it."""
LAUNCH_FLOOR_PER_LAYER_S = 3e-6
"""Per-layer floor of one iteration (kernel launches that no batch size hides): 3 us per layer, the
smallest per-operator time in Vidur's tables (docs/calibration.md, decode attention row)."""
GPU_MEMORY_UTILIZATION = 0.9
"""Fraction of device memory the engine claims: vLLM's ``--gpu-memory-utilization`` default."""
ACTIVATION_RESERVE_BYTES = 2.5 * 2**30
"""Memory per GPU kept for activations and CUDA graphs, not KV: ~2.5 GiB in vLLM start-up logs of
7-8B models (docs/calibration.md, "KV capacity")."""
KV_BYTES_PER_ELEMENT = 2.0
"""KV cache element size: vLLM's ``--kv-cache-dtype auto`` stores KV in the activation dtype, 16-bit
even for FP8/INT weights."""

# --- model shapes when the CR gives none ------------------------------------------------------------

REFERENCE_SHAPES: tuple[tuple[float, int, int, int, int], ...] = (
    # (parameters in billions, layers, hidden, KV heads, head dim) from each model's config.json
    (3.21, 28, 3072, 8, 128),     # meta-llama/Llama-3.2-3B
    (8.03, 32, 4096, 8, 128),     # meta-llama/Llama-3.1-8B
    (70.55, 80, 8192, 8, 128),    # meta-llama/Llama-3.1-70B
    (405.0, 126, 16384, 8, 128),  # meta-llama/Llama-3.1-405B
)
"""Published Llama-3 shapes; a model without a stated shape gets the one nearest in log-parameters."""


@dataclass(frozen=True)
class ModelShape:
    """What the roofline needs to know about a model."""

    parameters: float
    """Parameter count (not billions)."""
    weights_bytes: float
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    kv_bytes_per_element: float = KV_BYTES_PER_ELEMENT

    def __post_init__(self) -> None:
        for name in ("parameters", "weights_bytes", "layers", "hidden", "kv_heads", "head_dim",
                     "kv_bytes_per_element"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ModelShape.{name} must be a finite number > 0, got {value!r}")

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V of every layer for one token."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * self.kv_bytes_per_element


def model_shape(model: ModelSpec, *, layers: int | None = None, hidden: int | None = None,
                kv_heads: int | None = None, head_dim: int | None = None) -> ModelShape:
    """The shape of ``spec.model``: weights from ``weightsSize`` (else parameters x dtype bytes), the
    rest as given, else from the nearest :data:`REFERENCE_SHAPES` entry."""
    params_b = model.parameters_billions
    ref = min(REFERENCE_SHAPES, key=lambda s: abs(math.log(s[0] / params_b)))
    weights = (parse_quantity_bytes(model.weights_size) if model.weights_size
               else params_b * 1e9 * DTYPE_BYTES[model.dtype])
    return ModelShape(parameters=params_b * 1e9, weights_bytes=float(weights),
                      layers=layers or ref[1], hidden=hidden or ref[2], kv_heads=kv_heads or ref[3],
                      head_dim=head_dim or ref[4])


@dataclass(frozen=True)
class Efficiencies:
    """Roofline efficiencies; the defaults are the named constants above."""

    compute: float = COMPUTE_EFFICIENCY
    bandwidth: float = BANDWIDTH_EFFICIENCY
    attention: float = ATTENTION_EFFICIENCY
    launch_floor_per_layer_s: float = LAUNCH_FLOOR_PER_LAYER_S

    def __post_init__(self) -> None:
        for name in ("compute", "bandwidth", "attention"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"Efficiencies.{name} must be in (0, 1], got {value!r}")
        if self.launch_floor_per_layer_s < 0:
            raise ValueError("Efficiencies.launch_floor_per_layer_s must be >= 0")


@dataclass(frozen=True)
class PerformanceProfile:
    """Predicted step times and KV capacity of one replica (``tp`` GPUs of one accelerator class)."""

    model: ModelShape
    accelerator: AcceleratorProfile
    tp: int = 1
    efficiencies: Efficiencies = Efficiencies()

    def __post_init__(self) -> None:
        if self.tp < 1:
            raise ValueError(f"tp (gpusPerReplica) must be >= 1, got {self.tp}")
        acc = self.accelerator
        for name in ("peak_tflops", "memory_bandwidth_gbps", "memory_bytes"):
            if not getattr(acc, name) > 0:
                raise ValueError(f"AcceleratorClass {acc.name!r}: {name} must be > 0 for a performance profile")

    # -- rates of the whole replica ------------------------------------------------------------------
    @property
    def flops_per_s(self) -> float:
        return self.tp * self.accelerator.peak_tflops * 1e12 * self.efficiencies.compute

    @property
    def attention_flops_per_s(self) -> float:
        return self.tp * self.accelerator.peak_tflops * 1e12 * self.efficiencies.attention

    @property
    def bytes_per_s(self) -> float:
        return self.tp * self.accelerator.memory_bandwidth_gbps * 1e9 * self.efficiencies.bandwidth

    @property
    def step_floor_s(self) -> float:
        return self.model.layers * self.efficiencies.launch_floor_per_layer_s

    # -- step times --------------------------------------------------------------------------------------
    def weights_read_s(self) -> float:
        """One read of the weights: the least any iteration costs."""
        return self.model.weights_bytes / self.bytes_per_s

    def prefill_token_s(self, prior_tokens: float = 0.0, chunk_tokens: float = 1.0) -> float:
        """Marginal compute time of one prompt token in a chunk of ``chunk_tokens`` after
        ``prior_tokens`` of context (matmuls plus its share of attention)."""
        m = self.model
        matmul = 2.0 * m.parameters / self.flops_per_s
        attention = 4.0 * m.layers * m.hidden * (prior_tokens + (chunk_tokens + 1) / 2) / self.attention_flops_per_s
        return matmul + attention

    def prefill_s(self, tokens: float, prior_tokens: float = 0.0) -> float:
        """One iteration prefilling ``tokens`` prompt tokens alone (no decodes in the batch)."""
        if tokens <= 0:
            return 0.0
        compute = tokens * self.prefill_token_s(prior_tokens, tokens)
        return max(compute, self.weights_read_s()) + self.step_floor_s

    def decode_step_s(self, batch: float, context_tokens: float) -> float:
        """One decode iteration of ``batch`` sequences whose mean context is ``context_tokens``."""
        batch = max(batch, 0.0)
        read = self.model.weights_bytes + batch * context_tokens * self.model.kv_bytes_per_token
        memory = read / self.bytes_per_s
        compute = 2.0 * self.model.parameters * batch / self.flops_per_s
        return max(memory, compute) + self.step_floor_s

    # -- memory --------------------------------------------------------------------------------------------
    @property
    def kv_bytes_per_token(self) -> float:
        return self.model.kv_bytes_per_token

    def kv_capacity_tokens(self) -> float:
        """Tokens of KV cache one replica holds (0 when the weights do not fit)."""
        usable = self.tp * (self.accelerator.memory_bytes * GPU_MEMORY_UTILIZATION - ACTIVATION_RESERVE_BYTES)
        return max(0.0, (usable - self.model.weights_bytes) / self.kv_bytes_per_token)


def build_profile(model: ModelSpec | ModelShape, accelerator: AcceleratorProfile, tp: int = 1,
                  efficiencies: Efficiencies | None = None) -> PerformanceProfile:
    """The profile of ``model`` (a CR's ``spec.model`` or an explicit shape) on ``tp`` GPUs of
    ``accelerator`` (as tidal.core.modeldeployment.accelerator_profile builds it from an AcceleratorClass)."""
    shape = model if isinstance(model, ModelShape) else model_shape(model)
    return PerformanceProfile(shape, accelerator, tp, efficiencies or Efficiencies())
