"""The operator routes a ModelDeployment's entry Service through the activator while the entry cannot
serve, and back once it can: in P/D mode only when a router, a prefill and a decode replica are
Ready (docs/activator.md, "ModelDeployments"). The controller's tick runs directly on the test API
server, with the children and pods kopf's indexes would hold."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, accelerator_class, model_deployment
from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.validation import parse_resource
from tidal.activator.kube import KubeBackends, target_of
from tidal.activator.queueing import WorkloadRef
from tidal.controllers.labels import DEPLOYMENT_LABEL, POOL_LABEL, ROUTER_LABEL
from tidal.controllers.modeldeployment_entry import entry_slice_name
from tidal.controllers.modeldeployment_observe import ChildDeployment, ChildPod
from tidal.controllers.pd_router import render_entry_service
from tidal.operator import modeldeployment_controller as controller_module
from tidal.operator.kube import KubeClients
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.modeldeployment_controller import ModelDeploymentController
from tidal.operator.settings import OperatorSettings
from tidal.operator.workloads import StateStore, WorkloadCache

NAME, ACC = "chat", "gpu-a"
ACTIVATOR_NS, ACTIVATOR_SVC = "tidal-system", "tidal-activator"
PD = {"mode": "disaggregated", "pools": {"prefill": {"minReplicas": 0, "maxReplicas": 2},
                                         "decode": {"minReplicas": 0, "maxReplicas": 2}}}


def _activator(api: client.ApiClient) -> None:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ACTIVATOR_NS}})
    client.DiscoveryV1Api(api).create_namespaced_endpoint_slice(ACTIVATOR_NS, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{ACTIVATOR_SVC}-x", "labels": {"kubernetes.io/service-name": ACTIVATOR_SVC}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8012, "protocol": "TCP"}]})


def _cluster(ready: dict[str, int]) -> tuple[list[ChildDeployment], list[ChildPod]]:
    deployments = [ChildDeployment(f"{NAME}-{p}-{ACC}", OPERATOR_NS, NAME, p, ACC, n, n) for p, n in ready.items()]
    pods = [ChildPod(f"{p}-{i}", OPERATOR_NS, f"{NAME}-{p}-{i}", NAME, p, ACC, "node", scheduled=True, ready=True,
                     deleting=False) for p, n in ready.items() for i in range(n)]
    return deployments, pods


def _routed(api: client.ApiClient) -> bool:
    try:
        client.DiscoveryV1Api(api).read_namespaced_endpoint_slice(entry_slice_name(NAME), OPERATOR_NS)
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def test_pd_entry_goes_back_only_with_router_prefill_and_decode_ready(
        harness: OperatorHarness, monkeypatch: Any) -> None:
    h = harness
    _activator(h.api)
    monkeypatch.setattr(controller_module, "_event", lambda *args, **kwargs: None)
    body = h.create_md(model_deployment(NAME, classes=(ACC,), autoscaling={"predictor": "none"}, **PD))
    classes = {ACC: parse_resource(accelerator_class(ACC, 2.5))}
    assert isinstance(classes[ACC], AcceleratorClass)
    clients = KubeClients(h.api)
    settings = OperatorSettings(health_port=0, metrics_port=0, state_save_interval_s=0.0, log_format="plain",
                                activator_service=f"{ACTIVATOR_NS}/{ACTIVATOR_SVC}")
    operator = ModelDeploymentController(settings, clients, OperatorMetrics(),
                                         WorkloadCache(StateStore(clients, settings.field_manager)))

    def tick(ready: dict[str, int]) -> bool:
        deployments, pods = _cluster(ready)
        result = operator.tick(body, {}, None, classes, deployments, pods)
        assert result is not None and not result.problems, result
        return _routed(h.api)

    assert tick({"prefill": 0, "decode": 0}), "at zero: routed to the activator"
    routed = client.DiscoveryV1Api(h.api).read_namespaced_endpoint_slice(entry_slice_name(NAME), OPERATOR_NS)
    assert routed.metadata.labels["kubernetes.io/service-name"] == NAME
    assert [e.addresses for e in routed.endpoints] == [["10.0.0.9"]] and routed.ports[0].port == 8012
    assert tick({"prefill": 1, "decode": 0}), "a prefill replica alone cannot answer"
    assert tick({"prefill": 1, "decode": 1}), "no Ready router yet"
    router = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{NAME}-router"},
              "spec": {"replicas": 2, "selector": {"matchLabels": {ROUTER_LABEL: NAME}},
                       "template": {"metadata": {"labels": {ROUTER_LABEL: NAME}},
                                    "spec": {"containers": [{"name": "router", "image": "router"}]}}}}
    h.apps.create_namespaced_deployment(OPERATOR_NS, router)
    h.apps.patch_namespaced_deployment_status(f"{NAME}-router", OPERATOR_NS, {"status": {"readyReplicas": 1}})
    assert not tick({"prefill": 1, "decode": 1}), "router, prefill and decode Ready: back to the replicas"
    assert tick({"prefill": 1, "decode": 0}), "the decode pool went away: through the activator again"
    # No longer able to be at zero: the activator leaves the entry's path for good.
    body = h.patch_md(NAME, {"spec": {"pools": {"prefill": {"minReplicas": 1}, "decode": {"minReplicas": 1}}}})
    assert not tick({"prefill": 1, "decode": 0})


def test_the_activator_finds_the_pd_entry_endpoints_only_with_both_pools_ready(harness: OperatorHarness) -> None:
    h = harness
    md = parse_resource(model_deployment(NAME, classes=(ACC,), **PD))
    # The owner's uid must be one the server knows, or its garbage collector takes the Service at once.
    owner_uid = h.core.create_namespaced_config_map(OPERATOR_NS, {"metadata": {"name": "owner"}}).metadata.uid
    service = render_entry_service(md, lambda: {"apiVersion": "tidal.dev/v1alpha1", "kind": "ModelDeployment",  # type: ignore[arg-type]
                                                "name": NAME, "uid": owner_uid, "controller": True})
    service["metadata"]["namespace"] = OPERATOR_NS
    h.core.create_namespaced_service(OPERATOR_NS, service)
    backends = KubeBackends(h.api)
    ref = WorkloadRef(OPERATOR_NS, NAME)
    target = backends.target(ref)
    assert target.plural == "modeldeployments" and target.name == NAME
    assert target.endpoints_selector == f"{ROUTER_LABEL}={NAME}"

    def pod(name: str, labels: dict[str, str], ip: str) -> None:
        h.core.create_namespaced_pod(OPERATOR_NS, {"metadata": {"name": name, "labels": labels}, "spec": {
            "containers": [{"name": "c", "image": "i", "ports": [{"name": "http", "containerPort": 8000}]}]}})
        h.core.patch_namespaced_pod_status(name, OPERATOR_NS, {"status": {
            "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}})

    pod("router-a", {ROUTER_LABEL: NAME}, "10.1.0.1")
    assert backends._ready(ref) == (), "router Ready but no prefill or decode replica"
    pod("prefill-a", {DEPLOYMENT_LABEL: NAME, POOL_LABEL: "prefill"}, "10.1.0.2")
    assert backends._ready(ref) == ()
    pod("decode-a", {DEPLOYMENT_LABEL: NAME, POOL_LABEL: "decode"}, "10.1.0.3")
    assert backends._ready(ref) == ("http://10.1.0.1:8000",), "the router, once the whole path is Ready"
    # A function's Service and a pool Service are told apart from the entry by their labels.
    assert target_of(client.V1Service(metadata=client.V1ObjectMeta(labels={DEPLOYMENT_LABEL: NAME}))) is None


def test_the_demand_handler_decides_at_once_only_for_held_requests_at_an_empty_entry_pool(
        harness: OperatorHarness) -> None:
    from tidal.activator.demand import DemandReport, annotation_key

    h = harness
    clients = KubeClients(h.api)
    now = [1000.0]
    settings = OperatorSettings(health_port=0, metrics_port=0, state_save_interval_s=0.0, log_format="plain",
                                activator_service=f"{ACTIVATOR_NS}/{ACTIVATOR_SVC}")
    operator = ModelDeploymentController(settings, clients, OperatorMetrics(),
                                         WorkloadCache(StateStore(clients, settings.field_manager)),
                                         clock=lambda: now[0])
    body = model_deployment(NAME, classes=(ACC,), autoscaling={"predictor": "none"}, **PD)
    body["metadata"].update(uid="u-1")
    held = {annotation_key("activator-0"): DemandReport((999.5,), 1, 999.5).to_json()}
    at_zero, _ = _cluster({"prefill": 0, "decode": 0})
    assert not operator.wake_now(body, at_zero), "no demand reported"
    body["metadata"]["annotations"] = held
    assert operator.wake_now(body, at_zero)
    assert not operator.wake_now(body, _cluster({"prefill": 1, "decode": 0})[0]), "the entry pool has a replica"
    now[0] = 1100.0
    assert not operator.wake_now(body, at_zero), "old news: nothing held, nothing arrived in the window"
    now[0] = 1000.0
    unfronted = {**body, "spec": {**body["spec"], "pools": {"prefill": {"minReplicas": 1, "maxReplicas": 2},
                                                            "decode": {"minReplicas": 1, "maxReplicas": 2}}}}
    assert not operator.wake_now(unfronted, at_zero), "the activator does not front it"
