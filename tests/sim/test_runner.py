"""Runner and cluster invariants: pod lifecycle, draining, reproducibility, disaggregation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.sim.conftest import make_requests
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.interface import Decision, Observation
from tidal.policies.utilization import UtilizationTarget
from tidal.sim.cluster import TERMINATED
from tidal.sim.coldstart import ColdStartParams, sample_cold_start
from tidal.sim.hardware import get_model
from tidal.sim.runner import SimConfig, Simulation


@dataclass
class Schedule:
    """Test policy: desired replicas from a step schedule [(from_s, n), ...]."""

    steps: list[tuple[float, int]]
    name: str = "schedule"

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        n = [k for t, k in self.steps if observation.now_s >= t][-1]
        return Decision({p: n for p in observation.pools}), state


def seqs_of(sim: Simulation):
    return sim._finished


def test_pending_pod_serves_nothing() -> None:
    # one node of 8 GPUs, 12 single-GPU replicas wanted: 4 stay Pending throughout
    reqs = make_requests(400, gap_s=0.2)
    sim = Simulation(reqs, Schedule([(0.0, 2), (20.0, 12)]), SimConfig(nodes=1, tick_s=5.0))
    observed_pending = []
    orig = sim.observe

    def spy(now_s, in_flight=None):
        obs = orig(now_s, in_flight)
        observed_pending.append(obs.pools["unified"].pending_replicas)
        return obs

    sim.observe = spy
    result = sim.run()
    assert max(observed_pending) == 4
    never_scheduled = {p.id for p in sim.cluster.pods.values() if p.scheduled_s is None}
    assert len(never_scheduled) == 4
    assert all(sim.cluster.pods[i].engine is None for i in never_scheduled)
    pods = sim.cluster.pods
    for seq in seqs_of(sim):
        assert seq.replica not in never_scheduled
        assert pods[seq.replica].ready_s <= seq.routed_s
    assert result.summary["finished"] == len(reqs)


def test_draining_pod_takes_no_new_requests() -> None:
    reqs = make_requests(1500, gap_s=0.1, output=400)
    sim = Simulation(reqs, Schedule([(0.0, 6), (40.0, 2), (100.0, 5)]),
                     SimConfig(tick_s=5.0))
    result = sim.run()
    pods = sim.cluster.pods
    drained = [p for p in pods.values() if p.drain_s is not None]
    assert len(drained) == 4
    for seq in seqs_of(sim):
        pod = pods[seq.replica]
        if pod.drain_s is not None:
            assert seq.routed_s < pod.drain_s
        # nothing finishes on a pod after it terminated
        if pod.terminated_s is not None:
            assert seq.finish_s <= pod.terminated_s
    # drained pods waited for their in-flight requests before terminating
    assert any(p.terminated_s > p.drain_s for p in drained)
    assert all(p.phase == TERMINATED for p in drained)
    assert result.summary["finished"] == len(reqs)


def test_same_seed_same_summary_different_seed_different_cold_starts() -> None:
    reqs = make_requests(800, gap_s=0.15, output=200)
    policy = UtilizationTarget(target_inflight_per_replica=4, max_replicas=8)

    def run(seed):
        return Simulation(reqs, policy, SimConfig(seed=seed, tick_s=5.0)).run()

    a, b, c = run(7), run(7), run(8)
    assert a.summary == b.summary
    assert a.decisions == b.decisions
    assert a.summary["cold_starts"] > 0
    assert a.summary["cold_start_mean_s"] != c.summary["cold_start_mean_s"]


def test_no_request_finishes_before_it_arrives_under_autoscaling() -> None:
    reqs = make_requests(600, gap_s=0.1)
    result = Simulation(reqs, UtilizationTarget(target_inflight_per_replica=4, min_replicas=0),
                        SimConfig(tick_s=5.0)).run()
    r = result.requests
    assert result.summary["finished"] == len(reqs)
    assert np.all(r["first_token_s"] >= r["arrival_s"])
    assert np.all(r["finish_s"] >= r["first_token_s"])


def test_scale_from_zero_requests_wait_for_cold_start() -> None:
    reqs = make_requests(50, gap_s=0.5, start_s=1.0)
    result = Simulation(reqs, Schedule([(0.0, 0), (5.0, 1)]), SimConfig(tick_s=5.0)).run()
    cold = result.summary["cold_start_mean_s"]
    assert cold is not None and cold > 20
    assert result.summary["ttft_p99_s"] > cold - 5.0


def test_disaggregated_mode_adds_kv_transfer_time() -> None:
    reqs = make_requests(100, gap_s=1.0, prompt=3000)
    fast = Simulation(reqs, FixedReplicas({"prefill": 1, "decode": 1}),
                      SimConfig(mode="disaggregated", kv_transfer_bps=1e15)).run()
    slow_bps = 1e9
    slow = Simulation(reqs, FixedReplicas({"prefill": 1, "decode": 1}),
                      SimConfig(mode="disaggregated", kv_transfer_bps=slow_bps)).run()
    kv_bytes = get_model("llama-3.1-8b").kv_bytes_per_token
    expected = np.asarray([r.prompt_tokens for r in reqs]) * kv_bytes * (1 / slow_bps - 1e-15)
    order = np.argsort(fast.requests["request_id"])
    order_slow = np.argsort(slow.requests["request_id"])
    delta = slow.requests["ttft_s"][order_slow] - fast.requests["ttft_s"][order]
    assert np.allclose(delta, expected, rtol=0.05, atol=2e-3)
    assert fast.summary["finished"] == slow.summary["finished"] == len(reqs)


def test_cold_start_faster_with_cached_image_and_weights() -> None:
    params = ColdStartParams(jitter_sigma=0.0)
    model = get_model("llama-3.1-8b")
    rng = np.random.default_rng(0)
    cold = sample_cold_start(params, model, image_cached=False, weights_cached=False, rng=rng)
    image = sample_cold_start(params, model, image_cached=True, weights_cached=False, rng=rng)
    warm = sample_cold_start(params, model, image_cached=True, weights_cached=True, rng=rng)
    assert warm.total_s < image.total_s < cold.total_s
    assert warm.weights_s < cold.weights_s and image.image_s < cold.image_s


def test_second_start_on_a_node_uses_its_caches() -> None:
    reqs = make_requests(400, gap_s=0.25)
    sim = Simulation(reqs, Schedule([(0.0, 1), (10.0, 2), (40.0, 1), (60.0, 2)]),
                     SimConfig(nodes=1, tick_s=5.0))
    sim.run()
    started = sorted((p for p in sim.cluster.pods.values() if p.cold_start is not None),
                     key=lambda p: p.id)
    assert started and all(p.image_cached and p.weights_cached for p in started)
    uncached = Simulation(reqs, Schedule([(0.0, 0), (1.0, 1)]), SimConfig(nodes=1, tick_s=5.0))
    uncached.run()
    first = [p for p in uncached.cluster.pods.values() if p.cold_start is not None][0]
    assert not first.image_cached
    assert first.cold_start.total_s > max(p.cold_start.total_s for p in started)


def test_observation_uses_only_the_past() -> None:
    # a burst at t=100 must not be visible in observations before t=100
    reqs = make_requests(20, gap_s=1.0) + make_requests(300, gap_s=0.01, start_s=100.0, output=3000)
    for i, r in enumerate(reqs):
        object.__setattr__(r, "request_id", i)
    seen = []

    @dataclass
    class Spy:
        name: str = "spy"

        def decide(self, observation, state):
            seen.append((observation.now_s, observation.pools["unified"].arrival_rate_rps))
            return Decision({"unified": 2}), state

    Simulation(reqs, Spy(), SimConfig(tick_s=5.0)).run()
    before = [rate for t, rate in seen if 0 < t < 100.0]
    assert before and max(before) <= 1.2
    assert max(rate for t, rate in seen if t >= 100.0) > 3.0


def test_arrival_estimate_is_exact_under_overload() -> None:
    """The simulator reports what vLLM exports: completions (which saturate) and the in-flight
    gauges. Completions plus the change in flight over the window are exactly the arrivals a gateway
    counted in it (nothing rejected, nothing dropped), so the core sizes on arrivals in both shells."""
    reqs = make_requests(900, gap_s=0.05, output=400)
    seen = []

    @dataclass
    class Spy:
        name: str = "spy"

        def decide(self, observation, state):
            seen.append((observation.now_s, observation.pools["unified"]))
            return Decision({"unified": 1}), state

    Simulation(reqs, Spy(), SimConfig(tick_s=15.0, initial_replicas={"unified": 1})).run()
    assert seen
    arrivals = np.array([r.arrival_s for r in reqs])
    for now, p in seen:
        assert p.arrival_rate_rps == pytest.approx(p.entry_request_rate_rps, abs=1e-9)
        # the peak is the busiest tick's arrivals in the window, estimated the same way
        ticks = [now - 15.0 * k for k in range(4) if now - 15.0 * (k + 1) >= 0]
        busiest = max(((arrivals >= t - 15.0) & (arrivals < t)).sum() / 15.0 for t in ticks)
        assert p.peak_request_rate_rps == pytest.approx(busiest, abs=1e-9)
    seen = [p for _, p in seen]
    overloaded = [p for p in seen if p.entry_request_rate_rps and p.request_rate_rps is not None
                  and p.request_rate_rps < 0.5 * p.entry_request_rate_rps]
    assert overloaded, "one replica at 20 req/s should complete less than it receives"
