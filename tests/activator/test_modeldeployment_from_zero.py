"""Acceptance (issue #13, ModelDeployments): a ModelDeployment at zero replicas behind the activator.

The operator (real kopf handlers for ModelDeployments) and the activator run against the test API
server; a real HTTP backend process stands in for the engine (it takes BACKEND_START_S to listen:
weights load and engine init, shortened). The test plays kubelet and Deployment controller: when
the operator scales the unified pool's Deployment up, it starts the process and, once it listens,
reports a Ready engine Pod (port ``http``) and the Deployment's ready replica. The engine metrics
come from a fake Prometheus reader reporting idle engines (nothing in flight), so ``scaleToZero``
can park the pool again afterwards. Everything that waits polls with a deadline.

A second ModelDeployment never gets a replica (its kubelet never comes): its held requests are
refused with 503 past the queue limit at once and past the hold timeout later, and counted.

The second test runs a disaggregated ModelDeployment at zero: the router (the backend process
stands in for it) is Ready throughout, the prefill pod becomes Ready before the decode pod, and no
held request is forwarded before the decode pod is Ready too.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from kubernetes import client

from tests.activator.support import BackendProcess, free_port, sample, start_app
from tests.activator.test_scale_from_zero import (
    ACTIVATOR_NS,
    ACTIVATOR_SVC,
    ACTIVATOR_USER_AGENT,
    activator_endpoint_slice,
    calls_outside_chart_rbac,
    eventually,
)
from tests.kubeapi import KubeApiServer
from tests.operator.conftest import accelerator_class, model_deployment
from tests.operator.test_handlers_accelerators import (  # noqa: F401 - fixtures
    GROUP,
    TICK_S,
    VERSION,
    clients,
    operator_registry,
    run_operator,
)
from tests.operator.test_handlers_serverless import install_crds
from tidal.activator.demand import ANNOTATION_PREFIX
from tidal.activator.kube import KubeBackends, KubeDemandSink
from tidal.activator.server import Activator
from tidal.activator.settings import ActivatorSettings
from tidal.controllers.labels import ACCELERATOR_LABEL, DEPLOYMENT_LABEL, POOL_LABEL
from tidal.controllers.modeldeployment_entry import entry_slice_name
from tidal.operator import handlers_modeldeployment
from tidal.operator.kube import KubeClients
from tidal.operator.prometheus import PodMetrics, PoolMetrics
from tidal.operator.settings import OperatorSettings

NS, MD, COLD, PLURAL, ACC = "default", "chat", "cold", "modeldeployments", "gpu-a"
DEPLOYMENT = f"{MD}-unified-{ACC}"
BACKEND_START_S = 2.0
BURST, TRICKLE = 300, 20
QUEUE_LIMIT, HOLD_TIMEOUT_S = 400, 15.0
COLD_REQUESTS = QUEUE_LIMIT + 30
DEADLINE_S = 60.0


class IdleEngines:
    """The engines' metrics as the Prometheus reader returns them: every Ready engine pod reports,
    with nothing running or waiting (the load is what the activator reports)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    def read_pool(self, *, namespace: str, deployment: str, pool: str, **_: Any) -> PoolMetrics:
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"{DEPLOYMENT_LABEL}={deployment},"
                                                                       f"{POOL_LABEL}={pool}").items
        names = [p.metadata.name for p in pods]
        return PoolMetrics(request_rate_rps=0.0, prompt_tokens_rps=0.0, output_tokens_rps=0.0, running_requests=0.0,
                           waiting_requests=0.0, peak_request_rate_rps=0.0,
                           pods={n: PodMetrics(n, running_requests=0.0, waiting_requests=0.0) for n in names})


class EngineKubelet:
    """Starts the backend process when the unified Deployment asks for a replica; reports it Ready."""

    def __init__(self, api: client.ApiClient, port: int) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.port = port
        self.backend = BackendProcess(port, BACKEND_START_S)
        self.started_s = self.ready_s = self.reported_s = 0.0

    def replicas(self) -> int:
        try:
            return self.apps.read_namespaced_deployment(DEPLOYMENT, NS).spec.replicas or 0
        except client.ApiException as exc:
            if exc.status == 404:
                return -1
            raise

    async def run(self) -> None:
        await eventually(lambda: self.replicas() >= 1)
        self.started_s = time.monotonic()
        await self.backend.start(DEADLINE_S)
        self.ready_s = time.monotonic()
        await asyncio.to_thread(self._report_ready)
        self.reported_s = time.monotonic()

    def _report_ready(self) -> None:
        name = f"{DEPLOYMENT}-5f7d-x1"
        self.core.create_namespaced_pod(NS, {
            "metadata": {"name": name, "labels": {DEPLOYMENT_LABEL: MD, POOL_LABEL: "unified", ACCELERATOR_LABEL: ACC}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "engine", "image": "vllm/vllm-openai:v0.11.0",
                                                           "ports": [{"name": "http", "containerPort": self.port}]}]}})
        self.core.patch_namespaced_pod_status(name, NS, {"status": {
            "phase": "Running", "podIP": "127.0.0.1",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}})
        self.apps.patch_namespaced_deployment_status(DEPLOYMENT, NS, {"status": {
            "replicas": 1, "readyReplicas": 1, "availableReplicas": 1}})

    def stop_engine(self) -> None:
        """The replica goes away (after a scale to zero): its pod is deleted, the process stopped."""
        self.core.delete_namespaced_pod(f"{DEPLOYMENT}-5f7d-x1", NS)
        self.apps.patch_namespaced_deployment_status(DEPLOYMENT, NS, {"status": {
            "replicas": 0, "readyReplicas": 0, "availableReplicas": 0}})
        self.stop()

    def stop(self) -> None:
        self.backend.stop()


def slice_exists(api: client.ApiClient, name: str) -> bool:
    try:
        client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(name, NS)
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def reasons(custom: Any, name: str) -> list[str]:
    status = custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name).get("status") or {}
    return [r.get("code", "") for r in (status.get("lastDecision") or {}).get("reasons") or []]


@dataclass
class ActivatorUnderTest:
    """The activator serving at ``url`` and the operator's registry pointed at it."""

    registry: Any
    activator: Activator
    runner: web.AppRunner
    url: str
    api: client.ApiClient

    async def close(self) -> None:
        await self.runner.cleanup()
        self.api.close()


async def activator_and_operator(kube_api: KubeApiServer, kube_client: client.ApiClient,
                                 clients: KubeClients) -> ActivatorUnderTest:
    """The CRDs and the AcceleratorClass installed, the activator serving (with its own user agent)
    behind its Service's EndpointSlice, and the operator's registry for ModelDeployments, pointed
    at it."""
    install_crds(kube_client)
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": ACTIVATOR_NS}})
    client.CustomObjectsApi(kube_client).create_cluster_custom_object(
        GROUP, VERSION, "acceleratorclasses", accelerator_class(ACC, 2.5))
    activator_api = client.ApiClient(kube_client.configuration)
    activator_api.user_agent = ACTIVATOR_USER_AGENT
    backends = KubeBackends(activator_api)
    activator = Activator(ActivatorSettings(queue_limit=QUEUE_LIMIT, hold_timeout_s=HOLD_TIMEOUT_S,
                                            replica_name="activator-0"),
                          backends, KubeDemandSink(activator_api, backends, "activator-0"))
    runner, url = await start_app(activator.app())
    client.DiscoveryV1Api(kube_client).create_namespaced_endpoint_slice(
        ACTIVATOR_NS, activator_endpoint_slice(activator_port(url)))
    settings = OperatorSettings(interval_s=TICK_S, metrics_window_s=5.0, state_save_interval_s=0.0,
                                activator_service=f"{ACTIVATOR_NS}/{ACTIVATOR_SVC}")
    registry = operator_registry(kube_api, handlers_modeldeployment.register, settings, clients,
                                 prometheus=IdleEngines(kube_client))
    return ActivatorUnderTest(registry, activator, runner, url, activator_api)


def activator_port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_a_modeldeployment_from_zero_holds_wakes_forwards_and_parks_again(
    kube_api: KubeApiServer, kube_client: client.ApiClient, clients: KubeClients,
) -> None:
    under_test = await activator_and_operator(kube_api, kube_client, clients)
    registry, activator, url = under_test.registry, under_test.activator, under_test.url
    core, custom = client.CoreV1Api(kube_client), client.CustomObjectsApi(kube_client)
    kubelet = EngineKubelet(kube_client, free_port())
    zero_pool = {"unified": {"minReplicas": 0, "maxReplicas": 4}}
    autoscaling = {"predictor": "none", "scaleToZero": True, "scaleToZeroAfter": "5s",
                   "scaleDownDelay": "5s"}
    try:
        with run_operator(registry):
            for name in (MD, COLD):
                custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, model_deployment(
                    name, namespace=NS, classes=(ACC,), pools=zero_pool, autoscaling=autoscaling))
            # At zero from the start: the operator routes both entry Services to the activator.
            for name in (MD, COLD):
                await eventually(lambda n=name: slice_exists(kube_client, entry_slice_name(n)))
            routed = client.DiscoveryV1Api(kube_client).read_namespaced_endpoint_slice(entry_slice_name(MD), NS)
            assert routed.metadata.labels["kubernetes.io/service-name"] == MD
            assert routed.ports[0].port == activator_port(url) and routed.endpoints[0].addresses == ["127.0.0.1"]
            assert kubelet.replicas() == 0
            await eventually(lambda: "idle-at-zero" in reasons(custom, MD))

            kubelet_task = asyncio.create_task(kubelet.run())
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http:
                async def call(name: str, path: str) -> tuple[int, str, float, float, str | None]:
                    sent = time.monotonic()
                    async with http.get(url + path, headers={"Host": f"{name}.{NS}.svc.cluster.local"}) as response:
                        return (response.status, await response.text(), sent, time.monotonic(),
                                response.headers.get("Retry-After"))

                first_sent = time.monotonic()
                cold = [asyncio.create_task(call(COLD, f"/v1/completions?c={i}")) for i in range(COLD_REQUESTS)]
                burst = [asyncio.create_task(call(MD, f"/work?b={i}")) for i in range(BURST)]
                trickle = []
                for i in range(TRICKLE):  # one request every 100 ms: a load shape, not a wait
                    trickle.append(asyncio.create_task(call(MD, f"/work?t={i}")))
                    await asyncio.sleep(0.1)
                annotated = await eventually(lambda: any(
                    k.startswith(ANNOTATION_PREFIX) for k in
                    (custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, MD)["metadata"]
                     .get("annotations") or {})), deadline_s=5.0)
                assert annotated
                await kubelet_task
                woken_after_s = kubelet.started_s - first_sent
                results = await asyncio.gather(*burst, *trickle)
                sse = await call(MD, "/sse")
                # Ready: the operator takes the activator out of the entry's path.
                await eventually(lambda: not slice_exists(kube_client, entry_slice_name(MD)))
                refused = await asyncio.gather(*cold)
            # Idle for scaleToZeroAfter: parked, and routed to the activator again once it is gone.
            await eventually(lambda: kubelet.replicas() == 0, deadline_s=30.0)
            assert "scale-to-zero" in reasons(custom, MD)
            await asyncio.to_thread(kubelet.stop_engine)
            await eventually(lambda: slice_exists(kube_client, entry_slice_name(MD)))
        assert calls_outside_chart_rbac(kube_api, other_kind="serverlessfunctions") == []
        statuses = [status for status, *_ in results]
        assert statuses.count(200) == BURST + TRICKLE, "zero dropped requests"
        assert all(text.startswith("done /work?") for _, text, *_ in results)
        assert sse[0] == 200 and sse[1] == "data: 0\n\ndata: 1\n\ndata: 2\n\n", "SSE streams through"
        labels = {"namespace": NS, "service": MD}
        registry_ = activator.metrics.registry
        assert sample(registry_, "tidal_activator_rejected_total", reason="queue-full", **labels) == 0
        assert sample(registry_, "tidal_activator_rejected_total", reason="timeout", **labels) == 0
        ready_s = kubelet.ready_s
        held = [(sent, done) for _, _, sent, done, _ in results if sent < ready_s]
        assert len(held) >= BURST
        assert all(done >= ready_s for _, done in held), "nobody got through before the engine was up"
        extra = max(done - ready_s for _, done in held)
        after_pod = max(done - kubelet.reported_s for _, done in held)
        assert after_pod < 3.0, f"held requests finished {after_pod:.2f}s after the engine pod was Ready"
        # The demand handler decides at once (tests/operator/test_entry_routing.py checks when it
        # does); here the 1 s tick would too, so this bounds the reaction, loosely: the activator,
        # 750 client connections and the kubelet's polls share one event loop on a loaded machine.
        assert woken_after_s < 5.0, f"the operator scaled up {woken_after_s:.2f}s after the first request"
        # The workload that never gets a replica: 503 + Retry-After past the limit (at once) and past
        # the timeout (later), each counted; nothing else.
        cold_labels = {"namespace": NS, "service": COLD}
        assert [(s, r) for s, _, _, _, r in refused].count((503, "1")) == COLD_REQUESTS
        assert sample(registry_, "tidal_activator_rejected_total", reason="queue-full", **cold_labels) == 30
        assert sample(registry_, "tidal_activator_rejected_total", reason="timeout", **cold_labels) == QUEUE_LIMIT
        waits = sorted(done - sent for _, _, sent, done, _ in refused)
        assert waits[29] < HOLD_TIMEOUT_S / 2 and waits[30] >= HOLD_TIMEOUT_S - 0.5
        print(f"\nwoken after {woken_after_s:.3f}s; engine ready after {ready_s - first_sent:.3f}s; "
              f"held requests finished within {extra:.3f}s of the engine listening, {after_pod:.3f}s of its pod "
              f"reported Ready")
    finally:
        kubelet.stop()
        await under_test.close()


PD_MD = "pd"
PD_REQUESTS = 60
PREFILL_AFTER_S, DECODE_AFTER_S = 0.5, 2.0
"""After the engine stand-in listens: the prefill pod is Ready this much later, the decode pod later
still (the router is Ready first: it is always running)."""


class PdKubelet:
    """P/D: the router pod (the backend process stands in for it) is Ready from the start; once the
    operator scales both pools up, a prefill and then a decode pod become Ready (no processes: only
    the router is spoken to)."""

    def __init__(self, api: client.ApiClient, port: int) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        self.port = port
        self.backend = BackendProcess(port, 0.0)
        self.decode_ready_s = 0.0

    def replicas(self, pool: str) -> int:
        try:
            return self.apps.read_namespaced_deployment(f"{PD_MD}-{pool}-{ACC}", NS).spec.replicas or 0
        except client.ApiException as exc:
            if exc.status == 404:
                return -1
            raise

    def _pod(self, name: str, labels: dict[str, str], port: int) -> None:
        self.core.create_namespaced_pod(NS, {"metadata": {"name": name, "labels": labels}, "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": port}]}]}})
        self.core.patch_namespaced_pod_status(name, NS, {"status": {
            "phase": "Running", "podIP": "127.0.0.1",
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}]}})

    def _ready_deployment(self, name: str) -> None:
        self.apps.patch_namespaced_deployment_status(name, NS, {"status": {
            "replicas": 1, "readyReplicas": 1, "availableReplicas": 1}})

    async def start_router(self) -> None:
        from tidal.controllers.labels import ROUTER_LABEL

        await eventually(lambda: self.apps.list_namespaced_deployment(
            NS, field_selector=f"metadata.name={PD_MD}-router").items)
        await self.backend.start(DEADLINE_S)
        await asyncio.to_thread(self._pod, f"{PD_MD}-router-x1", {ROUTER_LABEL: PD_MD}, self.port)
        await asyncio.to_thread(self._ready_deployment, f"{PD_MD}-router")

    async def run_pools(self) -> None:
        await eventually(lambda: self.replicas("prefill") >= 1 and self.replicas("decode") >= 1)
        for pool, after_s in (("prefill", PREFILL_AFTER_S), ("decode", DECODE_AFTER_S - PREFILL_AFTER_S)):
            await asyncio.sleep(after_s)  # the modelled start of each pool's engine, not synchronisation
            if pool == "decode":
                self.decode_ready_s = time.monotonic()  # no decode pod before this instant
            await asyncio.to_thread(self._pod, f"{PD_MD}-{pool}-x1",
                                    {DEPLOYMENT_LABEL: PD_MD, POOL_LABEL: pool, ACCELERATOR_LABEL: ACC}, 8000)
            await asyncio.to_thread(self._ready_deployment, f"{PD_MD}-{pool}-{ACC}")

    def stop(self) -> None:
        self.backend.stop()


async def test_a_disaggregated_modeldeployment_is_held_until_router_prefill_and_decode_are_ready(
    kube_api: KubeApiServer, kube_client: client.ApiClient, clients: KubeClients,
) -> None:
    under_test = await activator_and_operator(kube_api, kube_client, clients)
    registry, activator, url = under_test.registry, under_test.activator, under_test.url
    core, custom = client.CoreV1Api(kube_client), client.CustomObjectsApi(kube_client)
    kubelet = PdKubelet(kube_client, free_port())
    pools = {"prefill": {"minReplicas": 0, "maxReplicas": 2}, "decode": {"minReplicas": 0, "maxReplicas": 2}}
    try:
        with run_operator(registry):
            custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, model_deployment(
                PD_MD, namespace=NS, classes=(ACC,), mode="disaggregated", pools=pools,
                autoscaling={"predictor": "none"}))
            await kubelet.start_router()
            # The router is Ready, but no pool has a replica: the entry is routed to the activator.
            await eventually(lambda: slice_exists(kube_client, entry_slice_name(PD_MD)))
            pools_task = asyncio.create_task(kubelet.run_pools())
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                             timeout=aiohttp.ClientTimeout(total=DEADLINE_S)) as http:
                async def call(i: int) -> tuple[int, str, float]:
                    async with http.get(url + f"/work?r={i}", headers={"Host": f"{PD_MD}.{NS}"}) as response:
                        return response.status, await response.text(), time.monotonic()

                results = await asyncio.gather(*(call(i) for i in range(PD_REQUESTS)))
                await pools_task
            # Router, prefill and decode Ready: the operator takes the activator out of the path.
            await eventually(lambda: not slice_exists(kube_client, entry_slice_name(PD_MD)))
        assert calls_outside_chart_rbac(kube_api, other_kind="serverlessfunctions") == []
        assert [status for status, _, _ in results].count(200) == PD_REQUESTS, "zero dropped requests"
        assert all(text.startswith("done /work?r=") for _, text, _ in results)
        first_done = min(done for _, _, done in results)
        assert first_done >= kubelet.decode_ready_s, "held until the decode pool was Ready too, not only prefill"
        assert max(done for _, _, done in results) - kubelet.decode_ready_s < 3.0
        labels = {"namespace": NS, "service": PD_MD}
        assert sample(activator.metrics.registry, "tidal_activator_rejected_total", reason="timeout", **labels) == 0
    finally:
        kubelet.stop()
        await under_test.close()
