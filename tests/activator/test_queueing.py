"""Pure decisions of the activator: routing by Host, admission, hold time, order, headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.activator.queueing import (
    Admission,
    WorkloadRef,
    admit,
    forwarded_headers,
    pick_endpoint,
    release_order,
    remaining_hold_s,
    workload_from_host,
)


@pytest.mark.parametrize("host, expected", [
    ("fn.team-a", WorkloadRef("team-a", "fn")),
    ("fn.team-a:80", WorkloadRef("team-a", "fn")),
    ("fn.team-a.svc", WorkloadRef("team-a", "fn")),
    ("fn.team-a.svc.cluster.local", WorkloadRef("team-a", "fn")),
    ("FN.Team-A.svc.cluster.local.:8080", WorkloadRef("team-a", "fn")),
    ("fn.team-a.svc.example.org", WorkloadRef("team-a", "fn")),
    ("fn", None),  # no namespace: the caller says to use <service>.<namespace>
    ("", None),
    (None, None),
    ("10.0.0.1:8012", None),
    ("[::1]:8012", None),
    ("fn.team_a", None),
    ("a.b.c.d", None),
])
def test_workload_from_host(host: str | None, expected: WorkloadRef | None) -> None:
    assert workload_from_host(host) == expected


@given(ready=st.integers(0, 5), held=st.integers(0, 50), limit=st.integers(1, 50))
def test_admission_bounds_the_queue_and_never_overtakes(ready: int, held: int, limit: int) -> None:
    action = admit(ready_endpoints=ready, held=held, queue_limit=limit)
    if action is Admission.HOLD:
        assert held < limit  # never an unbounded buffer: one more fits
    if action is Admission.FORWARD:
        assert ready > 0 and held == 0  # nobody held is overtaken
    if ready == 0 and held < limit:
        assert action is Admission.HOLD
    if held >= limit and not (ready > 0 and held == 0):
        assert action is Admission.REJECT_FULL


@given(arrived=st.floats(0, 1e6), waited=st.floats(0, 1e4), timeout=st.floats(0.001, 1e4))
def test_remaining_hold_time_shrinks_to_zero(arrived: float, waited: float, timeout: float) -> None:
    left = remaining_hold_s(arrived_s=arrived, now_s=arrived + waited, hold_timeout_s=timeout)
    assert 0.0 <= left <= timeout + 1e-9 * (1.0 + arrived)  # float rounding of arrived + timeout
    later = remaining_hold_s(arrived_s=arrived, now_s=arrived + waited + 1.0, hold_timeout_s=timeout)
    assert later <= left
    if waited >= timeout:
        assert left == 0.0


@given(st.lists(st.tuples(st.integers(0, 1000), st.floats(0, 100)), max_size=50))
def test_release_order_is_arrival_order(arrivals: list[tuple[int, float]]) -> None:
    order = release_order(arrivals)
    assert sorted(order) == list(range(len(arrivals)))  # every held request, once
    times = [arrivals[i][1] for i in order]
    assert times == sorted(times)


def test_pick_endpoint_round_robin_and_empty() -> None:
    endpoints = ("http://a", "http://b")
    assert [pick_endpoint(endpoints, t) for t in range(4)] == ["http://a", "http://b"] * 2
    with pytest.raises(ValueError, match="no ready endpoints"):
        pick_endpoint((), 0)


def test_forwarded_headers_drop_hop_by_hop_and_connection_named() -> None:
    headers = [("Host", "fn.ns"), ("Connection", "keep-alive, X-Private"), ("X-Private", "1"),
               ("Transfer-Encoding", "chunked"), ("Accept", "text/event-stream"), ("Upgrade", "h2c")]
    assert forwarded_headers(headers) == [("Host", "fn.ns"), ("Accept", "text/event-stream")]


def test_bare_service_from_host() -> None:
    from tidal.activator.queueing import bare_service_from_host

    assert bare_service_from_host("fn") == "fn" and bare_service_from_host("FN:8080") == "fn"
    for host in ("fn.team-a", "10.0.0.1", "[::1]:80", "localhost", "", None, "-bad", "a" * 64):
        assert bare_service_from_host(host) is None, host
