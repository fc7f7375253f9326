"""The autoscaling timer: holds without metrics, scales on real Prometheus data, announces each scale
change once, learns cold starts from pods, honours and reports kubectl scale, and survives a restart
(and kill -9) without losing or repeating."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import (
    OPERATOR_NS,
    REPO_ROOT,
    OperatorHarness,
    eventually,
    free_port,
    model_deployment,
)
from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import VLLM_V1, EngineExporter, EngineGauges

SCRAPE_INTERVAL_S = 0.5


def _replicas(h: OperatorHarness, name: str) -> int:
    return h.apps.read_namespaced_deployment(name, OPERATOR_NS).spec.replicas


def _scrape(port: int) -> dict[str, float]:
    """The operator's /metrics as {series: value} (labels in exposition order)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def _scale_events(h: OperatorHarness, name: str) -> list[Any]:
    return [e for e in h.events(name) if e.reason in ("ScaledUp", "ScaledDown")]


@pytest.mark.prometheus
def test_scales_up_on_real_prometheus_load_then_holds_when_prometheus_goes_away(
        harness: OperatorHarness, tmp_path: Path) -> None:
    binary = require_prometheus_binary()
    h = harness
    exporter = EngineExporter(VLLM_V1, exposition="text").start()
    # 40 running + 10 waiting on one replica and no completed requests: the hpa policy (16 in flight per
    # pod) -> 4. (tidal's SLO planner sizes on the request rate, 0 here; tests/core covers it.)
    exporter.set_gauges(EngineGauges(40, 10, 0.8))
    labels = {"namespace": OPERATOR_NS, "pod": "big-0", "tidal_dev_deployment": "big", "tidal_dev_pool": "unified"}
    prometheus = PrometheusServer([ScrapeTarget(exporter.address, labels)], tmp_path / "prom", binary=binary,
                                  scrape_interval_s=SCRAPE_INTERVAL_S).start(wait_for_targets=True)
    metrics_port = free_port()
    try:
        with h.operator(prometheus_url=prometheus.url, metrics_port=metrics_port):
            h.create_md(model_deployment("big", min_replicas=1, max_replicas=6,
                                         autoscaling={"policy": "hpa", "predictor": "holt-winters"}))
            eventually(lambda: _replicas(h, "big-unified-gpu-a") == 1)
            h.set_ready("big-unified-gpu-a", 1)
            # the HPA recomputes once per 15 s sync period (of the operator's clock), not every tick
            eventually(lambda: _replicas(h, "big-unified-gpu-a") == 4, timeout_s=60.0)
            cond = eventually(lambda: (c := h.condition("big", "MetricsAvailable")) and c["status"] == "True" and c)
            assert cond["reason"] == "MetricsRead"
            # The Deployment is applied before the tick patches the status: poll the status too.
            status = eventually(lambda: (s := h.read_md("big")["status"])["pools"]["unified"]["desired"] == 4 and s)
            assert status["lastDecision"]["policy"] == "hpa"
            assert status["lastDecision"]["reasons"][0]["code"].startswith("hpa-"), status["lastDecision"]
            events = eventually(lambda: _scale_events(h, "big"))
            assert [(e.reason, e.type) for e in events] == [("ScaledUp", "Normal")]
            assert "1 -> 4 replicas" in events[0].message and "hpa-" in events[0].message
            series = eventually(lambda: _scrape(metrics_port))
            key = 'name="big",namespace="team-a",pool="unified"'  # exposition sorts labels
            assert series[f"tidal_desired_replicas{{{key}}}"] == 4
            assert series[f"tidal_observed_requests_per_second{{{key}}}"] == 0.0  # gauges only, no requests
            assert series[f"tidal_decision_latency_seconds_count{{{key}}}"] >= 1
            assert series["process_resident_memory_bytes"] > 0

            # Prometheus goes away: MetricsAvailable=False, replicas held (never down, never to zero).
            prometheus.stop()
            cond = eventually(lambda: (c := h.condition("big", "MetricsAvailable")) and c["status"] == "False" and c)
            assert cond["reason"] == "ConnectionFailed", cond
            assert "holding replicas" in cond["message"]
            assert _replicas(h, "big-unified-gpu-a") == 4
            assert len(_scale_events(h, "big")) == 1
            # the HPA holds on missing metrics, or has not reached its next 15 s sync yet
            assert h.read_md("big")["status"]["lastDecision"]["reasons"][0]["code"] in (
                "hpa-no-metrics", "hpa-between-syncs")
    finally:
        prometheus.stop()
        exporter.stop()


def _engine_pod(name: str, uid_hint: str, workload: str = "keep") -> dict[str, Any]:
    labels = {"tidal.dev/deployment": workload, "tidal.dev/pool": "unified", "tidal.dev/accelerator": "gpu-a"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": f"node-{uid_hint}", "containers": [{"name": "engine", "image": "vllm"}]}}


def _ready_status(created: str) -> dict[str, Any]:
    """Scheduled 3 s after creation, container started 40 s later, Ready 60 s after that."""
    return {"status": {
        "phase": "Running",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": _plus(created, 3)},
            {"type": "Ready", "status": "True", "lastTransitionTime": _plus(created, 103)},
        ],
        "containerStatuses": [{"name": "engine", "ready": True, "restartCount": 0, "image": "vllm", "imageID": "",
                               "state": {"running": {"startedAt": _plus(created, 43)}}}],
    }}


def _plus(stamp: str, seconds: int) -> str:
    from datetime import datetime, timedelta

    t = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _state(h: OperatorHarness, name: str) -> dict[str, Any]:
    return json.loads(h.core.read_namespaced_config_map(f"{name}-tidal-state", OPERATOR_NS).data["state.json"])


def test_restart_restores_state_and_repeats_no_scale_event(harness: OperatorHarness) -> None:
    h = harness
    port1, port2 = free_port(), free_port()
    with h.operator(metrics_port=port1):
        h.create_md(model_deployment("keep", min_replicas=1))
        eventually(lambda: _replicas(h, "keep-unified-gpu-a") == 1)
        # kubectl scale: the /scale subresource sets spec.replicas; tidal holds it (manual override).
        h.custom.patch_namespaced_custom_object_scale("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments",
                                                      "keep", {"spec": {"replicas": 3}})
        eventually(lambda: _replicas(h, "keep-unified-gpu-a") == 3)
        events = eventually(lambda: _scale_events(h, "keep"))
        assert "manual-override" in events[0].message
        # A pod becomes Ready: one cold start learnt and counted.
        pod = h.core.create_namespaced_pod(OPERATOR_NS, _engine_pod("keep-0", "1"))
        created = pod.metadata.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        h.core.patch_namespaced_pod_status("keep-0", OPERATOR_NS, _ready_status(created))
        key = 'name="keep",namespace="team-a",pool="unified"'
        eventually(lambda: _scrape(port1).get(f"tidal_cold_starts_total{{{key}}}") == 1)
        before = eventually(lambda: (s := _state(h, "keep")) and s["countedPods"] and s)
        assert before["countedPods"] == [pod.metadata.uid]
        assert before["lastScaleEvent"].endswith("unified/gpu-a:1->3")
        assert before["forecaster"]["kind"] == "holt_winters"
        assert before["coldStart"]["seq"] == 1
        ticks_before = before["tick"]

    with h.operator(metrics_port=port2):
        # The tick counter continues from the stored state: nothing was re-learnt from scratch.
        after = eventually(lambda: (s := _state(h, "keep")) and s["tick"] > ticks_before + 1 and s)
        assert after["coldStart"]["seq"] == 1, "the pod seen again on restart is not counted twice"
        assert after["countedPods"] == [pod.metadata.uid]
        assert after["lastScaleEvent"] == before["lastScaleEvent"]
        assert [d["desired"] for d in after["decisions"]][:1] == [d["desired"] for d in before["decisions"]][:1]
        assert _replicas(h, "keep-unified-gpu-a") == 3
        series = _scrape(port2)
        assert series.get(f"tidal_cold_starts_total{{{key}}}", 0.0) == 0.0
    assert len(_scale_events(h, "keep")) == 1, [e.message for e in _scale_events(h, "keep")]
    # The predictor learnt the phases under the pod's class (image not cached: a 40 s pull):
    # 3 s scheduling, 40 s pull, 60 s load+init (pod timestamps put it all under engine init).
    from tidal.predictors._state import decode_array

    (entry,) = after["coldStart"]["tables"]["accelerator_class"]
    assert entry["key"] == ["gpu-a", False, False]
    assert decode_array(entry["rows"]).tolist() == [[3.0, 40.0, 0.0, 60.0]]


def test_state_of_an_earlier_object_with_the_same_name_is_not_restored(harness: OperatorHarness) -> None:
    h = harness
    # A leftover state ConfigMap owned by a deleted ModelDeployment of the same name (GC not done yet:
    # the test API server collects a dependent whose owner uid is unknown at once, so the old owner's
    # uid is one the server still knows, a bystander's).
    old_uid = h.core.create_namespaced_config_map(OPERATOR_NS, {"metadata": {"name": "bystander"}}).metadata.uid
    h.core.create_namespaced_config_map(OPERATOR_NS, {
        "metadata": {"name": "again-tidal-state", "ownerReferences": [{
            "apiVersion": "tidal.dev/v1alpha1", "kind": "ModelDeployment", "name": "again",
            "uid": old_uid, "controller": True}]},
        "data": {"state.json": json.dumps({"format": 1, "tick": 500, "lastScaleEvent": "500:unified/gpu-a:1->9",
                                           "decisions": [], "countedPods": []})}})
    with h.operator():
        h.create_md(model_deployment("again"))
        state = eventually(lambda: (s := _state(h, "again")) and s["tick"] < 500 and s)
        assert state["tick"] < 500 and state["lastScaleEvent"] is None


def test_kubectl_scale_is_clamped_reported_and_handed_back(harness: OperatorHarness) -> None:
    h = harness
    with h.operator():
        h.create_md(model_deployment("manual", min_replicas=1, max_replicas=6))
        eventually(lambda: _replicas(h, "manual-unified-gpu-a") == 1)
        h.custom.patch_namespaced_custom_object_scale("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments",
                                                      "manual", {"spec": {"replicas": 50}})
        eventually(lambda: _replicas(h, "manual-unified-gpu-a") == 6)  # clamped to maxReplicas, not 50
        cond = eventually(lambda: (c := h.condition("manual", "ManualOverride")) and c["status"] == "True" and c)
        assert cond["reason"] == "SpecReplicasSet"
        assert "spec.replicas=50 holds 6" in cond["message"] and "clamped to 6" in cond["message"]
        assert '"path":"/spec/replicas"' in cond["message"], "the message says how to hand control back"
        h.patch_md("manual", {"spec": {"replicas": None}})  # a merge patch's null removes the field
        cond = eventually(lambda: (c := h.condition("manual", "ManualOverride")) and c["status"] == "False" and c)
        assert cond["reason"] == "Autoscaling"
        eventually(lambda: h.read_md("manual")["status"]["lastDecision"]["reasons"][0]["code"] == "hold-no-metrics")


def test_core_state_survives_kill_9(harness: OperatorHarness) -> None:
    """``tidal run`` in its own process, killed with SIGKILL after it learnt a cold start and decided:
    the next operator resumes from the state ConfigMap (predictors, counted starts, tick, last
    scale event) without re-learning or re-counting anything."""
    h = harness
    code = "import typer; from tidal.operator.commands import run; typer.run(run)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--kubeconfig", str(h.kubeconfig), "--standalone", "--interval", "1",
         "--namespace", OPERATOR_NS, "--health-port", "0", "--metrics-port", "0", "--log-format", "plain"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO_ROOT)
    try:
        h.create_md(model_deployment("crash", min_replicas=1))
        eventually(lambda: _replicas(h, "crash-unified-gpu-a") == 1, timeout_s=60)
        h.custom.patch_namespaced_custom_object_scale("tidal.dev", "v1alpha1", OPERATOR_NS, "modeldeployments",
                                                      "crash", {"spec": {"replicas": 2}})
        eventually(lambda: _replicas(h, "crash-unified-gpu-a") == 2, timeout_s=60)
        pod = h.core.create_namespaced_pod(OPERATOR_NS, _engine_pod("crash-0", "1", workload="crash"))
        created = pod.metadata.creation_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        h.core.patch_namespaced_pod_status("crash-0", OPERATOR_NS, _ready_status(created))
        before = eventually(lambda: (s := _state(h, "crash")) and s["countedPods"] and s["lastScaleEvent"]
                            and s["forecaster"] and s, timeout_s=60)
    finally:
        proc.kill()  # SIGKILL: no shutdown handler runs, nothing is flushed
        proc.wait(timeout=30)
    assert before["coldStart"]["seq"] == 1 and before["countedPods"] == [pod.metadata.uid]
    # The pod goes away: what the next operator knows of its start can only come from the state.
    h.core.delete_namespaced_pod("crash-0", OPERATOR_NS)

    with h.operator():
        after = eventually(lambda: (s := _state(h, "crash")) and s["tick"] > before["tick"] + 1 and s)
    assert after["coldStart"]["seq"] == 1, "the start learnt before the kill is kept"
    assert after["coldStart"]["tables"] == before["coldStart"]["tables"]
    assert after["countedPods"] == before["countedPods"]
    assert after["lastScaleEvent"] == before["lastScaleEvent"]
    assert after["forecaster"]["kind"] == before["forecaster"]["kind"] == "holt_winters"
    assert after["forecaster"]["grid"]["n_valid"] >= before["forecaster"]["grid"]["n_valid"]
    assert len([e for e in _scale_events(h, "crash") if "1 -> 2" in e.message]) == 1
