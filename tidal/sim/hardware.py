"""Accelerator and model catalogues: every number with the datasheet or model card it comes from.

docs/calibration.md repeats these tables with links; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GIB = 1024**3
MIB = 1024**2
TB_S = 1e12  # bytes per second in one TB/s (vendor datasheets use decimal units)
TFLOPS = 1e12

# Bytes per element of each number format the simulator knows.
BF16_BYTES = 2
FP8_BYTES = 1


@dataclass(frozen=True)
class AcceleratorSpec:
    """One GPU type. Peak FLOP/s are dense (no sparsity) tensor-core numbers.

    ``memory_bytes`` is what the driver reports (``nvidia-smi --query-gpu=memory.total``),
    which is what vLLM sizes its KV cache from; datasheets round it ("80 GB").
    ``peak_fp8_flops`` is None on parts without FP8 tensor cores (Ampere): vLLM then
    runs FP8 checkpoints as weight-only FP8 (Marlin kernels), computing in BF16.
    """

    name: str
    memory_bytes: int
    peak_bf16_flops: float
    memory_bandwidth_bps: float
    interconnect_bps: float          # per-GPU bandwidth for all-reduce / KV transfer inside a node
    gpus_per_node: int
    gpu_hour_cost_usd: float
    vidur_profile: str | None        # key into tidal.sim.vidur_tables, None -> transferred
    source: str
    peak_fp8_flops: float | None = None
    # Profiled accelerator whose measured operator tables are transferred to this one
    # (scaled by the roofline ratio) when it has no profile of its own.
    profile_proxy: str | None = None
    # Device name as the driver reports it: vLLM's per-GPU engine defaults test it.
    device_name: str = ""
    # Decode-attention kernel family whose measured streaming rate this part gets
    # (tidal.sim.decode_attention): "sm90" for Hopper, "sm80" for Ampere and for Ada,
    # which runs FlashAttention-2's sm80 kernels.
    decode_attention_kernels: str = "sm80"
    # W8A8 FP8 GEMMs reach this fraction of the efficiency a BF16 GEMM reaches of its own
    # peak. Ada (L40S, L4): 0.5, i.e. no faster than BF16 when compute-bound -- fitted on
    # Crusoe's L40S FP8-dynamic TTFT under vLLM 0.5.5 (docs/calibration.md). Elsewhere 1.0:
    # no compute-bound FP8 measurement is in the calibration set.
    fp8_compute_efficiency_ratio: float = 1.0


# Datasheet figures. Prices are indicative on-demand GPU-hour list prices (used only to
# convert GPU-hours to money; override with --gpu-hour-cost).
ACCELERATORS: dict[str, AcceleratorSpec] = {
    "H100-80GB": AcceleratorSpec(
        name="H100-80GB", memory_bytes=81559 * MIB, peak_bf16_flops=989 * TFLOPS,
        memory_bandwidth_bps=3.35 * TB_S, interconnect_bps=450e9, gpus_per_node=8,
        gpu_hour_cost_usd=2.99, vidur_profile="h100", peak_fp8_flops=1979 * TFLOPS,
        device_name="NVIDIA H100 80GB HBM3", decode_attention_kernels="sm90",
        source="NVIDIA H100 Tensor Core GPU datasheet (SXM5): 989 TFLOPS BF16 / 1,979 FP8 "
               "dense, 3.35 TB/s HBM3, NVLink 900 GB/s bidirectional; 81,559 MiB as reported "
               "by nvidia-smi; price: Lambda on-demand H100 SXM"),
    "A100-80GB": AcceleratorSpec(
        name="A100-80GB", memory_bytes=81920 * MIB, peak_bf16_flops=312 * TFLOPS,
        memory_bandwidth_bps=2.039 * TB_S, interconnect_bps=300e9, gpus_per_node=8,
        gpu_hour_cost_usd=1.79, vidur_profile="a100", device_name="NVIDIA A100-SXM4-80GB",
        source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): 312 TFLOPS BF16 dense, "
               "2,039 GB/s HBM2e, NVLink 600 GB/s bidirectional, no FP8; 81,920 MiB "
               "(nvidia-smi); price: Lambda on-demand A100 SXM"),
    "A100-40GB": AcceleratorSpec(
        name="A100-40GB", memory_bytes=40960 * MIB, peak_bf16_flops=312 * TFLOPS,
        memory_bandwidth_bps=1.555 * TB_S, interconnect_bps=300e9, gpus_per_node=8,
        gpu_hour_cost_usd=1.29, vidur_profile=None, profile_proxy="A100-80GB",
        device_name="NVIDIA A100-SXM4-40GB",
        source="NVIDIA A100 datasheet (SXM4 40GB): 312 TFLOPS BF16 dense, 1,555 GB/s HBM2; "
               "40,960 MiB (nvidia-smi); price: Lambda on-demand A100 40GB"),
    "L40S": AcceleratorSpec(
        name="L40S", memory_bytes=46068 * MIB, peak_bf16_flops=362.05 * TFLOPS,
        memory_bandwidth_bps=0.864 * TB_S, interconnect_bps=32e9, gpus_per_node=4,
        gpu_hour_cost_usd=1.10, vidur_profile=None, peak_fp8_flops=733 * TFLOPS,
        profile_proxy="A40", device_name="NVIDIA L40S", fp8_compute_efficiency_ratio=0.5,
        source="NVIDIA L40S datasheet: 362.05 TFLOPS BF16 / 733 FP8 dense (double with "
               "sparsity), 48 GB GDDR6 (46,068 MiB, nvidia-smi) at 864 GB/s, PCIe Gen4 x16 "
               "(64 GB/s bidirectional); price indicative"),
    "L4": AcceleratorSpec(
        name="L4", memory_bytes=23034 * MIB, peak_bf16_flops=121 * TFLOPS,
        memory_bandwidth_bps=0.300 * TB_S, interconnect_bps=32e9, gpus_per_node=8,
        gpu_hour_cost_usd=0.80, vidur_profile=None, peak_fp8_flops=242.5 * TFLOPS,
        profile_proxy="A40", device_name="NVIDIA L4", fp8_compute_efficiency_ratio=0.5,
        source="NVIDIA L4 datasheet: 121 TFLOPS BF16 / 242.5 FP8 dense (double with "
               "sparsity), 24 GB GDDR6 (23,034 MiB, nvidia-smi) at 300 GB/s, PCIe Gen4 x16; "
               "price indicative (GCP g2 L4 on-demand)"),
    "A40": AcceleratorSpec(
        name="A40", memory_bytes=46068 * MIB, peak_bf16_flops=149.7 * TFLOPS,
        memory_bandwidth_bps=0.696 * TB_S, interconnect_bps=56e9, gpus_per_node=8,
        gpu_hour_cost_usd=0.80, vidur_profile="a40", device_name="NVIDIA A40",
        source="NVIDIA A40 datasheet: 149.7 TFLOPS BF16 dense, no FP8, 48 GB GDDR6 (46,068 "
               "MiB, nvidia-smi) at 696 GB/s, NVLink bridge 112.5 GB/s bidirectional (pairs); "
               "price indicative"),
}


@dataclass(frozen=True)
class ModelSpec:
    """Transformer shape from the model's published config.json, and its number formats.

    ``weight_bytes`` is per element of the transformer's linear layers (2 for BF16, 1 for
    the FP8 checkpoints vLLM serves, e.g. neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8,
    which keep the embedding and LM head in BF16); ``kv_cache_bytes`` per KV-cache element
    (1 with ``--kv-cache-dtype fp8``); activations stay BF16 (``dtype_bytes``).
    """

    name: str
    n_layers: int
    hidden: int
    ffn: int
    n_heads: int
    n_kv_heads: int
    vocab: int
    params: float
    gated_mlp: bool = True
    dtype_bytes: int = BF16_BYTES     # activations (all-reduce messages, norms)
    vidur_base: str = "Llama-2-7b-hf"  # profiled model whose operator times are scaled
    image_bytes: int = 10 * 10**9    # serving image size (see tidal/sim/coldstart.py)
    tied_embeddings: bool = False     # LM head shares the embedding matrix
    weight_bytes: float = BF16_BYTES
    kv_cache_bytes: float = BF16_BYTES

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads

    @property
    def embedding_params(self) -> float:
        """Embedding plus LM head parameters (kept in BF16 by FP8 checkpoints)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def weights_bytes(self) -> float:
        return ((self.params - self.embedding_params) * self.weight_bytes
                + self.embedding_params * self.dtype_bytes)

    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for every layer, all KV heads (divide by TP for one GPU's share)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.kv_cache_bytes

    def weight_elements(self, group: str) -> float:
        """Elements of the weight (or activation width) that one operator group touches."""
        q_kv = (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
        return {
            "qkv_proj": self.hidden * q_kv,
            "out_proj": self.n_heads * self.head_dim * self.hidden,
            "mlp_up": self.hidden * self.ffn * (2 if self.gated_mlp else 1),
            "mlp_down": self.ffn * self.hidden,
            "mlp_act": self.ffn,
            "elementwise": self.hidden,
            "embedding": self.hidden,
        }[group]


# Shapes from each model's config.json on the Hugging Face hub (meta-llama/*, microsoft/phi-2).
MODELS: dict[str, ModelSpec] = {
    "llama-3.2-3b": ModelSpec("llama-3.2-3b", n_layers=28, hidden=3072, ffn=8192, n_heads=24,
                              n_kv_heads=8, vocab=128256, params=3.21e9, vidur_base="phi-2",
                              tied_embeddings=True),
    "llama-3.1-8b": ModelSpec("llama-3.1-8b", n_layers=32, hidden=4096, ffn=14336, n_heads=32,
                              n_kv_heads=8, vocab=128256, params=8.03e9),
    "llama-2-7b": ModelSpec("llama-2-7b", n_layers=32, hidden=4096, ffn=11008, n_heads=32,
                            n_kv_heads=32, vocab=32000, params=6.74e9),
    "llama-3.1-70b": ModelSpec("llama-3.1-70b", n_layers=80, hidden=8192, ffn=28672, n_heads=64,
                               n_kv_heads=8, vocab=128256, params=70.55e9,
                               vidur_base="Llama-2-70b-hf"),
    "llama-2-70b": ModelSpec("llama-2-70b", n_layers=80, hidden=8192, ffn=28672, n_heads=64,
                             n_kv_heads=8, vocab=32000, params=68.98e9,
                             vidur_base="Llama-2-70b-hf"),
    "phi-2": ModelSpec("phi-2", n_layers=32, hidden=2560, ffn=10240, n_heads=32, n_kv_heads=32,
                       vocab=51200, params=2.78e9, gated_mlp=False, vidur_base="phi-2"),
}

# Shapes of the profiled models, to compute the scale factor target/base per operator group.
PROFILED_SHAPES: dict[str, ModelSpec] = {
    "Llama-2-7b-hf": MODELS["llama-2-7b"],
    "Llama-2-70b-hf": MODELS["llama-2-70b"],
    "phi-2": MODELS["phi-2"],
}

MODEL_ALIASES = {"8b": "llama-3.1-8b", "70b": "llama-3.1-70b", "3b": "llama-3.2-3b",
                 "7b": "llama-2-7b"}


def get_accelerator(name: str) -> AcceleratorSpec:
    try:
        return ACCELERATORS[name]
    except KeyError:
        raise ValueError(f"unknown accelerator {name!r}; known: {', '.join(ACCELERATORS)}") from None


# Name suffixes selecting number formats, as vLLM is told them: an FP8 checkpoint
# (``-fp8``: FP8 linear layers, W8A8 on Hopper/Ada, weight-only on Ampere) and
# ``--kv-cache-dtype fp8`` (``-kvfp8``). They combine: ``llama-3.1-70b-fp8-kvfp8``.
QUANT_SUFFIXES = {"-fp8": "weight_bytes", "-kvfp8": "kv_cache_bytes"}


def get_model(name: str) -> ModelSpec:
    """A catalogue model, optionally with ``-fp8`` / ``-kvfp8`` suffixes (see QUANT_SUFFIXES)."""
    key = name.lower()
    formats: dict[str, float] = {}
    stripped = True
    while stripped:
        stripped = False
        for suffix, field_name in QUANT_SUFFIXES.items():
            if key.endswith(suffix):
                key = key[: -len(suffix)]
                formats[field_name] = FP8_BYTES
                stripped = True
    key = MODEL_ALIASES.get(key, key)
    try:
        base = MODELS[key]
    except KeyError:
        known = ", ".join(list(MODELS) + list(MODEL_ALIASES))
        raise ValueError(f"unknown model {name!r}; known: {known}, each optionally followed "
                         f"by {' and/or '.join(QUANT_SUFFIXES)}") from None
    if not formats:
        return base
    suffix = "".join(s for s, f in QUANT_SUFFIXES.items() if f in formats)
    return replace(base, name=base.name + suffix, **formats)
