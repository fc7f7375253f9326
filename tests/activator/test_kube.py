"""Which Pods the activator forwards to: Ready, not terminating, the port named http."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from kubernetes import client

from tidal.activator.kube import pod_endpoint


def pod(ip: str | None = "10.1.2.3", ready: str = "True", deleting: bool = False,
        port_name: str = "http") -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="fn-1", deletion_timestamp=datetime.now(timezone.utc) if deleting else None),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name="function", ports=[client.V1ContainerPort(name=port_name, container_port=8080)])]),
        status=client.V1PodStatus(pod_ip=ip, conditions=[client.V1PodCondition(type="Ready", status=ready)]))


def test_ready_pod_is_an_endpoint() -> None:
    assert pod_endpoint(pod()) == "http://10.1.2.3:8080"
    assert pod_endpoint(pod("fd00::7")) == "http://[fd00::7]:8080"


def test_not_ready_terminating_addressless_or_portless_pods_are_not() -> None:
    assert pod_endpoint(pod(ready="False")) is None
    assert pod_endpoint(pod(deleting=True)) is None
    assert pod_endpoint(pod(ip=None)) is None
    assert pod_endpoint(pod(port_name="metrics")) is None


def test_the_namespace_of_a_client_pod_by_its_ip(kube_client: Any) -> None:
    """On the test API server: one pod with the IP -> its namespace; a host-network pod (the node's
    IP), a finished pod, an IP two namespaces claim or no pod -> None; answers are cached."""
    from kubernetes import client

    from tidal.activator.kube import KubeSourceNamespaces

    core = client.CoreV1Api(kube_client)
    for ns in ("team-a", "team-b"):
        core.create_namespace({"metadata": {"name": ns}})

    def pod(ns: str, name: str, ip: str, host_network: bool = False, phase: str = "Running") -> None:
        core.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": {
            "hostNetwork": host_network, "containers": [{"name": "c", "image": "i"}]}})
        core.patch_namespaced_pod_status(name, ns, {"status": {"podIP": ip, "phase": phase}})

    pod("team-a", "client", "10.2.0.1")
    pod("team-a", "node-agent", "10.0.0.1", host_network=True)
    pod("team-b", "node-agent", "10.0.0.1", host_network=True)
    pod("team-b", "done", "10.2.0.2", phase="Succeeded")
    pod("team-a", "twin", "10.2.0.3")
    pod("team-b", "twin", "10.2.0.3")
    now = [0.0]
    lookup = KubeSourceNamespaces(kube_client, clock=lambda: now[0])
    assert lookup._lookup("10.2.0.1") == "team-a"
    assert lookup._lookup("10.0.0.1") is None
    assert lookup._lookup("10.2.0.2") is None
    assert lookup._lookup("10.2.0.3") is None
    assert lookup._lookup("10.9.9.9") is None
    core.delete_namespaced_pod("client", "team-a")
    assert lookup._lookup("10.2.0.1") == "team-a", "cached"
    now[0] = 60.0
    assert lookup._lookup("10.2.0.1") is None, "the cache expires"
