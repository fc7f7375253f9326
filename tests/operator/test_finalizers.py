"""No finalizer on tidal's workloads: deleting one completes with the operator stopped, and the
operator stops the deleted object's timer itself (tidal/operator/finalizers.py)."""

from __future__ import annotations

import time
from typing import Any

import kopf
import pytest
from kubernetes.client.rest import ApiException

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment
from tidal.operator import handlers_modeldeployment, handlers_serverless
from tidal.operator.app import FINALIZER
from tidal.operator.finalizers import timers_need_no_finalizer
from tidal.operator.kube import KubeClients
from tidal.operator.settings import OperatorSettings

SF_PLURAL = "serverlessfunctions"


def function(name: str) -> dict[str, Any]:
    return {"apiVersion": "tidal.dev/v1alpha1", "kind": "ServerlessFunction",
            "metadata": {"name": name, "namespace": OPERATOR_NS},
            "spec": {"container": {"image": "ghcr.io/example/fn:1", "port": 8080}, "slo": {"latency": "2s"},
                     "memory": "256Mi", "concurrencyTarget": 100, "maxInstances": 4}}


def _read_sf(h: OperatorHarness, name: str) -> dict[str, Any]:
    return h.custom.get_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, SF_PLURAL, name)


def _gone(read: Any) -> bool:
    try:
        read()
    except ApiException as exc:
        return exc.status == 404
    return False


def test_workloads_carry_no_finalizer_and_delete_with_the_operator_stopped(harness: OperatorHarness) -> None:
    h = harness
    h.custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, SF_PLURAL, function("fn"))
    h.create_md(model_deployment("llama"))
    with h.operator(include_others=True):
        # Served: children applied and a tick's status written (the timers ran on both objects).
        eventually(lambda: h.apps.read_namespaced_deployment("llama-unified-gpu-a", OPERATOR_NS))
        eventually(lambda: h.apps.read_namespaced_deployment("fn", OPERATOR_NS))
        eventually(lambda: (h.condition("llama", "MetricsAvailable") or {}).get("reason") == "NoPrometheus")
        eventually(lambda: any(c["type"] == "MetricsAvailable"
                               for c in (_read_sf(h, "fn").get("status") or {}).get("conditions", [])))
        assert not h.read_md("llama")["metadata"].get("finalizers")
        assert not _read_sf(h, "fn")["metadata"].get("finalizers")
    # The operator is gone (uninstalled, crash-looping): deleting still completes, children follow.
    h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments", "llama")
    h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, SF_PLURAL, "fn")
    eventually(lambda: _gone(lambda: h.read_md("llama")))
    eventually(lambda: _gone(lambda: _read_sf(h, "fn")))
    eventually(lambda: not h.apps.list_namespaced_deployment(OPERATOR_NS).items)


def test_an_older_operators_finalizer_is_removed(harness: OperatorHarness) -> None:
    """Objects created under a tidal that added ``tidal.dev/kopf-finalizer`` lose it on upgrade."""
    h = harness
    body = model_deployment("old")
    body["metadata"]["finalizers"] = [FINALIZER]
    h.create_md(body)
    with h.operator():
        eventually(lambda: not h.read_md("old")["metadata"].get("finalizers"))
    h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments", "old")
    eventually(lambda: _gone(lambda: h.read_md("old")))


def test_a_deleted_functions_timer_stops(harness: OperatorHarness) -> None:
    h = harness

    def deployment_reads() -> int:
        return sum(1 for r in h.kube_api.audit.records()
                   if r.verb == "get" and r.resource == "deployments" and r.name == "fn")

    h.custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, SF_PLURAL, function("fn"))
    with h.operator(include_others=True):
        eventually(lambda: deployment_reads() >= 2)  # the keep-alive timer reads it every tick (1 s)
        h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, SF_PLURAL, "fn")
        eventually(lambda: _gone(lambda: _read_sf(h, "fn")))
        settled = deployment_reads()
        time.sleep(3.0)  # three ticks: a timer left running would read the Deployment again
        assert deployment_reads() <= settled + 1, "the deleted function's timer kept ticking"


def test_every_timer_is_released_from_the_finalizer(kubeconfig: Any) -> None:
    """The registry edit covers every timer tidal registers, and fails loudly on an unknown id."""
    clients = KubeClients.from_config(kubeconfig)
    try:
        registry = kopf.OperatorRegistry()
        settings = OperatorSettings()
        handlers_modeldeployment.register(registry, settings, clients)
        handlers_serverless.register(registry, settings, clients)
        timers = registry._spawning.get_all_handlers()  # noqa: SLF001 - what kopf consults
        assert {t.id for t in timers} == {"tidal_md_tick", "serverlessfunction-keepalive"}
        assert all(t.requires_finalizer is False for t in timers)
        with pytest.raises(LookupError, match="renamed"):
            timers_need_no_finalizer(registry, ["renamed"])
    finally:
        clients.close()


def test_the_deletion_watcher_logs_only_deletions(harness: OperatorHarness, caplog: pytest.LogCaptureFixture) -> None:
    """The ``on.event`` handler sees only DELETED events, so live objects' watch events and ticks
    log no "Handler 'tidal_md_deleted' succeeded." line (issue 9, item 18)."""
    h = harness
    with caplog.at_level("DEBUG"), h.operator():
        h.create_md(model_deployment("chatty"))
        eventually(lambda: (h.condition("chatty", "MetricsAvailable") or {}).get("reason") == "NoPrometheus")
        h.patch_md("chatty", {"spec": {"replicas": 2}})  # more watch events
        eventually(lambda: h.apps.read_namespaced_deployment("chatty-unified-gpu-a", OPERATOR_NS).spec.replicas == 2)
        assert not [r for r in caplog.records if "tidal_md_deleted" in r.getMessage()]
        h.custom.delete_namespaced_custom_object("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments", "chatty")
        eventually(lambda: any("forgot deleted ModelDeployment team-a/chatty" in r.getMessage()
                               and r.levelname == "DEBUG" for r in caplog.records))
    infos = [r for r in caplog.records if "tidal_md_deleted" in r.getMessage() and r.levelno >= 20]
    assert len(infos) <= 1, [r.getMessage() for r in infos]  # kopf's one line for the deletion itself
