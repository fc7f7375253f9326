"""Operator settings: what `tidal run` was told on its command line.

Why a frozen dataclass and not module globals: handlers receive the settings explicitly, so two
operators (or a test and an operator) can run in one process with different settings. The flag
names and defaults are the contract with the Helm chart (`charts/tidal/templates/_helpers.tpl`,
`tidal.args`) and docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_INTERVAL_S = 15.0
"""Tick interval: Kubernetes HPA's default sync period (--horizontal-pod-autoscaler-sync-period=15s)."""
MIN_INTERVAL_S = 1.0
MAX_INTERVAL_S = 3600.0
DEFAULT_HEALTH_PORT = 8080
DEFAULT_METRICS_PORT = 9090
DEFAULT_BIND_ADDRESS = "0.0.0.0"
"""Address /healthz and /metrics listen on: every IPv4 interface, because the kubelet's liveness
probe and Prometheus reach the pod on its pod IP (binding 127.0.0.1 would fail both). Narrow it
(``--health-bind-address``, ``--metrics-bind-address``) when something else reaches them, e.g. a
sidecar proxy on loopback; ``::`` listens on IPv6 (and IPv4 where the OS maps it)."""
DEFAULT_METRICS_WINDOW_S = 60.0
"""PromQL rate/histogram window: four 15 s scrapes, the smallest window that survives one missed scrape."""

DEFAULT_RETRY_BACKOFF_S = 10.0
"""Delay before kopf retries a reconcile that hit a transient API error (409/429/5xx/timeout);
kopf's own default is 60 s, long enough to make a create look lost."""
DEFAULT_STATE_SAVE_INTERVAL_S = 300.0
"""Forecaster history that changed without a decision change is persisted at most this often
(a restart then re-learns at most five minutes); decision changes, scale changes and counted pods
are persisted on the tick. Measured (bench/operator_fleet.py): saving every minute cost 1,000 workloads
~250 ConfigMap writes per 15 s interval and kept the operator above its CPU target."""

DEFAULT_API_TIMEOUT_S = 10.0
"""Timeout of the operator's own API requests (tidal/operator/kube.py REQUEST_TIMEOUT_S explains it)."""

LogFormat = Literal["json", "plain"]
LogLevel = Literal["debug", "info", "warning", "error"]


class SettingsError(ValueError):
    """A flag value the operator cannot run with; the message names the flag and the fix."""


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()
    """Empty: all namespaces (cluster-wide). Otherwise exactly these."""
    interval_s: float = DEFAULT_INTERVAL_S
    prometheus_url: str | None = None
    """None: no metrics; workloads report MetricsAvailable=False and replicas are held."""
    metrics_window_s: float = DEFAULT_METRICS_WINDOW_S
    log_format: LogFormat = "json"
    log_level: LogLevel = "info"
    peering_name: str | None = None
    """kopf peering object to join; None means standalone."""
    leader_election_namespace: str | None = None
    """Namespace of the leader-election Lease (tidal/operator/leader.py); None: no leader election,
    this process reconciles at once (one replica)."""
    leader_identity: str = ""
    """This replica's name in the Lease (the pod name in a cluster)."""
    health_port: int = DEFAULT_HEALTH_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    health_bind_address: str = DEFAULT_BIND_ADDRESS
    metrics_bind_address: str = DEFAULT_BIND_ADDRESS
    field_manager: str = "tidal"
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S
    state_save_interval_s: float = DEFAULT_STATE_SAVE_INTERVAL_S
    api_timeout_s: float = DEFAULT_API_TIMEOUT_S
    activator_service: str | None = None
    """``<namespace>/<name>`` of the activator's Service (docs/activator.md): while a
    ServerlessFunction has no ready instance its Service also routes there. None: no activator."""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not MIN_INTERVAL_S <= self.interval_s <= MAX_INTERVAL_S:
            raise SettingsError(
                f"--interval={self.interval_s:g}: must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g} seconds"
            )
        if self.metrics_window_s < self.interval_s:
            raise SettingsError(
                f"metrics window {self.metrics_window_s:g}s is shorter than --interval={self.interval_s:g}s: "
                "each tick would miss samples; raise the window or lower the interval"
            )
        for flag, port in (("--health-port", self.health_port), ("--metrics-port", self.metrics_port)):
            if not 0 <= port <= 65535:
                raise SettingsError(f"{flag}={port}: must be a TCP port 0..65535 (0 disables)")
        for flag, address in (("--health-bind-address", self.health_bind_address),
                              ("--metrics-bind-address", self.metrics_bind_address)):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise SettingsError(
                    f"{flag}={address!r}: not an IP address; use e.g. 0.0.0.0 (all IPv4 interfaces), "
                    "127.0.0.1 (loopback only) or :: (IPv6)"
                ) from None
        if self.health_port and self.health_port == self.metrics_port:
            raise SettingsError(f"--health-port and --metrics-port are both {self.health_port}: give them different ports")
        if self.leader_election_namespace is not None and self.peering_name is not None:
            raise SettingsError(
                "--leader-elect and --peering exclude each other: the Lease already keeps one replica active, "
                "and a killed leader's peering record would pause its successor for the peering lifetime"
            )
        if self.leader_election_namespace is not None and not self.leader_identity:
            raise SettingsError("--leader-elect needs this replica's identity: set POD_NAME (the chart does)")
        if self.activator_service is not None and (
            self.activator_service.count("/") != 1 or not all(self.activator_service.split("/"))
        ):
            raise SettingsError(
                f"--activator-service={self.activator_service!r}: must be <namespace>/<name> of the "
                "activator's Service, e.g. tidal-system/tidal-activator"
            )
        if self.prometheus_url is not None and not self.prometheus_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"--prometheus-url={self.prometheus_url!r}: must start with http:// or https://, "
                "e.g. http://prometheus-operated.monitoring:9090"
            )

    @property
    def cluster_wide(self) -> bool:
        return not self.namespaces
