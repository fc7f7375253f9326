"""Which Pods the activator forwards to: Ready, not terminating, the port named http."""

from __future__ import annotations

from datetime import datetime, timezone

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
