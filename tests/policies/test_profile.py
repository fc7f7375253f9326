"""Performance profile from the CRs: roofline shape, KV geometry, and published figures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelSpec
from tidal.core.modeldeployment import accelerator_profile
from tidal.policies.interface import AcceleratorProfile
from tidal.policies.profile import ModelShape, PerformanceProfile, build_profile, model_shape

MIB = 2**20
H100 = AcceleratorProfile("H100-80GB", 2.99, 989.0, 3350.0, 81559 * MIB)
A100_40 = AcceleratorProfile("A100-40GB", 1.29, 312.0, 1555.0, 40960 * MIB)
A40 = AcceleratorProfile("A40", 0.80, 149.7, 696.0, 46068 * MIB)
LLAMA_8B = ModelSpec(name="meta-llama/Llama-3.1-8B-Instruct", parameters_billions=8.03)


def test_shape_defaults_to_the_nearest_published_llama_shape() -> None:
    shape = model_shape(LLAMA_8B)
    assert (shape.layers, shape.hidden, shape.kv_heads, shape.head_dim) == (32, 4096, 8, 128)
    assert shape.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # 128 KiB, Llama-3.1-8B in BF16
    assert shape.weights_bytes == pytest.approx(8.03e9 * 2)
    big = model_shape(ModelSpec(name="m", parameters_billions=70))
    assert big.layers == 80


def test_weights_size_and_dtype_set_the_weights_bytes() -> None:
    fp8 = model_shape(ModelSpec(name="m", parameters_billions=8.03, dtype="fp8"))
    assert fp8.weights_bytes == pytest.approx(8.03e9)
    sized = model_shape(ModelSpec(name="m", parameters_billions=8.03, weights_size="10G"))
    assert sized.weights_bytes == pytest.approx(10e9)
    # fewer weight bytes -> faster memory-bound decode
    assert build_profile(fp8, H100).decode_step_s(1, 100) < build_profile(LLAMA_8B, H100).decode_step_s(1, 100)


def test_explicit_shape_changes_kv_bytes() -> None:
    mha = model_shape(ModelSpec(name="llama-2-7b", parameters_billions=6.74), kv_heads=32)
    assert mha.kv_bytes_per_token == 4 * model_shape(LLAMA_8B).kv_bytes_per_token
    assert build_profile(mha, H100).kv_capacity_tokens() < build_profile(LLAMA_8B, H100).kv_capacity_tokens()


def test_bad_shape_names_the_field() -> None:
    with pytest.raises(ValueError, match="ModelShape.layers"):
        ModelShape(parameters=1e9, weights_bytes=2e9, layers=0, hidden=1, kv_heads=1, head_dim=1)
    with pytest.raises(ValueError, match="tp"):
        PerformanceProfile(model_shape(LLAMA_8B), H100, tp=0)


def test_profile_from_an_acceleratorclass() -> None:
    acc = AcceleratorClass.model_validate({"metadata": {"name": "h100"}, "spec": {
        "memory": "80Gi", "peakTflops": 989, "memoryBandwidthGbps": 3350, "hourlyCost": 3}})
    profile = build_profile(LLAMA_8B, accelerator_profile(acc))
    assert profile.kv_capacity_tokens() > 0
    assert profile.bytes_per_s == pytest.approx(3350e9 * 0.76)


@given(st.floats(0, 512), st.floats(0, 512), st.floats(0, 32768), st.floats(0, 32768))
def test_decode_step_monotone_in_batch_and_context(b1, b2, c1, c2) -> None:
    p = build_profile(LLAMA_8B, H100)
    assert p.decode_step_s(min(b1, b2), c1) <= p.decode_step_s(max(b1, b2), c1)
    assert p.decode_step_s(b1, min(c1, c2)) <= p.decode_step_s(b1, max(c1, c2))
    assert p.decode_step_s(b1, c1) >= p.weights_read_s()


@given(st.floats(1, 32768), st.floats(1, 32768), st.integers(1, 8))
def test_prefill_grows_with_tokens_and_shrinks_with_tp(n1, n2, tp) -> None:
    p = build_profile(LLAMA_8B, H100, tp=1)
    assert p.prefill_s(min(n1, n2)) <= p.prefill_s(max(n1, n2))
    assert build_profile(LLAMA_8B, H100, tp=tp).prefill_s(n1) <= p.prefill_s(n1) * (1 + 1e-12)


def test_weights_that_do_not_fit_leave_no_kv() -> None:
    huge = ModelSpec(name="m", parameters_billions=70.55)
    assert build_profile(huge, H100).kv_capacity_tokens() == 0
    assert build_profile(huge, H100, tp=4).kv_capacity_tokens() > 0


# Published measurements listed in docs/calibration.md (batch-1 and batch-50 TPOT of Llama-3.1-8B).
# The profile is a roofline, not the simulator: we only ask for the order of magnitude, within 30 %.
PUBLISHED_TPOT = [
    ("InferenceBench H100, vLLM 0.21, 1 client", H100, 1, 256, 6.48e-3),
    ("J. Musgrave A100-40GB, vLLM 0.23, 1 client, 1024 in", A100_40, 1, 1024 + 64, 13.33e-3),
    ("Database Mart A40, 50 requests at once, 100 in / ~443 out", A40, 50, 100 + 221, 35.96e-3),
]


@pytest.mark.parametrize("label,acc,batch,context,published_s", PUBLISHED_TPOT,
                         ids=[p[0] for p in PUBLISHED_TPOT])
def test_decode_step_within_30_percent_of_published_tpot(label, acc, batch, context, published_s) -> None:
    predicted = build_profile(LLAMA_8B, acc).decode_step_s(batch, context)
    assert abs(predicted / published_s - 1) <= 0.30, f"{label}: {predicted * 1e3:.2f} ms"
