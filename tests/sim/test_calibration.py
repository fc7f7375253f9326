"""The step-time model against published end-to-end measurements (docs/calibration.md)."""

from __future__ import annotations

import pytest

from tidal.sim import vidur_tables
from tidal.sim.calibration import TOLERANCE, checked_measurements, predict
from tidal.sim.hardware import ACCELERATORS, MODELS, get_accelerator, get_model
from tidal.sim.perf_model import StepTimeModel, kv_capacity_tokens


def test_at_least_five_measurements_are_checked() -> None:
    assert len(checked_measurements()) >= 5


@pytest.mark.parametrize("m", checked_measurements(), ids=lambda m: m.key)
def test_prediction_within_tolerance_of_published_measurement(m) -> None:
    predicted = predict(m)
    assert abs(predicted - m.value) / m.value <= TOLERANCE, (
        f"{m.key}: predicted {predicted:.2f}, measured {m.value:.2f} ({m.source})")


@pytest.mark.parametrize("model,accel,tp", [
    ("llama-3.2-3b", "L4", 1), ("llama-3.1-8b", "H100-80GB", 1),
    ("llama-3.1-8b", "A100-80GB", 1), ("llama-3.1-8b", "L40S", 1),
    ("llama-3.1-70b", "H100-80GB", 4), ("llama-3.1-70b", "A100-80GB", 8)])
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


def test_measured_tables_are_used_where_profiled_and_roofline_elsewhere() -> None:
    assert StepTimeModel(MODELS["llama-3.1-8b"], ACCELERATORS["H100-80GB"]).source.startswith(
        "vidur:h100")
    assert StepTimeModel(MODELS["llama-3.1-8b"], ACCELERATORS["L40S"]).source.endswith("scaled to L40S")
    assert ("h100", "Llama-2-70b-hf", 4) in vidur_tables.OPERATOR_MS
