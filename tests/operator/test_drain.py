"""Scale-down in the operator drops no request: the operator only lowers the Deployment's replicas
(it never deletes a pod), and the pods it rendered keep every request that was in flight when the
scale-down hit them until it finished: Kubernetes takes a removed pod out of the Service endpoints,
runs its preStop sleep, sends SIGTERM (on which vLLM drains for --shutdown-timeout) and kills it only
when terminationGracePeriodSeconds has passed.

The operator runs against the test API server with a real Prometheus scraping three fake engine
exporters (tests/support/vllm_exporter.py) that replay requests in wall-clock time and report their
true in-flight count. When the operator's scale-down lands, every in-flight request of every pod the
ReplicaSet could remove is checked against the drain the applied Deployment really carries. A control
run with a drain window shorter than the requests counts dropped requests, so the zero can fail."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.operator.conftest import OPERATOR_NS, OperatorHarness, eventually, model_deployment
from tests.support.prometheus_server import PrometheusServer, ScrapeTarget, require_prometheus_binary
from tests.support.vllm_exporter import (
    VLLM_V1, EngineExporter, EngineGauges, RequestRecord, UniformLatency, WorkloadReplayer, steady_workload,
)
from tidal.operator.kube import USER_AGENT

PODS = ("drain-unified-gpu-a-5d8f-0", "drain-unified-gpu-a-5d8f-1", "drain-unified-gpu-a-5d8f-2")
RATE_RPS, OUTPUT_TOKENS = 0.5, 200
TPOT = UniformLatency(0.025, 0.075)
LONGEST_REQUEST_S = 0.5 + TPOT.high_s * (OUTPUT_TOKENS - 1)
"""About 15 s: every replayed request is shorter, so a 30 s drainTimeout covers all of them."""
BOOST = 20
"""Extra running requests each exporter reports at first, so the operator scales up to 3 before the
true load (about 5 in flight per pod) lets it scale down."""


class InFlight:
    """Each exporter's gauges follow the requests its replayer has in flight (plus a boost)."""

    def __init__(self, records: dict[str, list[RequestRecord]], exporters: dict[str, EngineExporter],
                 started_at: float) -> None:
        self.records, self.exporters, self.started_at = records, exporters, started_at
        self.boost = BOOST
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def at(self, pod: str, now: float) -> list[RequestRecord]:
        t = now - self.started_at
        return [r for r in self.records[pod] if r.arrival_s <= t < r.finish_s]

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for pod, exporter in self.exporters.items():
                exporter.set_gauges(EngineGauges(len(self.at(pod, now)) + self.boost, 0, 0.3))
            self._stop.wait(0.1)

    def start(self) -> "InFlight":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


ENGINE_LABELS = {"tidal.dev/deployment": "drain", "tidal.dev/pool": "unified", "tidal.dev/accelerator": "gpu-a"}


def dropped_if_removed(in_flight: list[RequestRecord], removed_at_s: float, grace_s: float) -> int:
    """Requests of a pod removed at ``removed_at_s`` (workload time) that would still run when the
    kubelet kills it: it keeps serving through preStop and the engine's drain, and is killed at the
    end of its termination grace period (vLLM's --shutdown-timeout ends no later)."""
    return sum(1 for r in in_flight if r.finish_s > removed_at_s + grace_s)


@pytest.mark.prometheus
@pytest.mark.parametrize(("drain_timeout", "expect_drops"), [("30s", False), ("1s", True)],
                         ids=["rendered-window", "control-short-window"])
def test_operator_scale_down_drops_no_in_flight_request(harness: OperatorHarness, tmp_path: Path,
                                                        drain_timeout: str, expect_drops: bool) -> None:
    h = harness
    for pod in PODS:
        h.ready_pod(pod, ENGINE_LABELS)
    exporters = {pod: EngineExporter(VLLM_V1, exposition="text").start() for pod in PODS}
    records = {pod: steady_workload(rate_rps=RATE_RPS, duration_s=300, ttft=UniformLatency(0.1, 0.5), tpot=TPOT,
                                    prompt_tokens_cycle=(100, 300), output_tokens=OUTPUT_TOKENS, phase=i / 3)
               for i, pod in enumerate(PODS)}
    assert max(r.finish_s - r.arrival_s for rs in records.values() for r in rs) < LONGEST_REQUEST_S
    replayers = [WorkloadReplayer(exporters[pod], records[pod]).start() for pod in PODS]
    started_at = replayers[0].started_at
    assert started_at is not None
    gauges = InFlight(records, exporters, started_at).start()
    labels = {"namespace": OPERATOR_NS, "tidal_dev_deployment": "drain", "tidal_dev_pool": "unified"}
    prometheus = PrometheusServer([ScrapeTarget(exporters[p].address, {**labels, "pod": p}) for p in PODS],
                                  tmp_path / "prom", binary=require_prometheus_binary(),
                                  scrape_interval_s=0.5).start(wait_for_targets=True)
    deployment = "drain-unified-gpu-a"
    try:
        with h.operator(prometheus_url=prometheus.url):
            body = model_deployment("drain", min_replicas=1, max_replicas=3)
            body["spec"]["engine"]["drainTimeout"] = drain_timeout
            body["spec"]["autoscaling"]["scaleDownDelay"] = "2s"
            # In-flight counts drive this test (the boost), so the in-flight rule of the hpa policy
            # sizes it; tidal's SLO planner sizes on request rates (tests/core).
            body["spec"]["autoscaling"]["policy"] = "hpa"
            h.create_md(body)
            eventually(lambda: h.apps.read_namespaced_deployment(deployment, OPERATOR_NS).spec.replicas == 3,
                       timeout_s=60)
            h.set_ready(deployment, 3)
            gauges.boost = 0  # the true load: about 5 requests in flight per pod, 1 replica's worth
            eventually(lambda: h.apps.read_namespaced_deployment(deployment, OPERATOR_NS).spec.replicas < 3,
                       timeout_s=60)
            removed_at = time.monotonic()
            applied = h.apps.read_namespaced_deployment(deployment, OPERATOR_NS)
            in_flight = {pod: gauges.at(pod, removed_at) for pod in PODS}
    finally:
        gauges.stop()
        for replayer in replayers:
            replayer.stop()
        prometheus.stop()
        for exporter in exporters.values():
            exporter.stop()

    # What the operator applied is what protects the requests: preStop, then the engine's drain,
    # within the grace period.
    pod_spec = applied.spec.template.spec
    (container,) = pod_spec.containers
    prestop_s = container.lifecycle.pre_stop.sleep.seconds
    shutdown_s = int(container.args[container.args.index("--shutdown-timeout") + 1])
    grace_s = pod_spec.termination_grace_period_seconds
    assert grace_s >= prestop_s + shutdown_s
    # The scale-down hit pods that were serving (not a vacuous zero) ...
    assert sum(len(v) for v in in_flight.values()) > 0
    # ... and whichever of them the ReplicaSet removes, none of their requests outlives the drain.
    removed_at_s = removed_at - started_at
    dropped = {pod: dropped_if_removed(v, removed_at_s, min(grace_s, prestop_s + shutdown_s))
               for pod, v in in_flight.items()}
    if expect_drops:
        assert sum(dropped.values()) > 0, "the short-window control must drop requests"
    else:
        assert dropped == {pod: 0 for pod in PODS}
    # The operator itself never removes a pod: only the Deployment's replicas change.
    deletes = [r for r in h.kube_api.audit.records()
               if r.user_agent.startswith(("kopf/", USER_AGENT)) and r.resource == "pods" and r.verb == "delete"]
    assert deletes == []
