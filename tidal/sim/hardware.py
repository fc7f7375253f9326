"""Accelerator and model catalogues: every number with the datasheet or model card it comes from.

docs/calibration.md repeats these tables with links; keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
TB_S = 1e12  # bytes per second in one TB/s (vendor datasheets use decimal units)
TFLOPS = 1e12


@dataclass(frozen=True)
class AcceleratorSpec:
    """One GPU type. Peak FLOP/s are dense (no sparsity) BF16 tensor-core numbers."""

    name: str
    memory_bytes: int
    peak_bf16_flops: float
    memory_bandwidth_bps: float
    interconnect_bps: float          # per-GPU bandwidth for all-reduce / KV transfer inside a node
    gpus_per_node: int
    gpu_hour_cost_usd: float
    vidur_profile: str | None        # key into tidal.sim.vidur_tables, None -> roofline fallback
    source: str


# Datasheet figures. Prices are indicative on-demand GPU-hour list prices (used only to
# convert GPU-hours to money; override with --gpu-hour-cost).
ACCELERATORS: dict[str, AcceleratorSpec] = {
    "H100-80GB": AcceleratorSpec(
        name="H100-80GB", memory_bytes=80 * 10**9, peak_bf16_flops=989 * TFLOPS,
        memory_bandwidth_bps=3.35 * TB_S, interconnect_bps=450e9, gpus_per_node=8,
        gpu_hour_cost_usd=2.99, vidur_profile="h100",
        source="NVIDIA H100 Tensor Core GPU datasheet (SXM5): 989 TFLOPS BF16 dense, "
               "3.35 TB/s HBM3, NVLink 900 GB/s bidirectional; price: Lambda on-demand H100 SXM"),
    "A100-80GB": AcceleratorSpec(
        name="A100-80GB", memory_bytes=80 * 10**9, peak_bf16_flops=312 * TFLOPS,
        memory_bandwidth_bps=2.039 * TB_S, interconnect_bps=300e9, gpus_per_node=8,
        gpu_hour_cost_usd=1.79, vidur_profile="a100",
        source="NVIDIA A100 Tensor Core GPU datasheet (SXM4 80GB): 312 TFLOPS BF16 dense, "
               "2,039 GB/s HBM2e, NVLink 600 GB/s bidirectional; price: Lambda on-demand A100 SXM"),
    "A100-40GB": AcceleratorSpec(
        name="A100-40GB", memory_bytes=40 * 10**9, peak_bf16_flops=312 * TFLOPS,
        memory_bandwidth_bps=1.555 * TB_S, interconnect_bps=300e9, gpus_per_node=8,
        gpu_hour_cost_usd=1.29, vidur_profile=None,
        source="NVIDIA A100 datasheet (SXM4 40GB): 312 TFLOPS BF16 dense, 1,555 GB/s HBM2; "
               "price: Lambda on-demand A100 40GB"),
    "L40S": AcceleratorSpec(
        name="L40S", memory_bytes=48 * 10**9, peak_bf16_flops=362.05 * TFLOPS,
        memory_bandwidth_bps=0.864 * TB_S, interconnect_bps=32e9, gpus_per_node=4,
        gpu_hour_cost_usd=1.10, vidur_profile=None,
        source="NVIDIA L40S datasheet: 362.05 TFLOPS BF16 dense (733 with sparsity), 48 GB "
               "GDDR6 at 864 GB/s, PCIe Gen4 x16 (64 GB/s bidirectional); price indicative"),
    "L4": AcceleratorSpec(
        name="L4", memory_bytes=24 * 10**9, peak_bf16_flops=121 * TFLOPS,
        memory_bandwidth_bps=0.300 * TB_S, interconnect_bps=32e9, gpus_per_node=8,
        gpu_hour_cost_usd=0.80, vidur_profile=None,
        source="NVIDIA L4 datasheet: 121 TFLOPS BF16 dense (242 with sparsity), 24 GB GDDR6 "
               "at 300 GB/s, PCIe Gen4 x16; price indicative (GCP g2 L4 on-demand)"),
    "A40": AcceleratorSpec(
        name="A40", memory_bytes=48 * 10**9, peak_bf16_flops=149.7 * TFLOPS,
        memory_bandwidth_bps=0.696 * TB_S, interconnect_bps=56e9, gpus_per_node=8,
        gpu_hour_cost_usd=0.80, vidur_profile="a40",
        source="NVIDIA A40 datasheet: 149.7 TFLOPS BF16 dense, 48 GB GDDR6 at 696 GB/s, "
               "NVLink bridge 112.5 GB/s bidirectional (pairs); price indicative"),
}


@dataclass(frozen=True)
class ModelSpec:
    """Transformer shape from the model's published config.json."""

    name: str
    n_layers: int
    hidden: int
    ffn: int
    n_heads: int
    n_kv_heads: int
    vocab: int
    params: float
    gated_mlp: bool = True
    dtype_bytes: int = 2             # BF16/FP16 weights and KV cache
    vidur_base: str = "Llama-2-7b-hf"  # profiled model whose operator times are scaled
    image_bytes: int = 10 * 10**9    # serving image size (see tidal/sim/coldstart.py)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads

    @property
    def weights_bytes(self) -> float:
        return self.params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for every layer, all KV heads (divide by TP for one GPU's share)."""
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * self.dtype_bytes

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
                              n_kv_heads=8, vocab=128256, params=3.21e9, vidur_base="phi-2"),
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


def get_model(name: str) -> ModelSpec:
    key = MODEL_ALIASES.get(name.lower(), name.lower())
    try:
        return MODELS[key]
    except KeyError:
        known = ", ".join(list(MODELS) + list(MODEL_ALIASES))
        raise ValueError(f"unknown model {name!r}; known: {known}") from None
