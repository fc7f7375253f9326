"""The fair-share grant caps a workload: within the grant, never below minReplicas, never above what
the pools asked, monotone in the grant, and proportional across pools."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.api.modeldeployment import ModelDeployment
from tidal.core.grant import cap_to_grant
from tidal.core.modeldeployment import decide_workload
from tidal.policies.interface import AcceleratorProfile, Observation, PoolObservation

pools = st.dictionaries(st.sampled_from(["prefill", "decode", "unified"]),
                        st.tuples(st.integers(0, 20), st.integers(1, 8), st.integers(0, 3)), min_size=1)


@settings(max_examples=200, deadline=None)
@given(pools, st.integers(0, 200))
def test_cap_bounds_and_monotonicity(spec: dict[str, tuple[int, int, int]], grant: int) -> None:
    desired = {p: max(n, floor) for p, (n, _, floor) in spec.items()}
    gpus = {p: g for p, (_, g, _) in spec.items()}
    floors = {p: floor for p, (_, _, floor) in spec.items()}
    capped, reason = cap_to_grant(desired, gpus, floors, grant)
    used = sum(capped[p] * gpus[p] for p in capped)
    floor_gpus = sum(floors[p] * gpus[p] for p in floors)
    for p in desired:
        assert floors[p] <= capped[p] <= desired[p]
    assert used <= max(grant, floor_gpus)
    assert (reason is None) == (sum(desired[p] * gpus[p] for p in desired) <= grant)
    more, _ = cap_to_grant(desired, gpus, floors, grant + 1)
    assert sum(more[p] * gpus[p] for p in more) >= used, "a larger grant never gives fewer GPUs"


def test_no_policy_means_no_cap_and_pools_keep_their_ratio() -> None:
    assert cap_to_grant({"unified": 9}, {"unified": 1}, {"unified": 1}, None) == ({"unified": 9}, None)
    capped, reason = cap_to_grant({"prefill": 4, "decode": 8}, {"prefill": 1, "decode": 1},
                                  {"prefill": 1, "decode": 1}, 6)
    assert capped == {"prefill": 2, "decode": 4}
    assert reason is not None and "grants 6" in reason.message


def test_decide_workload_applies_the_grant_even_to_a_manual_override() -> None:
    spec: dict[str, Any] = {
        "model": {"name": "m", "parametersBillions": 8}, "engine": {"image": "img"}, "slo": {"ttft": "1s"},
        "pools": {"unified": {"minReplicas": 1, "maxReplicas": 16, "gpusPerReplica": 2}},
        "placement": {"acceleratorClasses": ["a"]}, "autoscaling": {"predictor": "none"}, "replicas": 10}
    md = ModelDeployment.model_validate({"metadata": {"name": "m", "namespace": "n"}, "spec": spec})
    obs = Observation(0.0, {"unified": PoolObservation(ready_replicas=2)}, grant_gpus=8,
                      accelerators={"a": AcceleratorProfile("a", 1.0, 989.0, 3350.0, 80e9)},
                      placement={"unified": {"a": 2}})
    wd, _ = decide_workload(md, obs, None)
    assert wd.decision.desired_replicas == {"unified": 4}
    assert any(r.code == "fair-share-cap" for r in wd.capacity_limits)
