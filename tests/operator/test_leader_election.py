"""Active/standby replicas on a Lease: one leads, a killed leader is replaced within 15 s, a stopped
one hands over at once, and the standby answers its liveness probe meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest
from kubernetes import client

from tests.operator.conftest import REPO_ROOT, OperatorHarness, eventually, free_port, model_deployment
from tidal.operator.leader import LeaderElector, LeaseView, next_step
from tidal.operator.settings import OperatorSettings, SettingsError

NS = "team-a"
FAILOVER_TARGET_S = 15.0


def _view(holder: str, observed_at_s: float, duration_s: float = 10.0) -> LeaseView:
    return LeaseView(holder, duration_s, 0, "1", "t", observed_at_s)


def test_next_step_follows_client_go() -> None:
    assert next_step(None, "a", 0.0) == "create"
    assert next_step(_view("a", 0.0), "a", 100.0) == "renew"
    assert next_step(_view("b", 0.0), "a", 9.9) == "wait"
    assert next_step(_view("b", 0.0), "a", 10.0) == "take"  # not renewed for a lease duration, on our clock
    assert next_step(_view("", 5.0), "a", 5.0) == "take"  # released


def test_settings_refuse_leader_election_with_peering_or_without_identity() -> None:
    with pytest.raises(SettingsError, match="exclude each other"):
        OperatorSettings(leader_election_namespace="ops", leader_identity="p", peering_name="tidal")
    with pytest.raises(SettingsError, match="POD_NAME"):
        OperatorSettings(leader_election_namespace="ops")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_electors_on_the_api_server_take_over_only_after_the_lease_expires(kube_api: Any, kube_client: Any) -> None:
    client.CoreV1Api(kube_client).create_namespace({"metadata": {"name": "ops"}})
    api = client.CoordinationV1Api(kube_client)
    clock = Clock()
    a = LeaderElector(api, "ops", "a", clock=clock)
    b = LeaderElector(api, "ops", "b", clock=clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.now += 5
    assert a.try_acquire_or_renew(), "the leader renews"
    assert not b.try_acquire_or_renew(), "a renewal restarts the standby's count"
    clock.now += 9.9  # a crashed: no renewal for 9.9 s on b's clock
    assert not b.try_acquire_or_renew()
    clock.now += 0.1
    assert b.try_acquire_or_renew()
    lease = api.read_namespaced_lease("tidal-operator", "ops")
    assert lease.spec.holder_identity == "b" and lease.spec.lease_transitions == 1
    assert not a.try_acquire_or_renew(), "the old leader sees the new holder and waits"
    b.release()
    assert api.read_namespaced_lease("tidal-operator", "ops").spec.holder_identity == ""
    assert a.try_acquire_or_renew(), "a released Lease is taken at once"
    # Every call the electors made is one the chart's leader-election Role grants.
    from tests.charts.chart_support import CHART_DIR, by_kind, render

    role = next(r for r in by_kind(render(CHART_DIR / "ci" / "ha-values.yaml"), "Role")
                if r["metadata"]["name"].endswith("-leader-election"))
    granted = {(g, res, v) for rule in role["rules"] for g in rule["apiGroups"] for res in rule["resources"]
               for v in rule["verbs"]}
    used = {t for t in kube_api.audit.rbac_triples() if t[1] == "leases"}
    assert used == granted, (used, granted)


def _start(h: OperatorHarness, identity: str, health_port: int) -> subprocess.Popen:
    code = "import typer; from tidal.operator.commands import run; typer.run(run)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "POD_NAME": identity, "POD_NAMESPACE": NS}
    return subprocess.Popen(
        [sys.executable, "-c", code, "--kubeconfig", str(h.kubeconfig), "--leader-elect", "--interval", "1",
         "--namespace", NS, "--health-port", str(health_port), "--metrics-port", "0", "--log-format", "plain"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)


def _holder(h: OperatorHarness) -> str | None:
    try:
        return client.CoordinationV1Api(h.api).read_namespaced_lease("tidal-operator", NS).spec.holder_identity
    except client.ApiException:
        return None


def _healthy(port: int) -> bool:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200


def test_a_killed_leader_is_replaced_within_15_seconds(harness: OperatorHarness) -> None:
    h = harness
    ports = {"op-a": free_port(), "op-b": free_port()}
    procs = {"op-a": _start(h, "op-a", ports["op-a"])}
    try:
        eventually(lambda: _holder(h) == "op-a", timeout_s=30)
        h.create_md(model_deployment("first"))
        # A fresh operator process's first reconcile (not the failover under test): as long as the others.
        eventually(lambda: h.apps.read_namespaced_deployment("first-unified-gpu-a", NS), timeout_s=30)
        procs["op-b"] = _start(h, "op-b", ports["op-b"])
        eventually(lambda: _healthy(ports["op-b"]), timeout_s=30)  # the standby passes its liveness probe
        assert _holder(h) == "op-a"

        procs["op-a"].send_signal(signal.SIGKILL)  # a crash: the Lease is not released
        killed = time.monotonic()
        procs["op-a"].wait(timeout=10)
        eventually(lambda: _holder(h) == "op-b", timeout_s=FAILOVER_TARGET_S + 10)
        failover_s = time.monotonic() - killed
        assert failover_s <= FAILOVER_TARGET_S, f"failover took {failover_s:.1f}s"
        h.create_md(model_deployment("second"))  # the new leader reconciles
        eventually(lambda: h.apps.read_namespaced_deployment("second-unified-gpu-a", NS), timeout_s=30)

        procs["op-b"].send_signal(signal.SIGTERM)  # a clean stop hands the Lease back
        out, _ = procs["op-b"].communicate(timeout=30)
        assert procs["op-b"].returncode == 0, out.decode()[-3000:]
        assert _holder(h) == ""
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
