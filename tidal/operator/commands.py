"""``tidal run`` and ``tidal explain``: typer functions the CLI registers (``app.command()(run)``).

Flag names and defaults are the contract with the Helm chart (docs/configuration.md, "tidal run").
Bad values end with one line naming the flag and the fix, and exit code 2 (the usage-error code
click and typer use).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import unicodedata
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional

import typer

from tidal.operator.settings import (
    DEFAULT_BIND_ADDRESS,
    DEFAULT_HEALTH_PORT,
    DEFAULT_INTERVAL_S,
    DEFAULT_METRICS_PORT,
)

if TYPE_CHECKING:
    from rich.text import Text

USAGE_ERROR = 2


def _fail(message: str, code: int = USAGE_ERROR) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _number(flag: str, text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        _fail(f"{flag}={text!r}: not {'an integer' if kind is int else 'a number'}")
        raise  # unreachable: _fail exits


def run(
    namespace: Optional[List[str]] = typer.Option(None, "--namespace", help="Serve only this namespace; repeatable. Default: all namespaces."),
    interval: str = typer.Option(f"{DEFAULT_INTERVAL_S:g}", "--interval", help="Seconds between autoscaling ticks (1..3600)."),
    prometheus_url: Optional[str] = typer.Option(None, "--prometheus-url", help="Prometheus base URL for engine metrics; without it replicas are held."),
    log_format: str = typer.Option("json", "--log-format", help="json (one object per line) or plain."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    peering: Optional[str] = typer.Option(None, "--peering", help="Join the kopf peering object NAME."),
    standalone: bool = typer.Option(False, "--standalone", help="No peering."),
    leader_elect: bool = typer.Option(False, "--leader-elect", help="Active/standby replicas: reconcile only while holding the Lease (coordination.k8s.io) 'tidal-operator'."),
    leader_election_namespace: Optional[str] = typer.Option(None, "--leader-election-namespace", envvar="POD_NAMESPACE", help="Namespace of the Lease; default: $POD_NAMESPACE (the operator's own, set by the chart)."),
    health_port: str = typer.Option(str(DEFAULT_HEALTH_PORT), "--health-port", help="Liveness endpoint /healthz port (0 disables)."),
    metrics_port: str = typer.Option(str(DEFAULT_METRICS_PORT), "--metrics-port", help="The operator's /metrics port (0 disables)."),
    health_bind_address: str = typer.Option(DEFAULT_BIND_ADDRESS, "--health-bind-address", help="IP address /healthz listens on."),
    metrics_bind_address: str = typer.Option(DEFAULT_BIND_ADDRESS, "--metrics-bind-address", help="IP address /metrics listens on."),
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", help="Kubeconfig for local runs; default: in-cluster, then KUBECONFIG."),
    activator_service: Optional[str] = typer.Option(None, "--activator-service", help="NAMESPACE/NAME of the activator's Service: ServerlessFunctions without a ready instance route there (docs/activator.md)."),
) -> None:
    """Run the operator (the container's entry point)."""
    from tidal.operator.logs import LEVELS, configure_logging
    from tidal.operator.settings import OperatorSettings, SettingsError

    # Numbers are parsed here, not by click, so a typo gets the same one-line error as a bad value.
    interval_s = _number("--interval", interval, float)
    health = int(_number("--health-port", health_port, int))
    metrics = int(_number("--metrics-port", metrics_port, int))
    if log_format not in ("json", "plain"):
        _fail(f"--log-format={log_format!r}: choose json or plain")
    if log_level not in LEVELS:
        _fail(f"--log-level={log_level!r}: choose one of {', '.join(LEVELS)}")
    if peering and standalone:
        _fail("--peering and --standalone exclude each other: pass one (the chart passes --peering NAME "
              "when peering.enabled, --standalone otherwise)")
    if leader_elect and not leader_election_namespace:
        _fail("--leader-elect needs the Lease's namespace: pass --leader-election-namespace or set POD_NAMESPACE")
    if kubeconfig is not None and not kubeconfig.is_file():
        _fail(f"--kubeconfig={kubeconfig}: no such file")
    namespaces = tuple(namespace or ())
    for ns in namespaces:
        if not ns or len(ns) > 63 or not ns.replace("-", "a").isalnum() or ns != ns.lower():
            _fail(f"--namespace={ns!r}: not a namespace name (lowercase letters, digits and '-')")
    try:
        settings = OperatorSettings(
            namespaces=namespaces, interval_s=interval_s, prometheus_url=prometheus_url,
            metrics_window_s=max(interval_s, OperatorSettings.metrics_window_s),
            log_format=log_format,  # type: ignore[arg-type]
            log_level=log_level,  # type: ignore[arg-type]
            peering_name=peering, health_port=health, metrics_port=metrics,
            leader_election_namespace=leader_election_namespace if leader_elect else None,
            leader_identity=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
            health_bind_address=health_bind_address, metrics_bind_address=metrics_bind_address,
            activator_service=activator_service,
        )
    except SettingsError as exc:
        _fail(str(exc))
        return
    configure_logging(settings.log_format, settings.log_level)
    from tidal.operator.app import run_operator
    from tidal.operator.leader import LeadershipLost

    try:
        run_operator(settings, kubeconfig=kubeconfig)
    except LeadershipLost as exc:
        # Exit non-zero: the kubelet restarts the container, which waits as a standby.
        _fail(f"stopped reconciling: {exc}; restarting as a standby", code=1)


def _when(t: Any) -> str:
    if isinstance(t, (int, float)):
        return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return str(t or "")


_KEEP_CONTROLS = frozenset("\n\t")
"""Control characters ``tidal explain`` prints as they are (line breaks inside table cells)."""
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf"})
"""Unicode controls (ESC, BEL, C1) and format characters (bidi overrides, which reorder what the
reader sees): printed as escapes."""


def terminal_safe(value: Any) -> Text:
    """External text (condition messages, stored reasons: both editable by anyone who can patch the
    object or its state ConfigMap) as a rich ``Text``: rich parses no markup in it (``[/bold]``
    would raise, ``[link=...]`` would render a link), and control characters other than newline and
    tab are shown as ``\\xNN`` so no escape sequence reaches the terminal."""
    from rich.text import Text

    text = "" if value is None else str(value)
    shown = "".join(
        ch if ch in _KEEP_CONTROLS or unicodedata.category(ch) not in _ESCAPED_CATEGORIES
        else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
        for ch in text
    )
    return Text(shown)


def explain(
    target: str = typer.Argument(..., metavar="NAMESPACE/NAME", help="The ModelDeployment to explain."),
    kubeconfig: Optional[Path] = typer.Option(None, "--kubeconfig", help="Kubeconfig; default: KUBECONFIG or ~/.kube/config."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many decisions (newest last)."),
) -> None:
    """Print the last decisions of a ModelDeployment and why tidal made them."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from tidal.controllers.workload_state import STATE_KEY, StateError, decode_state, state_configmap_name

    namespace, _, name = target.partition("/")
    if not namespace or not name or "/" in name:
        _fail(f"{target!r}: give NAMESPACE/NAME, e.g. default/llama-8b-chat")
    try:
        api = config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
    except Exception as exc:  # noqa: BLE001 - any kubeconfig problem is a usage error here
        _fail(f"cannot load kubeconfig ({exc}); pass --kubeconfig or set KUBECONFIG")
        return
    console = Console()
    try:
        md = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "tidal.dev", "v1alpha1", namespace, "modeldeployments", name)
    except ApiException as exc:
        if exc.status == 404:
            typer.echo(f"error: ModelDeployment {namespace}/{name} not found", err=True)
            raise typer.Exit(1)
        raise
    status = md.get("status") or {}
    try:
        cm = client.CoreV1Api(api).read_namespaced_config_map(state_configmap_name(name), namespace)
        state = decode_state((cm.data or {}).get(STATE_KEY, ""))
    except ApiException as exc:
        if exc.status != 404:
            raise
        state = None
    except StateError as exc:
        console.print(Text.assemble(("stored state unreadable: ", "yellow"), terminal_safe(exc)))
        state = None

    conditions = Table(title=terminal_safe(f"{namespace}/{name}: conditions"), show_lines=False)
    for column in ("type", "status", "reason", "message", "since"):
        conditions.add_column(column, overflow="fold")
    for c in status.get("conditions") or []:
        conditions.add_row(*(terminal_safe(c.get(k, "")) for k in
                             ("type", "status", "reason", "message", "lastTransitionTime")))
    console.print(conditions)

    decisions = (state.decisions if state else [])[-limit:]
    table = Table(title=terminal_safe(f"{namespace}/{name}: last decisions (oldest first)"), show_lines=True)
    for column in ("time", "ticks", "desired", "placement", "metrics", "forecast rps", "reasons"):
        table.add_column(column, overflow="fold")
    for d in decisions:
        repeats = int(d.get("repeats", 1))
        span = _when(d.get("time")) + (f"\n..{_when(d.get('until'))}" if d.get("until") else "")
        reasons = "\n".join(
            (f"[{r['pool']}] " if r.get("pool") else "") + f"{r['code']}: {r.get('message', '')}"
            for r in d.get("reasons") or [])
        if d.get("limits"):
            reasons += "\nlimits: " + "; ".join(map(str, d["limits"]))
        forecast = d.get("forecastRps")
        table.add_row(*map(terminal_safe, (
            span, f"#{d.get('tick')} x{repeats}", json.dumps(d.get("desired", {})),
            json.dumps(d.get("byChild", {})), "yes" if d.get("metricsAvailable") else "no",
            "" if not isinstance(forecast, (int, float)) else f"{forecast:.3g}", reasons)))
    if not decisions:
        last = status.get("lastDecision") or {}
        for r in last.get("reasons") or []:
            table.add_row(terminal_safe(last.get("time", "")), "", "", "", "", "", terminal_safe(
                (f"[{r['pool']}] " if r.get("pool") else "") + f"{r['code']}: {r.get('message', '')}"))
    console.print(table)
    if state is None:
        console.print("[dim]no stored decision history (the operator has not ticked yet, or the state "
                      f"ConfigMap {state_configmap_name(name)} is missing)[/dim]")
    elif state.last_scale_event:
        console.print(Text("last scale event: ") + terminal_safe(state.last_scale_event))
    sys.stdout.flush()
