"""ServerlessFunction handlers under real kopf against the test API server (tests/kubeapi)."""

from __future__ import annotations

import json
import pathlib
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.kubeapi import KubeApiServer
from tests.kubeapi.test_kubeapi_kopf import eventually
from tests.operator.test_handlers_accelerators import (  # noqa: F401 - fixtures
    GROUP,
    REPO_ROOT,
    TICK_S,
    VERSION,
    calls_outside_rbac,
    clients,
    operator_registry,
    run_operator,
)
from tidal.operator import handlers_serverless
from tidal.operator.handlers_serverless import FunctionMetrics
from tidal.operator.kube import KubeClients
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.settings import OperatorSettings

NS = "default"
PLURAL = "serverlessfunctions"


def install_crds(api: client.ApiClient, *, open_function_spec: bool = False) -> None:
    """tidal's CRDs; ``open_function_spec`` stands in for an outdated CRD whose schema lets an invalid
    ServerlessFunction spec through to the operator."""
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            if open_function_spec and crd["spec"]["names"]["plural"] == PLURAL:
                for version in crd["spec"]["versions"]:
                    props = version["schema"]["openAPIV3Schema"]["properties"]
                    props["spec"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    version["schema"]["openAPIV3Schema"].pop("x-kubernetes-validations", None)
            extensions.create_custom_resource_definition(crd)


class Load:
    """What the fake function reports this tick (the test changes it while the operator runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.metrics = FunctionMetrics(True, "test", 0.0, 0.0)
        self.calls: list[tuple[str, str, int]] = []

    def set(self, metrics: FunctionMetrics) -> None:
        with self._lock:
            self.metrics = metrics

    def __call__(self, namespace: str, name: str, instances: int, ready: int) -> FunctionMetrics:
        with self._lock:
            self.calls.append((namespace, name, instances))
            return self.metrics


def function(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServerlessFunction",
        "metadata": {"name": name},
        "spec": {
            "container": {"image": "ghcr.io/example/fn:1", "port": 8080},
            "slo": {"latency": "2s"},
            "memory": "256Mi",
            "concurrencyTarget": 100,
            "maxInstances": 10,
            **spec,
        },
    }


def sfn(api: client.ApiClient, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, name
    )


def events_for(api: client.ApiClient, name: str) -> list[client.CoreV1Event]:
    return (
        client.CoreV1Api(api)
        .list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
        .items
    )


def test_function_gets_deployment_and_service_and_scales_on_load(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
) -> None:
    install_crds(kube_client)
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    load = Load()
    settings = OperatorSettings(interval_s=TICK_S)
    operator_metrics = OperatorMetrics()
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=load,
        operator_metrics=operator_metrics,
    )
    with run_operator(registry) as runner:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, function("hello", keepAlive="10m")
        )
        deployment = eventually(lambda: apps.read_namespaced_deployment("hello", NS))
        uid = sfn(kube_client, "hello")["metadata"]["uid"]
        assert deployment.spec.replicas == 1  # initial scale
        assert deployment.metadata.owner_references[0].uid == uid
        assert deployment.spec.template.metadata.labels["tidal.dev/function"] == "hello"
        container = deployment.spec.template.spec.containers[0]
        assert container.resources.limits == {"memory": "256Mi"}
        # The Service is applied after the Deployment: poll for it too (read once, it raced).
        service = eventually(lambda: core.read_namespaced_service("hello", NS))
        assert service.spec.selector == {"tidal.dev/function": "hello"}
        eventually(
            lambda: sfn(kube_client, "hello").get("status", {}).get("observedGeneration") == 1
        )

        # 250 in flight at a target of 100 per instance: 3 instances, with a Scaled event.
        load.set(FunctionMetrics(True, "test", 5.0, 250.0))
        eventually(lambda: apps.read_namespaced_deployment("hello", NS).spec.replicas == 3)
        status = eventually(
            lambda: (
                sfn(kube_client, "hello")["status"].get("desiredInstances") == 3
                and sfn(kube_client, "hello")["status"]
            )
        )
        assert status["keepAliveSeconds"] == 600
        assert status["coldStarts"] >= 2
        scaled = eventually(
            lambda: [e for e in events_for(kube_client, "hello") if e.reason == "Scaled"]
        )
        assert "1 -> 3" in scaled[0].message
        # The operator's own /metrics: the contract's series for pool "function".
        series = {"namespace": NS, "name": "hello", "pool": "function"}
        exported = operator_metrics.registry
        assert exported.get_sample_value("tidal_desired_replicas", series) == 3
        assert exported.get_sample_value("tidal_cold_starts_total", series) == 2
        assert exported.get_sample_value("tidal_observed_requests_per_second", series) == 5.0

        # Metrics lost: hold 3 (never scale down on missing data) and say so.
        load.set(FunctionMetrics(False, "Prometheus down"))

        def metrics_unavailable() -> bool:
            conditions = {c["type"]: c for c in sfn(kube_client, "hello")["status"]["conditions"]}
            return conditions["MetricsAvailable"]["status"] == "False"

        eventually(metrics_unavailable)
        calls_before = len(load.calls)
        eventually(lambda: len(load.calls) >= calls_before + 2)
        assert apps.read_namespaced_deployment("hello", NS).spec.replicas == 3

        # A spec change rolls out and keeps the decided instance count within the new bounds.
        client.CustomObjectsApi(kube_client).patch_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "hello", {"spec": {"maxInstances": 2, "memory": "1Gi"}}
        )

        def updated() -> bool:
            d = apps.read_namespaced_deployment("hello", NS)
            return (
                d.spec.replicas == 2
                and d.spec.template.spec.containers[0].resources.limits["memory"] == "1Gi"
            )

        eventually(updated)

        # Deleting the function removes its children (owner references); no finalizer holds it.
        client.CustomObjectsApi(kube_client).delete_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, "hello"
        )

        def cleaned_up() -> bool:
            left = {
                "deployments": [d.metadata.name for d in apps.list_namespaced_deployment(NS).items],
                "services": [x.metadata.name for x in core.list_namespaced_service(NS).items],
                "configmaps": [c.metadata.name for c in core.list_namespaced_config_map(
                    NS, label_selector="tidal.dev/function=hello").items],
                "functions": [(f["metadata"]["name"], f["metadata"].get("finalizers"))
                              for f in client.CustomObjectsApi(kube_client).list_namespaced_custom_object(
                                  GROUP, VERSION, NS, PLURAL)["items"]],
            }
            assert not any(left.values()), f"still there: {left}"  # eventually fails with the last
            return True

        eventually(cleaned_up)
    assert runner.exit_code == 0, runner.output[-3000:]
    assert "Traceback" not in runner.output, runner.output[-3000:]
    assert calls_outside_rbac(kube_api) == []


def test_invalid_function_gets_condition_and_warning_without_retries(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
) -> None:
    install_crds(kube_client, open_function_spec=True)
    settings = OperatorSettings(interval_s=TICK_S)
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=Load()
    )
    with run_operator(registry) as runner:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            PLURAL,
            function("broken", minInstances=5, maxInstances=2, concurrencyTarget=0),
        )

        def reported() -> dict[str, Any]:
            conditions = sfn(kube_client, "broken").get("status", {}).get("conditions", [])
            ready = next((c for c in conditions if c["type"] == "Ready"), {})
            assert ready.get("reason") == "InvalidSpec"
            return ready

        ready = eventually(reported)
        assert (
            ready["message"] == "spec.concurrencyTarget: Input should be greater than or equal to 1"
        )
        warnings = eventually(
            lambda: [e for e in events_for(kube_client, "broken") if e.reason == "InvalidSpec"]
        )
        assert warnings[0].type == "Warning"
        # Several ticks later: still one warning (no retry loop) and no children.
        time.sleep(3 * TICK_S)
        assert len([e for e in events_for(kube_client, "broken") if e.reason == "InvalidSpec"]) == 1
        with pytest.raises(client.ApiException):
            client.AppsV1Api(kube_client).read_namespaced_deployment("broken", NS)
    assert runner.exit_code == 0
    assert "will retry" not in runner.output.lower()
    assert calls_outside_rbac(kube_api) == []


def test_failed_child_apply_sets_degraded_warns_once_and_retries_with_backoff(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
) -> None:
    """A 422 on the Deployment apply (an admission policy, a quota): Degraded=True naming the
    child and the server's message, one Warning Event, and kopf retries soon (backoff from
    ``retry_backoff_s``, not kopf's 60 s default) until the apply is accepted."""
    install_crds(kube_client)
    settings = OperatorSettings(interval_s=TICK_S, retry_backoff_s=0.5)
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=Load()
    )
    kube_api.faults.inject(
        verb="patch", resource="deployments", status=422, times=2, message="denied by policy"
    )
    with run_operator(registry) as runner:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, function("refused")
        )

        def degraded() -> dict[str, Any]:
            conditions = sfn(kube_client, "refused").get("status", {}).get("conditions", [])
            cond = next((c for c in conditions if c["type"] == "Degraded"), {})
            assert cond.get("status") == "True" and cond.get("reason") == "ApplyFailed", cond
            return cond

        cond = eventually(degraded)
        assert "apply Deployment refused: 422" in cond["message"], cond
        assert "denied by policy" in cond["message"], cond
        # Retried without touching the object: the Deployment lands and Degraded clears.
        eventually(lambda: [d for d in client.AppsV1Api(kube_client).list_namespaced_deployment(NS).items
                            if d.metadata.name == "refused"])
        eventually(
            lambda: next((c for c in sfn(kube_client, "refused")["status"]["conditions"]
                          if c["type"] == "Degraded"), {}).get("status") == "False"
        )
        warnings = [e for e in events_for(kube_client, "refused") if e.reason == "ApplyFailed"]
        assert len(warnings) == 1 and warnings[0].type == "Warning", warnings
    assert kube_api.faults.pending() == 0
    assert runner.exit_code == 0


def test_a_stalled_api_read_costs_one_request_timeout_not_the_timer(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
) -> None:
    """Every API call of the ServerlessFunction handlers carries the request timeout: a GET that
    the server never answers (here: 60 s) fails after ``request_timeout_s`` and the next tick
    scales as usual."""
    install_crds(kube_client)
    clients.request_timeout_s = 1.0
    load = Load()
    settings = OperatorSettings(interval_s=TICK_S)
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=load
    )
    apps = client.AppsV1Api(kube_client)

    def replicas() -> int | None:  # list, not get: the test's own reads must not hit the fault
        found = [d for d in apps.list_namespaced_deployment(NS).items if d.metadata.name == "slow"]
        return found[0].spec.replicas if found else None

    with run_operator(registry):
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, function("slow")
        )
        eventually(lambda: replicas() == 1)
        kube_api.faults.inject(verb="get", resource="deployments", delay_s=60.0, times=1)
        load.set(FunctionMetrics(True, "test", 5.0, 250.0))
        eventually(lambda: replicas() == 3)
        assert kube_api.faults.pending() == 0, "the stalled read was not attempted"


# --- PrometheusFunctionMetrics against a real Prometheus ------------------------------------------

SCRAPE_INTERVAL_S = 0.5
WINDOW_S = 4.0
"""rate() window: eight scrapes at 0.5 s."""


class _CounterExporter:
    """A tiny /metrics endpoint: a request counter growing at ``rps`` and a fixed in-flight gauge."""

    def __init__(self, rps: float, in_flight: float):
        import http.server

        started = time.monotonic()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                count = int(rps * (time.monotonic() - started))
                body = (
                    f'# TYPE http_requests_total counter\nhttp_requests_total{{code="200"}} {count}\n'
                    f"# TYPE http_requests_in_flight gauge\nhttp_requests_in_flight {in_flight}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.prometheus
def test_prometheus_function_metrics_read_rate_and_in_flight(tmp_path: pathlib.Path) -> None:
    from tests.support.prometheus_server import (
        PrometheusServer,
        ScrapeTarget,
        require_prometheus_binary,
    )
    from tidal.operator.handlers_serverless import PrometheusFunctionMetrics

    binary = require_prometheus_binary()
    pods = {
        "hello-7d9f8c-abcde": (10.0, 3.0),
        "hello-7d9f8c-fghij": (5.0, 4.0),
        "hello-world-5c6d7-klmno": (100.0, 50.0),
        "api.v1-7d9f8c-abcde": (2.0, 1.0),
        "api-v1-7d9f8c-abcde": (200.0, 80.0),
    }  # another function's pods must not be counted ("api.v1": the dot is not a wildcard)
    exporters = {pod: _CounterExporter(rps, in_flight) for pod, (rps, in_flight) in pods.items()}
    targets = [
        ScrapeTarget(e.address, {"namespace": NS, "pod": pod}) for pod, e in exporters.items()
    ]
    try:
        with PrometheusServer(
            targets, tmp_path, binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S
        ) as prometheus:
            source = PrometheusFunctionMetrics(prometheus.url, WINDOW_S)

            def read() -> FunctionMetrics:
                metrics = source(NS, "hello", 2, 2)
                assert metrics.available and metrics.request_rate_rps is not None
                assert abs(metrics.request_rate_rps - 15.0) < 15.0 * 0.2, metrics
                return metrics

            metrics = eventually(read, timeout_s=30)
            assert metrics.running_requests == 7.0
            dotted = eventually(lambda: source(NS, "api.v1", 1, 1).running_requests == 1.0, timeout_s=30)
            assert dotted
            # No series: unknown while instances exist, idle when there are none.
            assert not source(NS, "absent", 1, 1).available
            idle = source(NS, "absent", 0, 0)
            assert idle.available and idle.request_rate_rps == 0.0
        # Prometheus gone: unknown, with the reason.
        down = source(NS, "hello", 2, 2)
        assert not down.available and "Prometheus query failed" in down.message
    finally:
        for exporter in exporters.values():
            exporter.close()


def _histogram_total(api: client.ApiClient, name: str) -> int:
    data = client.CoreV1Api(api).read_namespaced_config_map(f"{name}-keepalive", NS).data
    state = json.loads(data["state.json"])
    return sum(state["counts"].values()) + state["outOfRange"]


def _wait_ticks(load: Load, ticks: int) -> None:
    start = len(load.calls)
    eventually(lambda: len(load.calls) >= start + ticks)


def test_learned_idle_times_survive_an_operator_restart(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
) -> None:
    install_crds(kube_client)
    settings = OperatorSettings(interval_s=TICK_S)
    busy, idle = FunctionMetrics(True, "test", 1.0, 1.0), FunctionMetrics(True, "test", 0.0, 0.0)

    def invocation_cycle(load: Load) -> None:
        # One tick each suffices: a read recorded after set() sees the new metrics.
        load.set(idle)
        _wait_ticks(load, 1)
        load.set(busy)
        _wait_ticks(load, 1)

    load = Load()
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=load
    )
    with run_operator(registry):
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, function("periodic")
        )
        load.set(busy)
        _wait_ticks(load, 1)
        invocation_cycle(load)
        invocation_cycle(load)
        eventually(lambda: _histogram_total(kube_client, "periodic") == 2)
    owner = (
        client.CoreV1Api(kube_client)
        .read_namespaced_config_map("periodic-keepalive", NS)
        .metadata.owner_references
    )
    assert owner[0].kind == "ServerlessFunction" and owner[0].name == "periodic"

    load = Load()
    load.set(busy)
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=load
    )
    with run_operator(registry) as runner:
        _wait_ticks(load, 1)
        invocation_cycle(load)
        # Restored: the new idle time adds to the two learned before the restart.
        eventually(lambda: _histogram_total(kube_client, "periodic") == 3)
    assert runner.exit_code == 0


def _learnt_starts(api: client.ApiClient, name: str) -> list[float]:
    data = client.CoreV1Api(api).read_namespaced_config_map(f"{name}-keepalive", NS).data
    return json.loads(data["state.json"]).get("coldStarts", {}).get("samplesS", [])


def _started_pod(api: client.ApiClient, function_name: str, pod: str, ready_after_s: int) -> None:
    """Play the scheduler and kubelet: a pod of the function scheduled 1 s after its creation, its
    container running after 2 s, Ready after ``ready_after_s``."""
    core = client.CoreV1Api(api)
    created = core.create_namespaced_pod(NS, {
        "metadata": {"name": pod, "labels": {"tidal.dev/function": function_name}},
        "spec": {"containers": [{"name": "function", "image": "ghcr.io/example/fn:1"}],
                 "nodeName": "node-a"}})
    t0 = created.metadata.creation_timestamp

    def at(seconds: int) -> str:
        return (t0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    core.patch_namespaced_pod_status(pod, NS, {"status": {
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": at(1)},
                       {"type": "Ready", "status": "True", "lastTransitionTime": at(ready_after_s)}],
        "containerStatuses": [{"name": "function", "ready": True, "restartCount": 0,
                               "image": "ghcr.io/example/fn:1", "imageID": "",
                               "state": {"running": {"startedAt": at(2)}}}]}})


def test_cold_starts_are_learnt_from_pods_and_survive_an_operator_restart(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
) -> None:
    """The operator learns each instance's start (creation -> Ready) from its pod once, persists
    the starts with the keep-alive state, and does not count a pod again after a restart."""
    install_crds(kube_client)
    apps = client.AppsV1Api(kube_client)
    settings = OperatorSettings(interval_s=TICK_S)

    def ready(n: int) -> None:  # play the Deployment controller
        apps.patch_namespaced_deployment_status(
            "starter", NS, {"status": {"replicas": n, "readyReplicas": n, "availableReplicas": n}})

    load = Load()
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=load
    )
    with run_operator(registry):
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, function("starter", slo={"latency": "1s"})
        )
        eventually(lambda: apps.read_namespaced_deployment("starter", NS))
        _wait_ticks(load, 1)
        _started_pod(kube_client, "starter", "starter-a", 4)
        ready(1)
        assert eventually(lambda: _learnt_starts(kube_client, "starter") == [4.0])
    _started_pod(kube_client, "starter", "starter-b", 6)
    ready(2)

    load = Load()
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=load
    )
    with run_operator(registry) as runner:
        # Restored: pod a's start is not counted twice, pod b's is added.
        assert eventually(lambda: _learnt_starts(kube_client, "starter") == [4.0, 6.0])
        _wait_ticks(load, 2)
        assert _learnt_starts(kube_client, "starter") == [4.0, 6.0]
    assert runner.exit_code == 0
    state = json.loads(client.CoreV1Api(kube_client).read_namespaced_config_map(
        "starter-keepalive", NS).data["state.json"])
    assert len(state["coldStarts"]["counted"]) == 2


PARITY_STEP_S = 300.0
PARITY_TICKS = 28


def test_operator_tick_and_simulator_shell_decide_alike_on_one_recorded_sequence(
    kube_api: KubeApiServer,
    kube_client: client.ApiClient,
    clients: KubeClients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What you simulate is what you run, for functions: a recorded sequence (an invocation every
    20 minutes, each waking a new instance whose pod was Ready 3-5 s after its creation) drives the
    operator's real tick against the test API server (metrics, Deployment status and pods played by
    the test, the tick's clock at the sample time) and the simulator's autoscaler
    (LearningKeepAlive) on the observations the sequence implies. Both must learn the same cold
    start (beyond spec.slo's 1 s, so the SLO floor is in force) and decide identically."""
    from tidal.api.serverlessfunction import ServerlessFunctionSpec
    from tidal.api.types import parse_duration_s
    from tidal.controllers.serverlessfunction import initial_instances, policy_for
    from tidal.core.serverlessfunction import LearningKeepAlive, start_seconds
    from tidal.policies.interface import POOL_FUNCTION, Observation, PoolObservation

    install_crds(kube_client)
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    t0 = 1_800_000_000.0
    burst = [i % 4 == 0 for i in range(PARITY_TICKS + 1)]
    start_s = {i: 3 + (i // 4) % 3 for i in range(4, PARITY_TICKS, 4)}
    tick = {"i": -1}
    uids: dict[int, str] = {}
    recorded: list[tuple[Observation, Any]] = []

    def metrics(namespace: str, name: str, instances: int, ready: int) -> FunctionMetrics:
        """Tick i's invocations; plays the cluster: tick i's new pod now (the tick lists pods
        after this call), tick i+1's ready count (read before its call)."""
        tick["i"] += 1
        i = tick["i"]
        if i in start_s:
            _started_pod(kube_client, name, f"{name}-{i}", start_s[i])
            uids[i] = core.read_namespaced_pod(f"{name}-{i}", NS).metadata.uid
        if i < PARITY_TICKS:
            n = int(burst[i + 1])
            apps.patch_namespaced_deployment_status(
                name, NS, {"status": {"replicas": n, "readyReplicas": n, "availableReplicas": n}})
        active = i < PARITY_TICKS and burst[i]
        return FunctionMetrics(True, "recorded", float(active), float(active))

    real_decide = handlers_serverless.decide_function

    def recording_decide(policy_of: Any, observation: Observation, state: Any) -> Any:
        decision, new_state = real_decide(policy_of, observation, state)
        recorded.append((observation, decision))
        return decision, new_state

    monkeypatch.setattr(handlers_serverless, "decide_function", recording_decide)
    settings = OperatorSettings(interval_s=TICK_S)
    registry = operator_registry(
        kube_api, handlers_serverless.register, settings, clients, function_metrics=metrics,
        wall_clock_s=lambda: t0 + max(tick["i"], 0) * PARITY_STEP_S,
    )
    body = function("parity", slo={"latency": "1s"}, concurrencyTarget=1)
    with run_operator(registry) as runner:
        client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL, body
        )
        eventually(lambda: len(recorded) >= PARITY_TICKS, timeout_s=PARITY_TICKS * TICK_S * 4)
    assert runner.exit_code == 0

    spec = ServerlessFunctionSpec.model_validate(body["spec"])
    simulator = LearningKeepAlive(
        policy_for(spec, activity_window_s=0.0),
        slo_latency_s=parse_duration_s(spec.slo.latency), slo_percentile=spec.slo.percentile,
    )
    state: Any = None
    current = initial_instances(spec)
    desired_seen = set()
    for i, (observed, decision) in enumerate(recorded[:PARITY_TICKS]):
        ready = int(burst[i]) if i else 0  # the Deployment reports nothing ready at first
        pool = PoolObservation(ready_replicas=min(ready, current),
                               starting_replicas=max(0, current - ready),
                               request_rate_rps=float(burst[i]), running_requests=float(burst[i]))
        # The operator lists every pod; the simulator reports the instances that became ready.
        new = tuple(s for s in observed.starts if s.uid == uids.get(i))
        assert [start_seconds(s) for s in new] == ([float(start_s[i])] if i in start_s else [])
        assert {s.uid for s in observed.starts} <= set(uids.values())
        expected = Observation(t0 + i * PARITY_STEP_S, {POOL_FUNCTION: pool}, starts=new)
        assert observed.now_s == expected.now_s and observed.pools == expected.pools, f"tick {i}"
        sim_decision, state = simulator.decide(expected, state)
        assert sim_decision == decision, f"tick {i}"
        current = decision.desired_replicas[POOL_FUNCTION]
        desired_seen.add(current)
    assert desired_seen == {0, 1}  # scaled to zero between invocations and back
    assert state.starts.samples_s == tuple(float(start_s[i]) for i in sorted(start_s))
    assert state.policy is not None and state.policy.slo_tail_percentile == 99.0
