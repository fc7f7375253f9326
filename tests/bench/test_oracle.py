"""The oracle's schedule: counts requested one cold start ahead, held through the interval."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidal.bench.oracle import ScheduledReplicas, cold_start_lead_s, interval_leads
from tidal.bench.run import sim_config
from tidal.policies.interface import Observation, PoolObservation


def _observe(t: float) -> Observation:
    return Observation(now_s=t, pools={"unified": PoolObservation(ready_replicas=1)})


@given(counts=st.lists(st.integers(1, 9), min_size=1, max_size=12),
       lead=st.floats(1.0, 200.0), t=st.floats(0.0, 800.0))
def test_desired_is_the_largest_count_starting_within_the_lead(counts: list[int], lead: float,
                                                                t: float) -> None:
    plan = tuple((("unified", n),) for n in counts)
    policy = ScheduledReplicas(plan, 60.0, tuple([lead] * len(counts)))
    desired = policy.decide(_observe(t), None)[0].desired_replicas["unified"]
    current = min(int(t // 60.0), len(counts) - 1)
    expected = max(n for k, n in enumerate(counts)
                   if k == current or (k > current and k * 60.0 <= t + lead))
    assert desired == expected


def test_cached_nodes_start_faster_and_leads_follow_the_plan() -> None:
    config = sim_config("8b-h100", "azure-code", "unified", 0)
    cached = cold_start_lead_s(config, cached=True)
    uncached = cold_start_lead_s(config, cached=False)
    assert config.tick_s < cached < uncached
    # 8 GPUs per node: growing past 8 replicas needs a node that has not pulled the weights
    leads = interval_leads([{"unified": 2}, {"unified": 6}, {"unified": 12}, {"unified": 3}],
                           config)
    assert leads == (uncached, cached, uncached, cached)
