"""SLOMet and status.sloAttainment from attainment values (pure; the operator test covers the wiring)."""

from __future__ import annotations

from typing import Any

import pytest

from tidal.api.validation import parse_resource
from tidal.controllers.modeldeployment_observe import PoolReplicas
from tidal.controllers.modeldeployment_status import slo_condition, status_patch
from tidal.controllers.slo_attainment import Attainment
from tidal.policies.interface import PoolObservation


def md(**slo: Any) -> Any:
    return parse_resource({
        "apiVersion": "tidal.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "llama", "namespace": "team-a"},
        "spec": {"model": {"name": "m", "parametersBillions": 8}, "engine": {"image": "vllm"},
                 "slo": {"ttft": "300ms", "tpot": "50ms", **slo}, "mode": "unified",
                 "pools": {"unified": {"minReplicas": 1, "maxReplicas": 4}},
                 "placement": {"acceleratorClasses": ["gpu-a"]}},
    })


POOLS = {"unified": PoolObservation(ready_replicas=1, ttft_s=0.2, tpot_s=0.04)}
"""p90 latencies within both targets: the percentile rule alone would say the SLO is met."""


def test_attainment_below_the_required_fraction_misses_even_if_the_percentile_looks_fine() -> None:
    cond = slo_condition(md(attainment=0.95), POOLS, True, {"unified": Attainment(0.97, 0.93)})
    assert (cond.status, cond.reason) == ("False", "TargetMissed")
    assert "93.0% of requests met the SLO" in cond.message and "< 95% required" in cond.message
    assert "TTFT 97.0% within 300ms" in cond.message and "TPOT 93.0% within 50ms" in cond.message


def test_attainment_at_or_above_the_required_fraction_is_met() -> None:
    cond = slo_condition(md(attainment=0.9), POOLS, True, {"unified": Attainment(0.9, 0.999)})
    assert (cond.status, cond.reason) == ("True", "TargetsMet")
    assert "90% of requests met the SLO" in cond.message


def test_no_requests_is_unknown_not_missed() -> None:
    idle = {"unified": PoolObservation(ready_replicas=1)}
    cond = slo_condition(md(), idle, True, {"unified": Attainment(None, None)})
    assert (cond.status, cond.reason) == ("Unknown", "NoLatencyData")


def test_unreadable_metrics_are_unknown() -> None:
    cond = slo_condition(md(), POOLS, False, {"unified": Attainment(0.1, 0.1)})
    assert (cond.status, cond.reason) == ("Unknown", "MetricsUnavailable")


def test_without_attainment_the_percentile_rule_applies() -> None:
    slow = {"unified": PoolObservation(ready_replicas=1, ttft_s=0.45, tpot_s=0.04)}
    assert slo_condition(md(), POOLS, True).status == "True"
    cond = slo_condition(md(), slow, True)
    assert cond.status == "False" and "p90 TTFT 450ms > target 300ms" in cond.message


@pytest.mark.parametrize(("value", "shown"), [(0.8999, 0.89), (0.29, 0.29), (1.0, 1.0), (None, None)])
def test_status_attainment_is_rounded_down_to_whole_percents(value, shown) -> None:
    status = status_patch("llama", 1, None, {}, {"unified": PoolReplicas(POOLS["unified"], {}, {})}, [], 0.0,
                          "utilization", slo_attainment=value)
    assert status["sloAttainment"] == shown
