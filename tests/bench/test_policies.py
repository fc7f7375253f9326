"""The bench's policy table: catalog-style factories plug in unchanged; specs parse strictly."""

from __future__ import annotations

import pytest

from tidal.bench.policies import (POLICIES, PolicyBuildError, PolicyContext, PolicySpec,
                                  build_policy, from_factory, parse_policy_spec)
from tidal.bench.probe import Feasibility
from tidal.bench.run import sim_config
from tidal.bench.workloads import TRACES
from tidal.policies.utilization import UtilizationTarget


def _ctx(params: dict | None = None, mode: str = "disaggregated") -> PolicyContext:
    return PolicyContext(requests=(), config=sim_config("8b-h100", "agent", mode, 0),
                         slo=TRACES["agent"].slo, limits=Feasibility(1000, 2000),
                         min_replicas=2, max_replicas=7, params=params or {})


def test_a_catalog_factory_gets_the_bounds_and_the_parameters() -> None:
    built = from_factory(UtilizationTarget)(_ctx({"target_inflight_per_replica": 5.0}))
    policy = built.autoscaler
    assert isinstance(policy, UtilizationTarget)
    assert (policy.min_replicas, policy.max_replicas) == (2, 7)
    assert policy.target_inflight_per_replica == 5.0
    assert built.result is None
    assert from_factory(UtilizationTarget)(_ctx({"max_replicas": 4})).autoscaler.max_replicas == 4


def test_fixed_sizes_every_pool_of_the_mode() -> None:
    built = build_policy(PolicySpec("fixed", (("replicas", 3),)), _ctx({"replicas": 3}))
    assert dict(built.autoscaler.replicas) == {"prefill": 3, "decode": 3}


@pytest.mark.parametrize("spec, params", [
    (PolicySpec("utilization", (("nope", 1),)), {"nope": 1}),
    (PolicySpec("oracle", (("x", 1),)), {"x": 1}),
    (PolicySpec("fixed", (("size", 3),)), {"size": 3}),
])
def test_unknown_parameters_are_refused_naming_the_policy(spec: PolicySpec,
                                                          params: dict) -> None:
    with pytest.raises(PolicyBuildError, match=spec.name):
        build_policy(spec, _ctx(params))


def test_specs_parse_names_and_typed_parameters() -> None:
    spec = parse_policy_spec("utilization:target_inflight_per_replica=8,max_replicas=4")
    assert spec == PolicySpec("utilization", (("target_inflight_per_replica", 8),
                                              ("max_replicas", 4)))
    assert spec.label == "utilization:target_inflight_per_replica=8,max_replicas=4"
    assert parse_policy_spec("oracle") == PolicySpec("oracle")
    with pytest.raises(ValueError, match=", ".join(POLICIES)):
        parse_policy_spec("hpa2")
