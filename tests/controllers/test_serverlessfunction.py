"""ServerlessFunction controller: rendered children, instance bounds and status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tidal.api.serverlessfunction import ServerlessFunction
from tidal.controllers.serverlessfunction import (
    compute_status,
    instance_starts,
    instances_to_render,
    invalid_status,
    policy_for,
    render_children,
)
from tidal.core.serverlessfunction import start_seconds
from tidal.policies.interface import POOL_FUNCTION, Observation, PoolObservation

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def function(**spec: Any) -> ServerlessFunction:
    base = {
        "container": {
            "image": "ghcr.io/x/fn:1",
            "port": 9000,
            "env": {"A": "1"},
            "args": ["serve"],
        },
        "slo": {"latency": "2s"},
        "memory": "256Mi",
    }
    return ServerlessFunction.model_validate(
        {"metadata": {"name": "fn", "namespace": "ns"}, "spec": {**base, **spec}}
    )


def test_children() -> None:
    deployment, service = render_children(function(), "uid-1", 3)
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["labels"]["tidal.dev/function"] == "fn"
    assert deployment["metadata"]["ownerReferences"][0] == {
        "apiVersion": "tidal.dev/v1alpha1",
        "kind": "ServerlessFunction",
        "name": "fn",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["tidal.dev/function"] == "fn"
    assert deployment["spec"]["selector"]["matchLabels"] == {"tidal.dev/function": "fn"}
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"memory": "256Mi"},
        "limits": {"memory": "256Mi"},
    }
    assert container["ports"] == [{"name": "http", "containerPort": 9000}]
    assert {"name": "PORT", "value": "9000"} in container["env"] and {
        "name": "A",
        "value": "1",
    } in container["env"]
    assert container["args"] == ["serve"]
    assert (
        "readinessProbe" in container and container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    )
    assert (
        pod["spec"]["terminationGracePeriodSeconds"]
        > container["lifecycle"]["preStop"]["sleep"]["seconds"]
    )
    assert service["kind"] == "Service" and service["spec"]["selector"] == {
        "tidal.dev/function": "fn"
    }
    assert service["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_instances_to_render() -> None:
    spec = function(minInstances=0, maxInstances=5).spec
    assert instances_to_render(spec, None) == 1  # Knative initial scale
    assert instances_to_render(spec, {"observedGeneration": 1, "desiredInstances": 0}) == 0
    assert instances_to_render(spec, {"observedGeneration": 1, "desiredInstances": 9}) == 5
    held = function(minInstances=2, maxInstances=5, scaleToZero=False).spec
    assert instances_to_render(held, {"observedGeneration": 1, "desiredInstances": 0}) == 2


def test_policy_from_spec() -> None:
    fixed = policy_for(function(keepAlive="10m", prewarm="off").spec)
    assert fixed.keep_alive_s == 600 and not fixed.prewarm
    assert policy_for(function().spec).keep_alive_s is None


def test_status() -> None:
    policy = policy_for(function(keepAlive="5m").spec)
    decision, _ = policy.decide(
        Observation(
            0, {POOL_FUNCTION: PoolObservation(1, request_rate_rps=1.0, running_requests=150)}
        ),
        None,
    )
    status = compute_status(
        generation=2,
        desired=2,
        ready=1,
        decision=decision,
        metrics_available=True,
        metrics_message="read",
        previous={"coldStarts": 3},
        now=NOW,
        cold_starts=1,
    )
    assert status["desiredInstances"] == 2 and status["readyInstances"] == 1
    assert status["keepAliveSeconds"] == 300 and status["coldStarts"] == 4
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["message"] == "1/2 instances ready"
    bad = invalid_status(2, "spec.x: unknown field", status, NOW)
    assert next(c for c in bad["conditions"] if c["type"] == "Ready")["reason"] == "InvalidSpec"


@given(st.integers(0, 20), st.integers(1, 20), st.booleans(), st.none() | st.integers(-5, 50))
def test_rendered_instances_within_spec_bounds(
    min_i: int, extra: int, zero: bool, desired: int | None
) -> None:
    min_i = 0 if zero else min_i
    spec = function(minInstances=min_i, maxInstances=min_i + extra, scaleToZero=zero).spec
    n = instances_to_render(
        spec, None if desired is None else {"observedGeneration": 1, "desiredInstances": desired}
    )
    assert min_i <= n <= min_i + extra
    if not zero:
        assert n >= 1


def test_names_that_cannot_be_label_values_are_reported() -> None:
    from tidal.controllers.serverlessfunction import name_problem

    assert name_problem("f" * 63) is None
    problem = name_problem("f" * 64)
    assert problem is not None and "metadata.name" in problem and "63" in problem


def test_service_name_is_a_valid_rfc1035_label_and_distinct() -> None:
    import re

    from tidal.controllers.serverlessfunction import DNS1035_LABEL, service_name

    assert service_name("hello") == "hello"  # valid names are kept
    dotted, dashed = service_name("api.v1"), service_name("api-v1")
    assert dashed == "api-v1" and dotted != dashed and dotted.startswith("api-v1-")
    for name in ("api.v1", "2fa", "a." * 31 + "b", "x" * 63, "1.2.3"):
        got = service_name(name)
        assert re.fullmatch(DNS1035_LABEL, got) and len(got) <= 63, (name, got)


@given(st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?", fullmatch=True),
       st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?", fullmatch=True))
def test_service_names_are_valid_and_never_shared(a: str, b: str) -> None:
    import re

    from tidal.controllers.serverlessfunction import DNS1035_LABEL, service_name

    assert re.fullmatch(DNS1035_LABEL, service_name(a)) and len(service_name(a)) <= 63
    if a != b:
        assert service_name(a) != service_name(b)


def test_rendered_service_uses_the_service_name() -> None:
    from tidal.controllers.serverlessfunction import render_service, service_name

    fn = function().model_copy(update={"metadata": function().metadata.model_copy(update={"name": "api.v1"})})
    service = render_service(fn, "uid-1")
    assert service["metadata"]["name"] == service_name("api.v1")
    assert service["spec"]["selector"] == {"tidal.dev/function": "api.v1"}


def _pod(uid: str, created: str, scheduled: str | None, started: str | None, ready: str | None) -> dict[str, Any]:
    conditions = []
    if scheduled:
        conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": scheduled})
    conditions.append({"type": "Ready", "status": "True" if ready else "False",
                       **({"lastTransitionTime": ready} if ready else {})})
    return {
        "metadata": {"name": f"fn-{uid}", "namespace": "ns", "uid": uid, "creationTimestamp": created,
                     "labels": {"tidal.dev/function": "fn"}},
        "spec": {"nodeName": "node-a"},
        "status": {"conditions": conditions, "containerStatuses": (
            [{"name": "function", "state": {"running": {"startedAt": started}}}] if started else [])},
    }


def test_instance_starts_come_from_ready_pods_timestamps() -> None:
    pods = [
        _pod("a", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z",
             "2026-01-01T00:00:04Z"),
        _pod("b", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z", None),
        _pod("c", "2026-01-01T00:00:00Z", None, None, None),
    ]
    starts = instance_starts("fn", pods)
    assert [s.uid for s in starts] == ["a"]
    (a,) = starts
    assert a.pool == POOL_FUNCTION and a.node == "node-a"
    assert start_seconds(a) == 4.0 and a.scheduling_s == 1.0 and a.image_pull_s == 2.0


def test_policy_follows_the_slo_only_when_the_cold_start_exceeds_it() -> None:
    spec = function(slo={"latency": "1s", "percentile": 95}).spec
    assert policy_for(spec, cold_start_s=0.8).slo_tail_percentile is None
    slow = policy_for(spec, cold_start_s=3.0)
    assert slow.cold_start_s == 3.0 and slow.slo_tail_percentile == 95
