"""Routing a function's Service through the activator: the EndpointSlice and its inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.api.serverlessfunction import ServerlessFunctionSpec
from tidal.api.types import ObjectMeta
from tidal.controllers.activator_routing import (
    SERVICE_NAME_LABEL,
    ActivatorEndpoints,
    activator_endpoints_from_slices,
    activator_slice_name,
    render_activator_slice,
    routes_to_activator,
    wake_instances,
)
from tidal.api.serverlessfunction import ServerlessFunction


def spec(**extra: object) -> ServerlessFunctionSpec:
    return ServerlessFunctionSpec.model_validate({
        "container": {"image": "fn:1"}, "memory": "256Mi", "slo": {"latency": "1s"},
        "scaleToZero": True, **extra})


def test_slice_adds_the_activator_to_the_functions_service() -> None:
    fn = ServerlessFunction(metadata=ObjectMeta(name="api.v1", namespace="team-a"), spec=spec())
    body = render_activator_slice(fn, "uid-1", ActivatorEndpoints(("10.0.0.9", "10.0.0.7"), 8012))
    labels = body["metadata"]["labels"]
    assert labels[SERVICE_NAME_LABEL].startswith("api-v1-")  # the Service's name, not the function's
    assert labels["endpointslice.kubernetes.io/managed-by"] == "tidal.dev"
    assert body["metadata"]["name"] == activator_slice_name("api.v1")
    assert body["ports"] == [{"name": "http", "port": 8012, "protocol": "TCP"}]
    assert [e["addresses"] for e in body["endpoints"]] == [["10.0.0.7"], ["10.0.0.9"]]
    assert body["addressType"] == "IPv4" and body["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    v6 = render_activator_slice(fn, "u", ActivatorEndpoints(("fd00::1",), 8012))
    assert v6["addressType"] == "IPv6"
    with pytest.raises(ValueError, match="mix IPv4 and IPv6"):
        render_activator_slice(fn, "u", ActivatorEndpoints(("fd00::1", "10.0.0.1"), 8012))


def test_activator_endpoints_read_ready_addresses_only() -> None:
    slices = [{"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                             {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
                             {"addresses": ["10.0.0.3"]}],
               "ports": [{"name": "http", "port": 8012}]}]
    assert activator_endpoints_from_slices(slices) == ActivatorEndpoints(("10.0.0.1", "10.0.0.3"), 8012)
    assert activator_endpoints_from_slices([]) is None
    assert activator_endpoints_from_slices([{"endpoints": [], "ports": [{"port": 8012}]}]) is None


def test_routes_to_activator_until_an_instance_is_ready() -> None:
    assert routes_to_activator(0) and not routes_to_activator(1)


@given(held=st.integers(0, 10_000), target=st.integers(1, 1000), top=st.integers(1, 100))
def test_wake_instances_bounds(held: int, target: int, top: int) -> None:
    n = wake_instances(spec(concurrencyTarget=target, maxInstances=top), held)
    assert 1 <= n <= top
    assert n == min(top, max(1, -(-held // target)))
