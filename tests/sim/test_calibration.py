"""The step-time model against published end-to-end measurements (docs/calibration.md),
and the properties its construction promises (roofline transfer, FP8, TP extrapolation)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.sim import vidur_tables
from tidal.sim.calibration import (MEASUREMENTS, TOLERANCE, checked_measurements,
                                   poisson_arrivals_s, predict, sharegpt_like_lengths)
from tidal.sim.hardware import ACCELERATORS, MODELS, get_accelerator, get_model
from tidal.sim.perf_model import StepTimeModel, kv_capacity_tokens


def test_calibration_set_covers_what_the_issue_asks() -> None:
    checked = checked_measurements()
    assert len(checked) >= 12
    assert len({m.source_id for m in checked}) >= 3
    metrics = {m.metric for m in checked}
    assert {"tpot_p50_ms", "ttft_p50_ms", "output_tokens_per_s"} <= metrics
    setups = {(m.model, m.accelerator, m.tp) for m in checked}
    assert ("llama-3.1-8b", "H100-80GB", 1) in setups and ("llama-3.1-8b", "A100-80GB", 1) in setups
    assert {tp for model, _, tp in setups if model.startswith("llama-3.1-70b")} >= {4, 8}
    assert any(model.endswith("-fp8") for model, _, _ in setups)
    assert max(m.concurrency for m in checked) >= 256 and min(m.concurrency for m in checked) == 1
    assert {"L4", "L40S"} & {m.accelerator for m in checked}


def test_fitted_rows_leave_independent_checks_on_the_same_setup() -> None:
    """A constant fitted to a row is only checked by other rows: every fitted setup has them."""
    checked = checked_measurements()
    for m in (m for m in checked if m.fitted):
        twins = [o for o in checked if not o.fitted and o.source_id == m.source_id
                 and o.accelerator == m.accelerator and o.engine_version == m.engine_version]
        assert twins, m.key
    assert sum(not m.fitted for m in checked) >= 12


def test_open_loop_arrivals_are_benchmark_servings_poisson_process() -> None:
    arrivals = poisson_arrivals_s(2000, 4.0)
    gaps = np.diff(arrivals)
    assert arrivals[0] == 0.0 and len(arrivals) == 2000 and (gaps > 0).all()
    assert abs(gaps.mean() - 0.25) < 0.02
    assert poisson_arrivals_s(50, 4.0) == arrivals[:50]


def test_every_wider_bound_and_every_exclusion_says_why() -> None:
    for m in MEASUREMENTS:
        assert m.tolerance == TOLERANCE or m.tolerance_reason, m.key
        assert m.source and m.setup


@pytest.mark.parametrize("m", checked_measurements(), ids=lambda m: m.key)
def test_prediction_within_tolerance_of_published_measurement(m) -> None:
    predicted = predict(m)
    assert abs(predicted - m.value) / m.value <= m.tolerance, (
        f"{m.key}: predicted {predicted:.2f}, measured {m.value:.2f} ({m.source})")


def test_sharegpt_lengths_have_the_published_means_and_limits() -> None:
    pairs = sharegpt_like_lengths(4000)
    prompts = np.array([p for p, _ in pairs])
    outputs = np.array([o for _, o in pairs])
    assert prompts.max() <= 1024 and (prompts + outputs).max() <= 2048 and outputs.min() >= 1
    assert abs(prompts.mean() - 231) / 231 < 0.1 and abs(outputs.mean() - 195) / 195 < 0.1
    assert sharegpt_like_lengths(50) == sharegpt_like_lengths(50)


@pytest.mark.parametrize("model,accel,tp", [
    ("llama-3.2-3b", "L4", 1), ("llama-3.1-8b", "H100-80GB", 1),
    ("llama-3.1-8b", "A100-80GB", 1), ("llama-3.1-8b", "L40S", 1),
    ("llama-3.1-8b-fp8", "L40S", 1), ("llama-3.1-8b-fp8", "A100-40GB", 1),
    ("llama-3.1-70b", "H100-80GB", 4), ("llama-3.1-70b", "A100-80GB", 8),
    ("llama-3.1-70b-fp8", "H100-80GB", 1), ("llama-3.1-70b-fp8-kvfp8", "H100-80GB", 2)])
def test_catalogue_combinations_are_sane(model, accel, tp) -> None:
    perf = StepTimeModel(get_model(model), get_accelerator(accel), tp)
    times = [perf.iteration_s(decode_seqs=0, decode_context_tokens=0,
                              prefill_chunks=[(n, 0)], prefill_finishing=1)
             for n in (128, 512, 2048, 8192)]
    # (below ~100 tokens the measured medians are flat and noisy, so monotonicity is
    # only asserted where compute grows)
    assert times == sorted(times) and times[0] > 0
    # decode of one sequence cannot beat streaming the weights at peak bandwidth
    weights_s = get_model(model).weights_bytes / tp / get_accelerator(accel).memory_bandwidth_bps
    assert perf.iteration_s(decode_seqs=1, decode_context_tokens=100) > weights_s
    assert kv_capacity_tokens(get_model(model), get_accelerator(accel), tp) > 0


def test_model_that_does_not_fit_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="raise the tensor-parallel degree"):
        kv_capacity_tokens(MODELS["llama-3.1-70b"], ACCELERATORS["L4"], 1)
    with pytest.raises(ValueError, match="raise the tensor-parallel degree"):
        kv_capacity_tokens(MODELS["llama-3.1-70b"], ACCELERATORS["H100-80GB"], 1)


def test_fp8_weights_put_70b_on_one_h100_and_fp8_kv_doubles_the_cache() -> None:
    h100 = ACCELERATORS["H100-80GB"]
    # Lambda serves the FP8 70B on one H100 with a 4k context at most: a few thousand tokens
    assert 2_000 < kv_capacity_tokens(get_model("llama-3.1-70b-fp8"), h100, 1) < 20_000
    bf16 = kv_capacity_tokens(get_model("llama-3.1-70b-fp8"), h100, 2)
    fp8 = kv_capacity_tokens(get_model("llama-3.1-70b-fp8-kvfp8"), h100, 2)
    assert abs(fp8 - 2 * bf16) <= 1
    assert get_model("llama-3.1-70b-fp8-kvfp8").kv_bytes_per_token * 2 == \
        MODELS["llama-3.1-70b"].kv_bytes_per_token


def test_unknown_model_or_suffix_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="-fp8"):
        get_model("llama-3.1-8b-int3")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16384))
def test_fp8_weights_are_faster_but_at_most_twice_as_fast(n) -> None:
    for accel, tp in (("H100-80GB", 1), ("A100-80GB", 1), ("L40S", 1)):
        a = get_accelerator(accel)
        bf16 = StepTimeModel(MODELS["llama-3.1-8b"], a, tp).fixed_s(n)
        fp8 = StepTimeModel(get_model("llama-3.1-8b-fp8"), a, tp).fixed_s(n)
        assert bf16 / 2 < fp8 <= bf16 * (1 + 1e-9)


def test_fp8_on_ampere_is_weight_only_so_large_prefills_gain_nothing() -> None:
    a100 = ACCELERATORS["A100-80GB"]
    bf16 = StepTimeModel(MODELS["llama-3.1-8b"], a100).fixed_s(8192)
    fp8 = StepTimeModel(get_model("llama-3.1-8b-fp8"), a100).fixed_s(8192)
    assert fp8 == pytest.approx(bf16, rel=0.02)
    h100 = ACCELERATORS["H100-80GB"]
    assert (StepTimeModel(get_model("llama-3.1-8b-fp8"), h100).fixed_s(8192)
            < 0.8 * StepTimeModel(MODELS["llama-3.1-8b"], h100).fixed_s(8192))


_MODELS_TO_TRANSFER = [MODELS["llama-3.1-8b"], MODELS["llama-3.2-3b"], get_model("llama-3.1-8b-fp8")]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 16384), st.integers(0, 256), st.integers(0, 500_000),
       st.sampled_from(_MODELS_TO_TRANSFER), st.sampled_from([1, 2, 4, 8]))
def test_smaller_memory_part_of_the_same_chip_is_never_faster(n, decode, ctx, model, tp) -> None:
    a40 = StepTimeModel(model, ACCELERATORS["A100-40GB"], tp)
    a80 = StepTimeModel(model, ACCELERATORS["A100-80GB"], tp)
    assert a40.fixed_s(n) >= a80.fixed_s(n)
    chunks = [(n, 0)] if n > decode else []
    assert (a40.iteration_s(decode_seqs=decode, decode_context_tokens=ctx, prefill_chunks=chunks)
            >= a80.iteration_s(decode_seqs=decode, decode_context_tokens=ctx,
                               prefill_chunks=chunks))


def test_l4_is_slower_than_l40s_which_its_proxy_a40_bounds_below() -> None:
    model = MODELS["llama-3.1-8b"]
    for n in (1, 64, 512, 4096):
        l4 = StepTimeModel(model, ACCELERATORS["L4"]).fixed_s(n)
        l40s = StepTimeModel(model, ACCELERATORS["L40S"]).fixed_s(n)
        a40 = StepTimeModel(model, ACCELERATORS["A40"]).fixed_s(n)
        assert l4 > a40 and l4 > l40s
        # L40S: more bandwidth and more than twice the A40's compute
        assert l40s < a40


def test_measured_tables_are_used_where_profiled_and_transferred_elsewhere() -> None:
    assert StepTimeModel(MODELS["llama-3.1-8b"], ACCELERATORS["H100-80GB"]).source.startswith(
        "vidur:h100")
    assert StepTimeModel(MODELS["llama-3.1-8b"], ACCELERATORS["L40S"]).source == \
        "vidur:a40/Llama-2-7b-hf/tp1 scaled to L40S"
    assert "FP8" in StepTimeModel(get_model("llama-3.1-8b-fp8"), ACCELERATORS["H100-80GB"]).source
    assert ("h100", "Llama-2-70b-hf", 4) in vidur_tables.OPERATOR_MS


def test_extrapolation_beyond_the_profiled_tokens_predicts_a_held_out_point() -> None:
    """Hold out the last grid point of every measured table and extrapolate to it."""
    from tidal.sim.perf_model import _extrapolated
    grid = np.asarray(vidur_tables.TOKEN_GRID, dtype=float)
    errors = {True: [], False: []}
    for (_, _, tp), table in vidur_tables.OPERATOR_MS.items():
        total = sum(np.asarray(v) for v in table.values())
        held_out = sum(_extrapolated(grid[-1:], grid[:-1], np.asarray(v)[:-1])[0]
                       for v in table.values())
        errors[tp >= 2].append((held_out - total[-1]) / total[-1])
    for errs in errors.values():
        assert np.median(np.abs(errs)) < 0.03 and max(np.abs(errs)) < 0.11
        assert abs(np.mean(errs)) < 0.02       # no systematic bias, at TP >= 2 either


def test_transferred_tables_beat_the_roofline_on_held_out_profiled_gpus() -> None:
    """Pretend a profiled GPU is not, transfer a proxy's tables, compare with its own."""
    from dataclasses import replace
    tokens = (1, 16, 64, 128, 256, 512, 1024, 2048, 4096)
    transfer_errors, roofline_errors = [], []
    for target, proxy in (("A100-80GB", "H100-80GB"), ("H100-80GB", "A100-80GB"),
                          ("A40", "A100-80GB"), ("A100-80GB", "A40")):
        for model, tp in (("llama-2-7b", 1), ("llama-2-70b", 4), ("phi-2", 1)):
            measured = StepTimeModel(MODELS[model], ACCELERATORS[target], tp)
            unprofiled = replace(ACCELERATORS[target], vidur_profile=None, profile_proxy=proxy)
            transferred = StepTimeModel(MODELS[model], unprofiled, tp)
            roofline = StepTimeModel(MODELS[model], replace(unprofiled, profile_proxy=None), tp)
            for n in tokens:
                truth = measured.fixed_s(n)
                transfer_errors.append((transferred.fixed_s(n) - truth) / truth)
                roofline_errors.append((roofline.fixed_s(n) - truth) / truth)
    assert np.median(np.abs(transfer_errors)) < 0.10
    assert np.median(np.abs(transfer_errors)) < np.median(np.abs(roofline_errors))
    assert abs(np.mean(transfer_errors)) < 0.05 < abs(np.mean(roofline_errors))
