"""Fixtures for the operator tests: a fleet of fake engine pods scraped by one real Prometheus."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import (
    SGLANG_NEW,
    SGLANG_OLD,
    VLLM_V0,
    VLLM_V1,
    EngineExporter,
    EngineGauges,
    Exposition,
    ExporterFlavour,
    UniformLatency,
    WorkloadReplayer,
    steady_workload,
)

SCRAPE_INTERVAL_S = 0.5
"""Short so a few seconds of wall time hold enough samples; Prometheus accepts sub-second intervals."""
WINDOW_S = 5.0
"""rate() window for the tests: ten scrapes, and 100-200 requests per pool at the rates below."""
WORKLOAD_DURATION_S = 300.0
"""Longer than the test session, so the load is steady whenever a test queries."""
TTFT = UniformLatency(0.1, 0.5)
TPOT = UniformLatency(0.025, 0.075)
PROMPT_TOKENS_CYCLE = (100, 150, 200, 250, 300)
OUTPUT_TOKENS = 16
CUSTOM_DEPLOYMENT_LABEL = "model_deployment"
"""An extra target label on the SGLang pool, to check that label names are configurable."""


@dataclass(frozen=True)
class PodSpec:
    """One fake engine replica: identity, exporter flavour, load and gauges."""

    namespace: str
    deployment: str
    pool: str
    pod: str
    flavour: ExporterFlavour
    exposition: Exposition
    rate_rps: float
    gauges: EngineGauges

    def target_labels(self) -> dict[str, str]:
        labels = {
            "namespace": self.namespace,
            "pod": self.pod,
            "tidal_dev_deployment": self.deployment,
            "tidal_dev_pool": self.pool,
            "tidal_dev_accelerator": "test-gpu",
        }
        if self.flavour is SGLANG_NEW:
            labels[CUSTOM_DEPLOYMENT_LABEL] = self.deployment
        return labels


FLEET = (
    # vLLM 0.11 names, classic text exposition: Prometheus stores vllm:x. Two pods, one pool.
    PodSpec("team-a", "llama", "unified", "llama-0", VLLM_V1, "text", 30.0, EngineGauges(7, 2, 0.40)),
    PodSpec("team-a", "llama", "unified", "llama-1", VLLM_V1, "text", 10.0, EngineGauges(3, 0, 0.20)),
    # Old vLLM names (gpu_cache_usage_perc, time_per_output_token), OpenMetrics: stored as vllm_x.
    PodSpec("team-a", "llama-old", "unified", "llama-old-0", VLLM_V0, "openmetrics", 20.0,
            EngineGauges(5, 4, 0.55)),
    # SGLang names, text exposition.
    PodSpec("team-b", "qwen", "prefill", "qwen-0", SGLANG_NEW, "text", 20.0, EngineGauges(6, 1, 0.35)),
    # Older SGLang names, OpenMetrics: stored as sglang_x.
    PodSpec("team-b", "qwen-old", "decode", "qwen-old-0", SGLANG_OLD, "openmetrics", 20.0,
            EngineGauges(9, 3, 0.65)),
    # Exported but idle: counters exist at 0, histograms have no observations.
    PodSpec("team-a", "idle", "unified", "idle-0", VLLM_V1, "text", 0.0, EngineGauges(0, 0, 0.0)),
)


@dataclass
class Fleet:
    """The running fleet: Prometheus plus each pod's spec and exporter."""

    prometheus: PrometheusServer
    pods: tuple[PodSpec, ...]
    exporters: dict[str, EngineExporter]

    def pods_of(self, deployment: str) -> list[PodSpec]:
        return [p for p in self.pods if p.deployment == deployment]


@pytest.fixture(scope="session")
def engine_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """Six engine exporters under load and one real Prometheus scraping them, shared by all tests.

    Ready once Prometheus has a full ``WINDOW_S`` of samples from every pod in steady state.
    """
    binary = require_prometheus_binary()
    exporters: dict[str, EngineExporter] = {}
    replayers: list[WorkloadReplayer] = []
    prometheus: PrometheusServer | None = None
    try:
        for index, spec in enumerate(FLEET):
            exporter = EngineExporter(spec.flavour, exposition=spec.exposition).start()
            exporter.set_gauges(spec.gauges)
            exporters[spec.pod] = exporter
            if spec.rate_rps > 0:
                records = steady_workload(
                    rate_rps=spec.rate_rps, duration_s=WORKLOAD_DURATION_S, ttft=TTFT, tpot=TPOT,
                    prompt_tokens_cycle=PROMPT_TOKENS_CYCLE, output_tokens=OUTPUT_TOKENS, phase=index / 7,
                )
                replayers.append(WorkloadReplayer(exporter, records).start())
        targets = [ScrapeTarget(exporters[p.pod].address, p.target_labels()) for p in FLEET]
        prometheus = PrometheusServer(
            targets, tmp_path_factory.mktemp("prometheus"), binary=binary, scrape_interval_s=SCRAPE_INTERVAL_S
        ).start(wait_for_targets=True)
        # Every target has been scraped at least once; wait for a full window of samples after that.
        time.sleep(WINDOW_S + 2 * SCRAPE_INTERVAL_S)
        yield Fleet(prometheus=prometheus, pods=FLEET, exporters=exporters)
    finally:
        for replayer in replayers:
            replayer.stop()
        if prometheus is not None:
            prometheus.stop()
        for exporter in exporters.values():
            exporter.stop()


# --- the tidal operator against the test API server (tests/operator/test_operator_*.py) --------

import pathlib  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
OPERATOR_NS = "team-a"
OPERATOR_START_TIMEOUT_S = 20.0
REACTION_TIMEOUT_S = 30.0
"""How long the operator may take to react; on an idle machine it reacts within about a second. With
the CPUs oversubscribed five times over (make test-repeat while other jobs ran) a reaction that
chains two handlers took over 15 s; a deadline only bounds how long a broken operator takes to fail."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(check: Callable[[], Any], timeout_s: float = REACTION_TIMEOUT_S, interval_s: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy without raising; fail with its last error."""
    from kubernetes.client.rest import ApiException

    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = None
        except (AssertionError, ApiException, KeyError, IndexError, TypeError, OSError) as exc:
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s; last error: {last!r}")


def tidal_crd_documents() -> list[dict[str, Any]]:
    return [d for p in sorted((REPO_ROOT / "crds").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]


def accelerator_class(name: str, cost: float, tflops: float = 300.0) -> dict[str, Any]:
    return {"apiVersion": "tidal.dev/v1alpha1", "kind": "AcceleratorClass", "metadata": {"name": name},
            "spec": {"nodeSelector": {"nvidia.com/gpu.product": name.upper()}, "memory": "80Gi",
                     "peakTflops": tflops, "memoryBandwidthGbps": 2000, "hourlyCost": cost}}


def model_deployment(name: str, *, classes: tuple[str, ...] = ("gpu-a",), min_replicas: int = 1,
                     max_replicas: int = 6, namespace: str = OPERATOR_NS, **spec_extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
        "engine": {"image": "vllm/vllm-openai:v0.11.0"},
        "slo": {"ttft": "500ms", "tpot": "50ms"},
        "mode": "unified",
        "pools": {"unified": {"minReplicas": min_replicas, "maxReplicas": max_replicas}},
        "placement": {"acceleratorClasses": list(classes)},
        "autoscaling": {"predictor": "holt-winters"},
    }
    spec.update(spec_extra)
    return {"apiVersion": "tidal.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


@dataclass
class OperatorHarness:
    """A test API server with tidal's CRDs, a namespace and two AcceleratorClasses, plus helpers to
    run the real operator (``tidal.operator.app.run_operator``) in a thread."""

    kube_api: Any
    kubeconfig: pathlib.Path
    api: Any
    controllers: list[Any]

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    @property
    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def create_md(self, body: dict[str, Any]) -> dict[str, Any]:
        ns = body["metadata"]["namespace"]
        return self.custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", ns, "modeldeployments", body)

    def read_md(self, name: str, namespace: str = OPERATOR_NS) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object("tidal.dev", "v1alpha1", namespace, "modeldeployments", name)

    def patch_md(self, name: str, patch: dict[str, Any], namespace: str = OPERATOR_NS) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object("tidal.dev", "v1alpha1", namespace, "modeldeployments",
                                                          name, patch)

    def condition(self, name: str, kind: str, namespace: str = OPERATOR_NS) -> dict[str, Any] | None:
        for cond in (self.read_md(name, namespace).get("status") or {}).get("conditions") or []:
            if cond["type"] == kind:
                return cond
        return None

    def events(self, name: str, namespace: str = OPERATOR_NS) -> list[Any]:
        return self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items

    def ready_pod(self, name: str, labels: dict[str, str], namespace: str = OPERATOR_NS) -> None:
        """Play the scheduler and kubelet: a scheduled, Running, Ready engine pod with ``labels``."""
        self.core.create_namespaced_pod(namespace, {
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "engine", "image": "vllm/vllm-openai:v0.33.0"}], "nodeName": "node-a"}})
        self.core.patch_namespaced_pod_status(name, namespace, {"status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"}]}})

    def set_ready(self, deployment: str, ready: int, namespace: str = OPERATOR_NS) -> None:
        """Play the Deployment controller: report ``ready`` ready replicas."""
        self.apps.patch_namespaced_deployment_status(
            deployment, namespace, {"status": {"replicas": ready, "readyReplicas": ready, "availableReplicas": ready}})

    @contextmanager
    def operator(self, include_others: bool = False, **overrides: Any) -> Iterator[Any]:
        """Run the operator until the block ends; yields the ModelDeploymentController.
        ``include_others``: also register the other resources' handlers (the full ``tidal run``)."""
        from tidal.operator.app import run_operator
        from tidal.operator.settings import OperatorSettings

        values: dict[str, Any] = {"interval_s": 1.0, "metrics_window_s": 5.0, "health_port": 0,
                                  "metrics_port": 0, "retry_backoff_s": 0.5, "state_save_interval_s": 0.0,
                                  "log_format": "plain"}
        values.update(overrides)
        settings = OperatorSettings(**values)
        stop, ready = threading.Event(), threading.Event()
        seen: list[Any] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run_operator(settings, kubeconfig=self.kubeconfig, stop_flag=stop, ready_flag=ready,
                             on_controller=seen.append, include_others=include_others)
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)

        thread = threading.Thread(target=target, name="tidal-operator", daemon=True)
        thread.start()
        try:
            assert ready.wait(OPERATOR_START_TIMEOUT_S) or errors, "operator did not start"
            if errors:
                raise errors[0]
            self.controllers.append(seen[0])
            yield seen[0]
        finally:
            stop.set()
            thread.join(OPERATOR_START_TIMEOUT_S)
            assert not thread.is_alive(), "operator did not stop"
        assert not errors, errors


@pytest.fixture
def harness(kube_api: Any, kubeconfig: pathlib.Path, kube_client: Any) -> OperatorHarness:
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(kube_client)
    for crd in tidal_crd_documents():
        extensions.create_custom_resource_definition(crd)
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": OPERATOR_NS}})
    custom = client.CustomObjectsApi(kube_client)
    # gpu-b: 3x the FLOP/s at 3.2x the price, so gpu-a is the cheaper per goodput (placement ranks by it)
    for acc in (accelerator_class("gpu-a", 2.5), accelerator_class("gpu-b", 8.0, tflops=900.0)):
        custom.create_cluster_custom_object("tidal.dev", "v1alpha1", "acceleratorclasses", acc)
    return OperatorHarness(kube_api, kubeconfig, kube_client, [])
