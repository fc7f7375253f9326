"""FixedReplicas: always the configured count, whatever it observes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.interface import Observation, PoolObservation

pool_obs = st.builds(PoolObservation, ready_replicas=st.integers(0, 50),
                     starting_replicas=st.integers(0, 5),
                     running_requests=st.none() | st.floats(0, 1e4),
                     ttft_s=st.none() | st.floats(0, 100))


@given(st.integers(0, 64), pool_obs, st.floats(0, 1e6))
def test_fixed_ignores_observation(n, obs, now) -> None:
    policy = FixedReplicas({"unified": n})
    decision, state = policy.decide(Observation(now, {"unified": obs}), "s")
    assert decision.desired_replicas == {"unified": n}
    assert state == "s"
    assert decision.reasons and decision.reasons[0].code == "fixed"


def test_unknown_pool_keeps_current_size() -> None:
    obs = Observation(0.0, {"decode": PoolObservation(ready_replicas=3, starting_replicas=1)})
    decision, _ = FixedReplicas({"unified": 2}).decide(obs, None)
    assert decision.desired_replicas == {"decode": 4}


def test_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match="pool 'unified'"):
        FixedReplicas({"unified": -1})
