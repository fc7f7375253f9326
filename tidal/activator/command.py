"""``tidal activator``: run the activator (flags are the contract with the chart's ``activator.*``)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Optional

import typer

from tidal.activator import settings as defaults


def activator(
    port: int = typer.Option(defaults.HTTP_PORT, "--port", help="Port for proxied requests, /healthz and /metrics."),
    bind_address: str = typer.Option("0.0.0.0", "--bind-address", help="Address to listen on."),
    queue_limit: int = typer.Option(defaults.QUEUE_LIMIT, "--queue-limit",
                                    help="Requests held per workload before 503 (Knative: 10000)."),
    hold_timeout: float = typer.Option(defaults.HOLD_TIMEOUT_S, "--hold-timeout",
                                       help="Seconds a request waits for a ready instance before 503 (Knative: 300)."),
    retry_after: int = typer.Option(defaults.RETRY_AFTER_S, "--retry-after", help="Retry-After seconds on a 503."),
    replica_name: Optional[str] = typer.Option(None, "--replica-name",
                                               help="This replica's name (demand annotation key); default: POD_NAME or the host name."),
    kubeconfig: Optional[str] = typer.Option(None, "--kubeconfig", help="Kubeconfig outside a cluster."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
) -> None:
    """Hold requests for workloads at zero, wake them, forward when an instance is ready (docs/activator.md)."""
    from tidal.activator.kube import KubeBackends, KubeDemandSink, KubeSourceNamespaces
    from tidal.activator.server import Activator, serve
    from tidal.activator.settings import ActivatorSettings
    from tidal.operator.kube import KubeClients

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    replica = replica_name or os.environ.get("POD_NAME") or socket.gethostname()
    try:
        settings = ActivatorSettings(port=port, bind_address=bind_address, queue_limit=queue_limit,
                                     hold_timeout_s=hold_timeout, retry_after_s=retry_after,
                                     replica_name=replica)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    clients = KubeClients.from_config(kubeconfig)
    backends = KubeBackends(clients.api)
    activator_ = Activator(settings, backends, KubeDemandSink(clients.api, backends, replica),
                           namespaces=KubeSourceNamespaces(clients.api))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Keep serving for the endpoint-propagation grace, then drain (held requests finish).
            loop.add_signal_handler(sig, lambda: loop.call_later(defaults.SHUTDOWN_GRACE_S, stop.set))
        await serve(activator_, shutdown=stop)

    asyncio.run(main())
