"""The activator's server against a real HTTP backend (all in one event loop, no sleeps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.activator.support import (
    Backend,
    RecordingSink,
    StaticBackends,
    eventually,
    free_port,
    sample,
    start_app,
)
from tidal.activator.queueing import WorkloadRef
from tidal.activator.server import Activator
from tidal.activator.settings import ActivatorSettings

FN = WorkloadRef("team-a", "fn")
HOST = {"Host": "fn.team-a.svc.cluster.local"}
LABELS = {"namespace": "team-a", "service": "fn"}


@dataclass
class Rig:
    activator: Activator
    backends: StaticBackends
    sink: RecordingSink
    backend: Backend
    url: str
    client: aiohttp.ClientSession

    def held(self) -> float:
        return sample(self.activator.metrics.registry, "tidal_activator_held_requests", **LABELS)

    def rejected(self, reason: str) -> float:
        return sample(self.activator.metrics.registry, "tidal_activator_rejected_total",
                      reason=reason, **LABELS)

    def wake(self) -> None:
        self.backends.endpoints[FN] = (self.backend.url,)


async def make_rig(**settings: object) -> AsyncIterator[Rig]:
    backend = Backend()
    await backend.start()
    backends = StaticBackends({FN: ()})
    sink = RecordingSink()
    base = dict(backend_poll_interval_s=0.01, demand_signal_interval_s=0.05)
    activator = Activator(ActivatorSettings(**{**base, **settings}), backends, sink)  # type: ignore[arg-type]
    runner, url = await start_app(activator.app())
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as client:
        yield Rig(activator, backends, sink, backend, url, client)
    await runner.cleanup()
    await backend.stop()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async for r in make_rig():
        yield r


async def test_held_requests_are_forwarded_in_arrival_order_once_ready(rig: Rig) -> None:
    async def call(seq: int) -> tuple[int, dict]:
        async with rig.client.post(rig.url + f"/echo?seq={seq}", data=f"body-{seq}",
                                   headers={**HOST, "X-Seq": str(seq)}) as r:
            return r.status, await r.json()

    tasks = []
    for seq in range(10):  # each is held before the next is sent: a known arrival order
        tasks.append(asyncio.create_task(call(seq)))
        await eventually(lambda: rig.held() == seq + 1)
    assert rig.sink.reports, "demand was signalled while the requests were held"
    rig.wake()
    results = await asyncio.gather(*tasks)
    assert [status for status, _ in results] == [200] * 10
    assert [body["body"] for _, body in results] == [f"body-{i}" for i in range(10)]
    assert results[3][1]["path"] == "/echo?seq=3"
    assert rig.held() == 0
    count = sample(rig.activator.metrics.registry, "tidal_activator_wait_seconds_count", **LABELS)
    assert count == 10
    # Released in arrival order: the waiters resume first-held first, so the backend sees them so.
    assert rig.backend.seen == [str(i) for i in range(10)]


async def test_first_request_signals_demand_at_once_and_a_burst_is_batched(rig: Rig) -> None:
    first = asyncio.create_task(rig.client.get(rig.url + "/echo", headers=HOST))
    await eventually(lambda: rig.sink.reports)
    ref, report, _ = rig.sink.reports[0]
    assert ref == FN and report.held == 1 and len(report.arrivals_s) == 1
    burst = [asyncio.create_task(rig.client.get(rig.url + "/echo", headers=HOST)) for _ in range(100)]
    await eventually(lambda: rig.held() == 101)
    await eventually(lambda: any(r.held == 101 for _, r, _ in rig.sink.reports))
    assert len(rig.sink.reports) <= 10  # batched, not one write per request
    assert len(rig.sink.reports[-1][1].arrivals_s) == 64  # bounded: the most recent arrivals
    rig.wake()
    for response in await asyncio.gather(first, *burst):
        assert response.status == 200
        response.release()


async def test_queue_full_and_timeout_get_503_with_retry_after_and_are_counted() -> None:
    async for rig in make_rig(queue_limit=3, hold_timeout_s=30.0):
        held = [asyncio.create_task(rig.client.get(rig.url + "/echo", headers=HOST)) for _ in range(3)]
        await eventually(lambda: rig.held() == 3)
        async with rig.client.get(rig.url + "/echo", headers=HOST) as over:
            assert over.status == 503 and over.headers["Retry-After"] == "1"
            assert "too many requests" in await over.text()
        assert rig.rejected("queue-full") == 1
        rig.wake()
        for response in await asyncio.gather(*held):
            assert response.status == 200
            response.release()
    async for rig in make_rig(hold_timeout_s=0.2):
        async with rig.client.get(rig.url + "/echo", headers=HOST) as late:
            assert late.status == 503 and late.headers["Retry-After"] == "1"
        assert rig.rejected("timeout") == 1 and rig.held() == 0


async def test_streaming_response_is_not_buffered(rig: Rig) -> None:
    rig.wake()
    async with rig.client.get(rig.url + "/sse", headers=HOST) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await response.content.readuntil(b"\n\n")
        assert first == b"data: one\n\n"  # arrived while the backend still holds the second event
        rig.backend.release_second.set()
        assert await response.content.read() == b"data: two\n\n"


async def test_status_codes_pass_and_dead_backends_are_502() -> None:
    async for rig in make_rig(connect_retry_s=0.3):
        rig.wake()
        async with rig.client.get(rig.url + "/status/418", headers=HOST) as response:
            assert response.status == 418
        rig.backends.endpoints[FN] = ("http://127.0.0.1:9",)  # discard port: nothing listens
        rig.activator.gate(FN).endpoints = ("http://127.0.0.1:9",)
        async with rig.client.get(rig.url + "/echo", headers=HOST) as response:
            assert response.status == 502
        assert sample(rig.activator.metrics.registry, "tidal_activator_proxied_total", code="502", **LABELS) == 1
        assert sample(rig.activator.metrics.registry, "tidal_activator_proxied_total", code="418", **LABELS) == 1


async def test_health_metrics_and_unknown_hosts(rig: Rig) -> None:
    async with rig.client.get(rig.url + "/healthz") as response:
        assert response.status == 200
    async with rig.client.get(rig.url + "/metrics") as response:
        text = await response.text()
    for name in ("tidal_activator_held_requests", "tidal_activator_wait_seconds",
                 "tidal_activator_rejected_total", "tidal_activator_proxied_total"):
        assert name in text
    async with rig.client.get(rig.url + "/echo", headers={"Host": "fn"}) as response:
        assert response.status == 404 and "<service>.<namespace>" in await response.text()
    rig.wake()
    async with rig.client.get(rig.url + "/healthz", headers=HOST) as response:
        assert response.status == 404  # the function's own /healthz is proxied, not answered


async def test_a_backend_that_starts_listening_late_is_retried_not_failed() -> None:
    """Connection refused by a just-started instance: the request was never sent, so it is
    retried (50 ms doubling) until the instance accepts, within the retry budget."""
    port = free_port()
    async for rig in make_rig(connect_retry_s=30.0):
        late = f"http://127.0.0.1:{port}"
        rig.backends.endpoints[FN] = (late,)
        request = asyncio.create_task(rig.client.get(rig.url + "/echo", headers=HOST))
        await eventually(lambda: rig.backends.lookups > 0 and not rig.held())  # released to the dead port
        late_backend = Backend()
        await late_backend.start(port)
        response = await request
        assert response.status == 200
        response.release()
        await late_backend.stop()


async def test_a_function_that_went_to_zero_since_is_held_not_sent_to_its_old_instance() -> None:
    async for rig in make_rig(endpoints_ttl_s=0.0, connect_retry_s=30.0):
        rig.wake()
        async with rig.client.get(rig.url + "/echo", headers=HOST) as response:
            assert response.status == 200
        rig.backends.endpoints[FN] = ()  # scaled to zero: the cached endpoint is stale
        request = asyncio.create_task(rig.client.get(rig.url + "/echo", headers=HOST))
        await eventually(lambda: rig.held() == 1)
        rig.wake()
        response = await request
        assert response.status == 200
        response.release()


async def test_a_request_whose_instance_vanished_is_held_again() -> None:
    async for rig in make_rig(endpoints_ttl_s=3600.0, connect_retry_s=30.0):
        dead = f"http://127.0.0.1:{free_port()}"
        rig.backends.endpoints[FN] = ()
        gate = rig.activator.gate(FN)
        gate.endpoints, gate.endpoints_at_s = (dead,), time.monotonic()  # trusted; nothing listens
        request = asyncio.create_task(rig.client.get(rig.url + "/echo", headers=HOST))
        await eventually(lambda: rig.held() == 1)  # the lookup found no instance: held again
        rig.wake()
        response = await request
        assert response.status == 200
        response.release()


class _Namespaces:
    """The client pods the test knows: IP -> namespace."""

    def __init__(self, pods: dict[str, str]) -> None:
        self.pods = pods

    async def namespace_of(self, address: str) -> str | None:
        return self.pods.get(address)


async def test_a_bare_service_host_is_resolved_in_the_client_pods_namespace(rig: Rig) -> None:
    """``Host: fn`` from a pod in team-a (its DNS search path resolved ``fn`` there) is team-a/fn;
    from an address that is no pod's, 404 saying what to send."""
    rig.wake()
    rig.activator.namespaces = _Namespaces({"127.0.0.1": "team-a"})
    async with rig.client.get(rig.url + "/echo", headers={"Host": "fn"}) as response:
        assert response.status == 200 and (await response.json())["path"] == "/echo"
    async with rig.client.get(rig.url + "/echo", headers={"Host": "fn:8080"}) as response:
        assert response.status == 200
    rig.activator.namespaces = _Namespaces({})
    async with rig.client.get(rig.url + "/echo", headers={"Host": "fn"}) as response:
        assert response.status == 404 and "<service>.<namespace>" in await response.text()
