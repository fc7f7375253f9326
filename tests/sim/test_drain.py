"""Scale-down in the simulator: a pod removed from service finishes the requests it holds within its
drain window (tidal's rendered pods: preStop delay + spec.engine.drainTimeout), so no request is
dropped; a window shorter than the requests drops exactly what was still in flight (the control that
shows the count can fail)."""

from __future__ import annotations

from tests.controllers.test_modeldeployment_render import UNIFIED
from tests.sim.conftest import make_requests
from tests.sim.test_runner import Schedule
from tidal.controllers.modeldeployment import PRESTOP_DELAY_S, drain_seconds
from tidal.sim.cluster import TERMINATED
from tidal.sim.runner import SimConfig, Simulation

RENDERED_DRAIN_WINDOW_S = PRESTOP_DELAY_S + drain_seconds(UNIFIED)
"""What the example's pods get: the preStop delay, then vLLM's --shutdown-timeout (65 s by default)."""


def scale_down_run(drain_window_s: float) -> Simulation:
    """Six replicas under steady load, cut to two at 40 s while every replica is busy."""
    reqs = make_requests(1500, gap_s=0.1, output=400)
    sim = Simulation(reqs, Schedule([(0.0, 6), (40.0, 2)]), SimConfig(tick_s=5.0, drain_window_s=drain_window_s))
    sim.run()
    return sim


def test_scale_down_drops_no_request_within_the_rendered_drain_window() -> None:
    sim = scale_down_run(RENDERED_DRAIN_WINDOW_S)
    summary = sim._result(0.0).summary
    drained = [p for p in sim.cluster.pods.values() if p.drain_s is not None]
    assert len(drained) == 4
    # Not vacuous: the removed pods held requests when the scale-down hit them ...
    assert all(p.terminated_s > p.drain_s for p in drained)
    # ... and each left only once they had finished, inside its window.
    for pod in drained:
        assert pod.phase == TERMINATED and pod.dropped_requests == 0
        assert pod.terminated_s - pod.drain_s <= RENDERED_DRAIN_WINDOW_S
        served = [s for s in sim._finished if s.replica == pod.id]
        assert served and max(s.finish_s for s in served) <= pod.terminated_s
    assert summary["dropped"] == 0
    assert summary["finished"] == summary["requests"]


def test_a_window_shorter_than_the_requests_drops_what_was_in_flight() -> None:
    window_s = 0.5
    sim = scale_down_run(window_s)
    summary = sim._result(0.0).summary
    killed = [p for p in sim.cluster.pods.values() if p.dropped_requests > 0]
    assert killed, "the control must drop requests, or the zero above proves nothing"
    for pod in killed:
        assert abs(pod.terminated_s - (pod.drain_s + window_s)) < 1e-9  # killed when the window ended
    assert summary["dropped"] == sum(p.dropped_requests for p in killed) > 0
    assert summary["finished"] + summary["dropped"] + summary["rejected"] + summary["unfinished"] == summary["requests"]
    # the dropped requests never finished anywhere
    dropped_ids = {id(s) for s in sim._dropped}
    assert not any(id(s) in dropped_ids for s in sim._finished)


def test_simulate_f_gives_pods_the_drain_window_tidal_renders() -> None:
    from tests.controllers.test_modeldeployment_render import ACCELERATORS
    from tidal.sim.modeldeployment import prepare, sim_config

    config = sim_config(prepare(UNIFIED, ACCELERATORS))
    assert config.drain_window_s == RENDERED_DRAIN_WINDOW_S
