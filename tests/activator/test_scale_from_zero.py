"""Acceptance (issue #13): scale a ServerlessFunction from zero without losing a request.

The operator (real kopf handlers) and the activator run against the test API server; a real HTTP
backend process stands in for the function's instance, started when the operator scales the
Deployment up (the test plays kubelet: it starts the process, and once the process listens,
reports a Ready Pod and the Deployment's ready replica). Everything that waits polls with a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes import client

from tests.activator.support import BackendProcess, free_port, sample, start_app
from tests.kubeapi import KubeApiServer
from tests.operator.test_handlers_accelerators import (  # noqa: F401 - fixtures
    GROUP,
    TICK_S,
    VERSION,
    clients,
    operator_registry,
    run_operator,
)
from tests.operator.test_handlers_serverless import function, install_crds
from tidal.activator.demand import ANNOTATION_PREFIX
from tidal.activator.kube import KubeBackends, KubeDemandSink
from tidal.activator.server import Activator
from tidal.activator.settings import ActivatorSettings
from tidal.controllers.activator_routing import activator_slice_name
from tidal.operator import handlers_serverless
from tidal.operator.handlers_serverless import FunctionMetrics
from tidal.operator.kube import KubeClients
from tidal.operator.settings import OperatorSettings

NS, FN, PLURAL = "default", "fn", "serverlessfunctions"
ACTIVATOR_NS, ACTIVATOR_SVC = "tidal-system", "tidal-activator"
BACKEND_START_S = 2.0
"""The stand-in instance's start time (a function cold start of the Huawei traces' order)."""
BURST, TRICKLE = 500, 20
DEADLINE_S = 60.0
LABELS = {"namespace": NS, "service": FN}


def idle_metrics(namespace: str, name: str, instances: int, ready: int) -> FunctionMetrics:
    """The function's own metrics: nothing in flight (its load is what the activator reports)."""
    return FunctionMetrics(True, "test", 0.0, 0.0)


async def eventually(check: Any, deadline_s: float = DEADLINE_S) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s}s: {check}")
        await asyncio.sleep(0.02)


@pytest.fixture
def backend_port() -> Iterator[int]:
    yield free_port()


def activator_endpoint_slice(port: int) -> dict[str, Any]:
    """What the EndpointSlice controller would publish for the activator's Service."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{ACTIVATOR_SVC}-abcde", "namespace": ACTIVATOR_NS,
                         "labels": {"kubernetes.io/service-name": ACTIVATOR_SVC}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


class Kubelet:
    """Starts the backend process when the Deployment asks for an instance; reports it Ready."""

    def __init__(self, api: client.ApiClient, port: int) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.port = port
        self.backend = BackendProcess(port, BACKEND_START_S)
        self.started_s = self.ready_s = 0.0

    def replicas(self) -> int:
        return self.apps.read_namespaced_deployment(FN, NS).spec.replicas or 0

    async def run(self) -> None:
        await eventually(lambda: self.replicas() >= 1)
        self.started_s = time.monotonic()
        await self.backend.start(DEADLINE_S)
        self.ready_s = time.monotonic()
        await asyncio.to_thread(self._report_ready)

    def _report_ready(self) -> None:
        self.core.create_namespaced_pod(NS, {
            "metadata": {"name": f"{FN}-7c9d8-x1", "labels": {"tidal.dev/function": FN}},
            "spec": {"containers": [{"name": "function", "image": "fn:1",
                                     "ports": [{"name": "http", "containerPort": self.port}]}]}})
        self.core.patch_namespaced_pod_status(f"{FN}-7c9d8-x1", NS, {"status": {
            "podIP": "127.0.0.1", "conditions": [{"type": "Ready", "status": "True"}]}})
        self.apps.patch_namespaced_deployment_status(FN, NS, {"status": {"readyReplicas": 1, "replicas": 1}})

    def stop(self) -> None:
        self.backend.stop()


ACTIVATOR_USER_AGENT = "tidal-activator-under-test"


def calls_outside_chart_rbac(server: KubeApiServer, *, other_kind: str = "modeldeployments") -> list[str]:
    """The operator's and the activator's recorded API calls that the chart (with the activator
    enabled, cluster-wide) would refuse, and grants of the activator no call used (except the
    demand patch of ``other_kind``, the workload kind the test does not exercise)."""
    from tests.charts.chart_support import CHART_DIR, render
    from tests.charts.rbac_rules import allows, grants
    from tests.operator.test_handlers_accelerators import OPERATOR_USER_AGENT

    objects = render(CHART_DIR / "ci" / "activator-values.yaml")
    operator = grants(objects, "tidal", "tidal-system")
    activator = grants(objects, "tidal-activator", "tidal-system")
    refused, used = [], set()
    for record in server.audit.records():
        resource = f"{record.resource}/{record.subresource}" if record.subresource else record.resource
        if not record.resource:
            continue
        if record.user_agent == ACTIVATOR_USER_AGENT:
            granted = activator
            used.add((record.verb, record.group, resource))
        elif record.user_agent.startswith("kopf/") or record.user_agent == OPERATOR_USER_AGENT:
            granted = operator
        else:
            continue
        if not allows(granted, record.verb, record.group, resource, record.namespace or None):
            refused.append(f"{record.user_agent}: {record.verb} {record.group}/{resource} in {record.namespace}")
    unused = {(g.verb, g.api_group, g.resource) for g in activator} - used - {("patch", "tidal.dev", other_kind)}
    return refused + [f"activator grant never used: {u}" for u in sorted(unused)]


def slice_exists(api: client.ApiClient, name: str) -> bool:
    try:
        client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(name, NS)
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


async def test_burst_and_trickle_from_zero_lose_nothing_and_wait_the_start_time(
    kube_api: KubeApiServer, kube_client: client.ApiClient, clients: KubeClients, backend_port: int,
) -> None:
    install_crds(kube_client)
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": ACTIVATOR_NS}})
    activator_api = client.ApiClient(kube_client.configuration)
    activator_api.user_agent = ACTIVATOR_USER_AGENT
    backends = KubeBackends(activator_api)
    activator = Activator(ActivatorSettings(queue_limit=1000, hold_timeout_s=30.0, replica_name="activator-0"),
                          backends, KubeDemandSink(activator_api, backends, "activator-0"))
    runner, url = await start_app(activator.app())
    activator_port = int(url.rsplit(":", 1)[1])
    client.DiscoveryV1Api(kube_client).create_namespaced_endpoint_slice(
        ACTIVATOR_NS, activator_endpoint_slice(activator_port))
    settings = OperatorSettings(interval_s=TICK_S, activator_service=f"{ACTIVATOR_NS}/{ACTIVATOR_SVC}")
    registry = operator_registry(kube_api, handlers_serverless.register, settings, clients,
                                 function_metrics=idle_metrics)
    kubelet = Kubelet(kube_client, backend_port)
    custom = client.CustomObjectsApi(kube_client)
    try:
        with run_operator(registry):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, NS, PLURAL, function(FN, scaleToZero=True, minInstances=0, keepAlive="10m"))
            # Never invoked and idle: the operator takes it to zero and routes it to the activator.
            await eventually(lambda: slice_exists(kube_client, activator_slice_name(FN)))
            assert kubelet.replicas() == 0
            routed = client.DiscoveryV1Api(kube_client).read_namespaced_endpoint_slice(
                activator_slice_name(FN), NS)
            assert routed.ports[0].port == activator_port
            assert routed.endpoints[0].addresses == ["127.0.0.1"]

            kubelet_task = asyncio.create_task(kubelet.run())
            host = {"Host": f"{FN}.{NS}.svc.cluster.local"}
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector,
                                             timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http:
                async def call(path: str) -> tuple[int, str, float, float]:
                    sent = time.monotonic()
                    async with http.get(url + path, headers=host) as response:
                        return response.status, await response.text(), sent, time.monotonic()

                first_sent = time.monotonic()
                burst = [asyncio.create_task(call(f"/work?b={i}")) for i in range(BURST)]
                trickle = []
                for i in range(TRICKLE):  # one request every 100 ms: a load shape, not a wait
                    trickle.append(asyncio.create_task(call(f"/work?t={i}")))
                    await asyncio.sleep(0.1)
                # Demand reaches the function within 1 s of the first request.
                annotated = await eventually(lambda: any(
                    k.startswith(ANNOTATION_PREFIX) for k in
                    (custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, FN)["metadata"]
                     .get("annotations") or {})), deadline_s=5.0)
                assert annotated
                await kubelet_task
                woken_after_s = kubelet.started_s - first_sent
                results = await asyncio.gather(*burst, *trickle)
                sse = await call("/sse")
            # Ready: the operator takes the activator out of the Service's path.
            await eventually(lambda: not slice_exists(kube_client, activator_slice_name(FN)))
        # The chart grants exactly what the activator used, and all the operator used.
        assert calls_outside_chart_rbac(kube_api) == []
        statuses = [status for status, *_ in results]
        assert statuses.count(200) == BURST + TRICKLE, "zero dropped requests"
        assert all(text.startswith("done /work?") for _, text, *_ in results)
        assert sse[0] == 200 and sse[1] == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
        registry_ = activator.metrics.registry
        assert sample(registry_, "tidal_activator_rejected_total", reason="queue-full", **LABELS) == 0
        assert sample(registry_, "tidal_activator_rejected_total", reason="timeout", **LABELS) == 0
        # The held requests waited for the instance's start, no more: from their arrival to the
        # backend's readiness (operator wake + process start), plus one endpoint poll.
        ready_s = kubelet.ready_s
        held = [(sent, done) for _, _, sent, done in results if sent < ready_s]
        assert len(held) >= BURST
        waits = [done - sent for sent, done in held]
        extra = [done - ready_s for sent, done in held]
        burst_waits = [done - sent for _, _, sent, done in results[:BURST]]
        assert min(burst_waits) >= BACKEND_START_S  # nobody got through before the instance was up
        assert all(done >= ready_s for sent, done in held)
        assert max(extra) < 3.0, f"held requests finished {max(extra):.2f}s after the backend was ready"
        assert woken_after_s < 1.5, f"the operator scaled up {woken_after_s:.2f}s after the first request"
        print(f"\nwoken after {woken_after_s:.3f}s; backend process started in {ready_s - kubelet.started_s:.3f}s, "
              f"ready after {ready_s - first_sent:.3f}s; "
              f"held waits {min(waits):.3f}..{max(waits):.3f}s; released within {max(extra):.3f}s of ready")
    finally:
        kubelet.stop()
        await runner.cleanup()
        activator_api.close()


async def test_503_only_past_the_queue_limit_or_the_timeout_and_counted() -> None:
    from tests.activator.support import RecordingSink, StaticBackends
    from tidal.activator.queueing import WorkloadRef

    ref = WorkloadRef(NS, FN)
    activator = Activator(ActivatorSettings(queue_limit=50, hold_timeout_s=1.0, backend_poll_interval_s=0.05),
                          StaticBackends({ref: ()}), RecordingSink())
    runner, url = await start_app(activator.app())
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            async def call() -> tuple[int, str | None]:
                async with http.get(url + "/work", headers={"Host": f"{FN}.{NS}"}) as response:
                    return response.status, response.headers.get("Retry-After")

            results = await asyncio.gather(*(call() for _ in range(80)))
        assert results.count((503, "1")) == 80  # no instance ever comes: all are refused, none lost
        registry_ = activator.metrics.registry
        assert sample(registry_, "tidal_activator_rejected_total", reason="queue-full", **LABELS) == 30
        assert sample(registry_, "tidal_activator_rejected_total", reason="timeout", **LABELS) == 50
        assert sample(registry_, "tidal_activator_held_requests", **LABELS) == 0
    finally:
        await runner.cleanup()
