"""The activator's path in the serverless simulator: hold time = remaining cold start, queue limit
and hold timeout -> refused (503), counted, never run."""

from __future__ import annotations

import numpy as np
import pytest

from tidal.policies.baselines.keepalive_fixed import FixedKeepAlive
from tidal.sim.serverless import (
    ActivatorModel,
    FunctionSimConfig,
    FunctionSimulation,
    FunctionWorkload,
    fixed_cold_start,
)
from tidal.sim.serverless.platform import REJECTED_QUEUE_FULL, REJECTED_TIMEOUT

COLD_START_S = 2.0


def burst(times: list[float], duration_s: float = 0.1) -> FunctionWorkload:
    arrivals = np.array(sorted(times))
    return FunctionWorkload(function_ids=("f",), memory_mb=np.array([256.0]), arrival_s=arrivals,
                            function_index=np.zeros(len(arrivals), dtype=int),
                            duration_s=np.full(len(arrivals), duration_s), horizon_s=600.0)


def run(workload: FunctionWorkload, activator: ActivatorModel | None, concurrency: int = 100):
    config = FunctionSimConfig(concurrency=concurrency, cold_start=fixed_cold_start(COLD_START_S),
                               activator=activator)
    return FunctionSimulation(workload, FixedKeepAlive(keep_alive_s=60.0), config).run()


def test_held_invocations_wait_the_remaining_cold_start() -> None:
    times = [10.0 + 0.01 * i for i in range(50)] + [11.0]
    result = run(burst(times), ActivatorModel())
    inv = result.invocations
    assert inv["held"].sum() == 51 and (inv["rejected"] == 0).all()
    expected = 10.0 + COLD_START_S - inv["arrival_s"]  # the first arrival started the instance
    assert np.allclose(inv["wait_s"], expected)
    summary = result.summary
    assert summary["activator_held"] == 51
    assert summary["activator_wait_p99_s"] == pytest.approx(np.quantile(expected, 0.99))
    assert summary["rejected_queue_full"] == summary["rejected_timeout"] == 0


def test_queue_limit_refuses_the_excess_at_once() -> None:
    result = run(burst([10.0 + 0.01 * i for i in range(8)]), ActivatorModel(queue_limit=5))
    rejected = result.invocations["rejected"]
    assert list(rejected) == [0] * 5 + [REJECTED_QUEUE_FULL] * 3
    assert result.summary["rejected_queue_full"] == 3
    assert not result.invocations["met_slo"][5:].any()  # a refused invocation misses its SLO
    assert np.isnan(result.invocations["start_s"][5:]).all()


def test_hold_timeout_refuses_what_a_cold_start_outlasts() -> None:
    result = run(burst([10.0, 10.5, 11.5]), ActivatorModel(hold_timeout_s=1.0))
    # Ready at 12.0: the first two waited 2.0 and 1.5 s (> 1 s), the third 0.5 s.
    assert list(result.invocations["rejected"]) == [REJECTED_TIMEOUT, REJECTED_TIMEOUT, 0]
    assert result.summary["rejected_timeout"] == 2
    assert result.summary["invocations"] == 3


def test_warm_instances_bypass_the_activator_and_none_means_no_limits() -> None:
    times = [10.0, 20.0, 30.0]  # the instance stays warm (60 s keep-alive) after the first
    result = run(burst(times), ActivatorModel(queue_limit=1, hold_timeout_s=0.5), concurrency=1)
    assert list(result.invocations["held"]) == [True, False, False]
    assert list(result.invocations["rejected"]) == [REJECTED_TIMEOUT, 0, 0]
    unlimited = run(burst(times), None, concurrency=1)
    assert not unlimited.invocations["held"].any() and (unlimited.invocations["rejected"] == 0).all()
    assert unlimited.summary["cold_wait_mean_s"] == pytest.approx(COLD_START_S)


def test_activator_model_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="queue_limit"):
        ActivatorModel(queue_limit=0)
    with pytest.raises(ValueError, match="hold_timeout_s"):
        ActivatorModel(hold_timeout_s=0.0)
