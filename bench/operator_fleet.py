"""Benchmark: one operator process serving many ModelDeployments against the test API server.

    .venv/bin/python bench/operator_fleet.py                      # 1,000 workloads, 15 s interval, 3 ticks
    .venv/bin/python bench/operator_fleet.py --workloads 100 --ticks 2 --predictor holt-winters

The API server (tests/kubeapi) runs in a child process so the operator's CPU share is its own.
Creation is not measured: after every workload has children and its first tick, the benchmark
measures ``--ticks`` intervals of steady state and prints decision latency p50/p99 (observation
to decision, per workload per tick), the operator's CPU share of one core and its peak RSS,
against the targets of issue 5 (<= 25 % of one core, <= 500 MB).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

CPU_TARGET = 0.25
"""Issue 5: at most a quarter of one core for 1,000 workloads at a 15 s interval."""
RSS_TARGET_MB = 500.0
NAMESPACE = "bench"

_SERVER = """
import collections, json, sys, pathlib
sys.path.insert(0, {root!r})
from tests.kubeapi import KubeApiServer
server = KubeApiServer(bookmark_interval_s=60.0).start()
server.write_kubeconfig(pathlib.Path({kubeconfig!r}))
print("ready", flush=True)
for line in sys.stdin:
    counts = collections.Counter(
        " ".join(x for x in (r.verb, r.resource, r.subresource) if x) for r in server.audit.records())
    print(json.dumps(counts), flush=True)
server.stop()
"""


def _request_counts(server: subprocess.Popen) -> dict[str, int]:
    """Requests the API server has answered so far, by "verb resource [subresource]"."""
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("count\n")
    server.stdin.flush()
    return json.loads(server.stdout.readline())


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _md(i: int, predictor: str) -> dict[str, Any]:
    return {"apiVersion": "tidal.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": f"m{i:04d}", "namespace": NAMESPACE},
            "spec": {"model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
                     "engine": {"image": "vllm/vllm-openai:v0.11.0"}, "slo": {"ttft": "500ms"},
                     "pools": {"unified": {"minReplicas": 1, "maxReplicas": 8}},
                     "placement": {"acceleratorClasses": ["gpu-a"]},
                     "autoscaling": {"predictor": predictor}}}


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=15.0)
    parser.add_argument("--ticks", type=int, default=3, help="steady-state intervals measured")
    parser.add_argument("--predictor", default="auto", help="spec.autoscaling.predictor of every workload")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import yaml
    from kubernetes import client, config

    from tidal.operator.app import build_registry, kopf_settings
    from tidal.operator.kube import KubeClients
    from tidal.operator.metrics import OperatorMetrics
    from tidal.operator.settings import OperatorSettings

    tmp = Path(tempfile.mkdtemp(prefix="tidal-bench-"))
    kubeconfig = tmp / "kubeconfig"
    server = subprocess.Popen([sys.executable, "-c", _SERVER.format(root=str(REPO_ROOT), kubeconfig=str(kubeconfig))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        ext = client.ApiextensionsV1Api(api)
        for path in sorted((REPO_ROOT / "crds").glob("*.yaml")):
            for crd in yaml.safe_load_all(path.read_text()):
                if crd:
                    ext.create_custom_resource_definition(crd)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        custom = client.CustomObjectsApi(api)
        custom.create_cluster_custom_object("tidal.dev", "v1alpha1", "acceleratorclasses", {
            "apiVersion": "tidal.dev/v1alpha1", "kind": "AcceleratorClass", "metadata": {"name": "gpu-a"},
            "spec": {"memory": "80Gi", "peakTflops": 312, "memoryBandwidthGbps": 2039, "hourlyCost": 2.5}})

        settings = OperatorSettings(interval_s=args.interval, metrics_window_s=max(60.0, args.interval),
                                    health_port=0, metrics_port=0, log_level="warning")
        clients = KubeClients.from_config(kubeconfig)
        registry, controller = build_registry(settings, clients, OperatorMetrics(), include_others=False)
        latencies: list[tuple[float, float]] = []
        lock = threading.Lock()
        original_tick = controller.tick

        def timed_tick(*a: Any, **k: Any) -> Any:
            result = original_tick(*a, **k)
            if result is not None:
                with lock:
                    latencies.append((time.monotonic(), result.latency_s))
            return result

        controller.tick = timed_tick  # type: ignore[method-assign]
        import kopf
        import logging

        logging.basicConfig(level=logging.WARNING)
        stop, ready = threading.Event(), threading.Event()
        thread = threading.Thread(target=kopf.run, kwargs={
            "registry": registry, "settings": kopf_settings(settings), "standalone": True, "clusterwide": True,
            "stop_flag": stop, "ready_flag": ready}, daemon=True)
        rss_idle = _rss_mb()
        thread.start()
        ready.wait(60)
        t_create = time.monotonic()
        for i in range(args.workloads):
            custom.create_namespaced_custom_object("tidal.dev", "v1alpha1", NAMESPACE, "modeldeployments",
                                                   _md(i, args.predictor))
        created_s = time.monotonic() - t_create
        # Wait until every workload has ticked once (children exist, state loaded).
        deadline = time.monotonic() + 20 * args.interval + 10 * args.workloads / 100
        while time.monotonic() < deadline:
            with lock:
                seen = len(latencies)
            if seen >= args.workloads:
                break
            time.sleep(0.5)
        # Let the creation storm drain: reconciles are done once no Service is applied for an interval.
        previous = _request_counts(server)
        while time.monotonic() < deadline:
            time.sleep(args.interval)
            now_counts = _request_counts(server)
            if now_counts.get("patch services") == previous.get("patch services"):
                break
            previous = now_counts
        settle_s = time.monotonic() - t_create
        requests0 = _request_counts(server)
        cpu0, wall0 = _cpu_s(), time.monotonic()
        with lock:
            n0 = len(latencies)
        time.sleep(args.ticks * args.interval)
        cpu1, wall1 = _cpu_s(), time.monotonic()
        rss_steady = _rss_mb()
        requests1 = _request_counts(server)
        per_tick = {k: round((v - requests0.get(k, 0)) / max(1, args.ticks), 1) for k, v in requests1.items()
                    if v > requests0.get(k, 0)}
        with lock:
            window = [lat for _, lat in latencies[n0:]]
        stop.set()
        thread.join(60)
        deployments = len(client.AppsV1Api(api).list_namespaced_deployment(NAMESPACE).items)
        cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
        result = {
            "workloads": args.workloads, "interval_s": args.interval, "predictor": args.predictor,
            "create_s": round(created_s, 1), "first_tick_of_all_s": round(settle_s, 1),
            "ticks_measured": len(window), "ticks_expected": args.workloads * args.ticks,
            "decision_latency_p50_ms": round(1000 * _quantile(window, 0.5), 2),
            "decision_latency_p99_ms": round(1000 * _quantile(window, 0.99), 2),
            "cpu_share_of_one_core": round(cpu_share, 3), "cpu_target": CPU_TARGET,
            "rss_before_operator_mb": round(rss_idle, 1), "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_target_mb": RSS_TARGET_MB, "rss_steady_mb": round(rss_steady, 1),
            "child_deployments": deployments,
            # The serving path evaluates the forecast prior in numpy; torch alone would add ~180 MB.
            "torch_imported": "torch" in sys.modules,
            "api_requests_per_interval": per_tick,
        }
    finally:
        api.close()
        if server.stdin:
            server.stdin.close()
        server.wait(30)
    print(json.dumps(result, indent=2))
    ok_cpu = result["cpu_share_of_one_core"] <= CPU_TARGET
    ok_rss = result["peak_rss_mb"] <= RSS_TARGET_MB
    print(f"CPU {result['cpu_share_of_one_core']:.1%} of one core (target <= {CPU_TARGET:.0%}): "
          f"{'met' if ok_cpu else 'MISSED'}; peak RSS {result['peak_rss_mb']:.0f} MB "
          f"(target <= {RSS_TARGET_MB:.0f} MB): {'met' if ok_rss else 'MISSED'}; "
          f"decision latency p50 {result['decision_latency_p50_ms']} ms, p99 {result['decision_latency_p99_ms']} ms")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
