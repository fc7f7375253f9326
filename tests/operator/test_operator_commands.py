"""``tidal run`` (flags, a real process with /healthz and /metrics, SIGTERM) and ``tidal explain``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import pytest
import typer
from typer.testing import CliRunner

from tests.operator.conftest import REPO_ROOT, OperatorHarness, eventually, free_port, model_deployment
from tidal.operator.commands import explain, run

PROCESS_START_TIMEOUT_S = 120.0
"""A fresh `tidal run` process imports the operator (kopf, kubernetes, prometheus-client...) before
/healthz answers: about 5 s on an idle machine; `make test-repeat` (nice 10, two busy CPUs) measured
more than 30 s, so the deadline is generous (a deadline, not a speed target)."""

app = typer.Typer()
app.command()(run)
app.command()(explain)


@pytest.mark.parametrize(("args", "needle"), [
    (["--interval", "0"], "--interval=0: must be between 1 and 3600 seconds"),
    (["--interval", "15s"], "--interval='15s': not a number"),
    (["--metrics-port", "http"], "--metrics-port='http': not an integer"),
    (["--log-format", "xml"], "--log-format='xml': choose json or plain"),
    (["--log-level", "loud"], "--log-level='loud': choose one of debug, info, warning, error"),
    (["--peering", "tidal", "--standalone"], "--peering and --standalone exclude each other"),
    (["--prometheus-url", "prometheus:9090"], "--prometheus-url='prometheus:9090': must start with http://"),
    (["--health-port", "9090", "--metrics-port", "9090"], "--health-port and --metrics-port are both 9090"),
    (["--namespace", "Team_A"], "--namespace='Team_A': not a namespace name"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig=/nonexistent/kubeconfig: no such file"),
    (["--metrics-bind-address", "localhost"], "--metrics-bind-address='localhost': not an IP address"),
    (["--health-bind-address", "0.0.0.0:8080"], "--health-bind-address='0.0.0.0:8080': not an IP address"),
    # Everything the chart passes (charts/tidal/templates/_helpers.tpl, tidal.args) is accepted:
    # only the missing kubeconfig stops it.
    (["--interval=15", "--namespace=team-a", "--namespace=team-b", "--prometheus-url=http://prom:9090",
      "--log-format=json", "--log-level=info", "--peering=tidal", "--health-port=8080", "--metrics-port=9090",
      "--health-bind-address=0.0.0.0", "--metrics-bind-address=0.0.0.0",
      "--kubeconfig=/nonexistent/kubeconfig"], "--kubeconfig=/nonexistent/kubeconfig: no such file"),
])
def test_bad_run_flags_fail_with_one_line_and_exit_2(args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["run", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.output


def test_explain_prints_the_last_decisions_and_reasons(harness: OperatorHarness) -> None:
    h = harness
    with h.operator():
        h.create_md(model_deployment("why", min_replicas=1))
        eventually(lambda: h.apps.read_namespaced_deployment("why-unified-gpu-a", "team-a").spec.replicas == 1)
        h.patch_md("why", {"spec": {"replicas": 2}})
        eventually(lambda: h.apps.read_namespaced_deployment("why-unified-gpu-a", "team-a").spec.replicas == 2)
        eventually(lambda: h.core.read_namespaced_config_map("why-tidal-state", "team-a"))
        # The status (conditions) is patched apart from the state ConfigMap: wait for it as well.
        eventually(lambda: (h.condition("why", "MetricsAvailable") or {}).get("reason") == "NoPrometheus")
    result = CliRunner().invoke(app, ["explain", "team-a/why", "--kubeconfig", str(h.kubeconfig)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "hold-no-metrics" in out and "manual-override" in out
    assert out.index("hold-no-metrics") < out.index("manual-override"), "oldest decision first"
    assert "MetricsAvailable" in out and "NoPrometheus" in out
    assert "last scale event" in out and "1->2" in out

    missing = CliRunner().invoke(app, ["explain", "team-a/nope", "--kubeconfig", str(h.kubeconfig)])
    assert missing.exit_code == 1 and "ModelDeployment team-a/nope not found" in missing.output
    bad = CliRunner().invoke(app, ["explain", "just-a-name", "--kubeconfig", str(h.kubeconfig)])
    assert bad.exit_code == 2 and "give NAMESPACE/NAME" in bad.output


def test_explain_escapes_markup_links_and_escape_bytes(harness: OperatorHarness) -> None:
    """Condition messages and the state ConfigMap are editable by anyone who can patch them: their
    text is printed literally, never as rich markup or raw terminal control bytes."""
    from tidal.controllers.workload_state import STATE_KEY, WorkloadState, encode_state, state_configmap_name

    h = harness
    h.create_md(model_deployment("odd"))
    h.custom.patch_namespaced_custom_object_status("tidal.dev", "v1alpha1", "team-a", "modeldeployments", "odd", {
        "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Odd",
                                   "message": "[/bold] closes nothing [link=https://example.invalid]x[/link]",
                                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]}})
    state = WorkloadState(tick=3, last_scale_event="\x07bell", decisions=[{
        "time": 1, "tick": 3, "desired": {"unified": 1}, "byChild": {"[bold]k": 1}, "metricsAvailable": False,
        "forecastRps": "[red]nan", "reasons": [{"code": "hold", "pool": "unified",
                                               "message": "\x1b[31mred\x1b[0m [red]not red[/red] \u202eevil"}]}])
    h.core.create_namespaced_config_map("team-a", {"metadata": {"name": state_configmap_name("odd")},
                                                   "data": {STATE_KEY: encode_state(state)}})
    result = CliRunner().invoke(app, ["explain", "team-a/odd", "--kubeconfig", str(h.kubeconfig)],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    out = result.output
    assert "[/bold] closes nothing [link=https://example.invalid]x[/link]" in out
    assert "\\x1b[31mred\\x1b[0m [red]not red[/red] \\u202eevil" in out
    assert "[bold]k" in out and "\\x07bell" in out
    assert not [ch for ch in out if ord(ch) < 32 and ch not in "\n\t"], "raw control bytes reached the terminal"
    assert "\u202e" not in out


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a listening TCP socket on ``port`` (from /proc/net/tcp, Linux)."""
    import socket
    import struct

    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
    return found


def test_liveness_endpoint_brackets_ipv6() -> None:
    from tidal.operator.app import liveness_endpoint
    from tidal.operator.settings import OperatorSettings

    assert liveness_endpoint(OperatorSettings(health_port=8080)) == "http://0.0.0.0:8080/healthz"
    assert liveness_endpoint(OperatorSettings(health_port=8080, health_bind_address="::")) == "http://[::]:8080/healthz"
    assert liveness_endpoint(OperatorSettings(health_port=0)) is None


def test_run_serves_health_and_metrics_and_stops_on_sigterm(harness: OperatorHarness) -> None:
    h = harness
    health, metrics = free_port(), free_port()
    code = "import typer; from tidal.operator.commands import run; typer.run(run)"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--kubeconfig", str(h.kubeconfig), "--standalone", "--interval", "1",
         "--namespace", "team-a", "--health-port", str(health), "--metrics-port", str(metrics),
         "--health-bind-address", "127.0.0.1", "--metrics-bind-address", "127.0.0.1",
         "--log-format", "json", "--log-level", "info"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        def get(port: int, path: str) -> str:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2).read().decode()

        eventually(lambda: get(health, "/healthz"), timeout_s=PROCESS_START_TIMEOUT_S)
        # Both listen on loopback only, as the bind-address flags asked (not on every interface).
        assert _listening_addresses(health) == {"127.0.0.1"}
        assert _listening_addresses(metrics) == {"127.0.0.1"}
        h.create_md(model_deployment("proc"))
        # /healthz answers before kopf has listed and started watching: the first reaction of a fresh
        # process gets the start deadline too.
        eventually(lambda: h.apps.read_namespaced_deployment("proc-unified-gpu-a", "team-a"),
                   timeout_s=PROCESS_START_TIMEOUT_S)
        text = eventually(lambda: (t := get(metrics, "/metrics")) and "tidal_desired_replicas{" in t and t)
        assert 'tidal_desired_replicas{name="proc",namespace="team-a",pool="unified"} 1.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=PROCESS_START_TIMEOUT_S)
    assert proc.returncode == 0, out.decode()[-3000:]
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, "json log lines expected"
    # Only this namespace was watched: the request log names no other.
    namespaces = {r.namespace for r in h.kube_api.audit.records()
                  if r.user_agent.startswith("kopf/") and r.namespace}
    assert namespaces <= {"team-a"}, namespaces
