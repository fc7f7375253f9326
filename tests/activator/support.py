"""Test doubles for the activator's two ports and a real HTTP backend, all in the test's loop."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from aiohttp import web

from tidal.activator.demand import DemandReport
from tidal.activator.queueing import WorkloadRef

DEADLINE_S = 10.0


class StaticBackends:
    """Ready endpoints the test sets; a Service the test did not declare is not a workload."""

    def __init__(self, workloads: dict[WorkloadRef, tuple[str, ...]]) -> None:
        self.endpoints = dict(workloads)
        self.lookups = 0

    async def ready_endpoints(self, workload: WorkloadRef) -> tuple[str, ...]:
        self.lookups += 1
        if workload not in self.endpoints:
            raise LookupError(f"no Service {workload}")
        return self.endpoints[workload]


class RecordingSink:
    def __init__(self) -> None:
        self.reports: list[tuple[WorkloadRef, DemandReport, float]] = []

    async def signal(self, workload: WorkloadRef, report: DemandReport) -> None:
        self.reports.append((workload, report, time.monotonic()))


async def eventually(check: Callable[[], Any], deadline_s: float = DEADLINE_S) -> Any:
    """Poll ``check`` until it returns something truthy, or fail after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline_s}s: {check}")
        await asyncio.sleep(0.01)


class Backend:
    """A real HTTP server standing in for a function instance: ``/echo`` (method, path, body,
    headers), ``/sse`` (two events; the second only after ``release_second`` is set) and
    ``/status/<code>``."""

    def __init__(self) -> None:
        self.release_second = asyncio.Event()
        self.seen: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(request.headers.get("X-Seq", ""))
        return web.json_response({"method": request.method, "path": request.path_qs,
                                  "body": body.decode(), "headers": dict(request.headers)})

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await self.release_second.wait()
        await response.write(b"data: two\n\n")
        await response.write_eof()
        return response

    async def _status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status")

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_get("/sse", self._sse)
        app.router.add_get("/status/{code}", self._status)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def sample(registry: Any, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


class BackendProcess:
    """The stand-in engine or function instance (tests/activator/backend_process.py) in a process of
    its own, as a kubelet would start it: it listens on ``port`` after ``start_s`` seconds."""

    def __init__(self, port: int, start_s: float) -> None:
        self.port, self.start_s = port, start_s
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, deadline_s: float) -> None:
        """Start the process and wait until it listens, failing after ``deadline_s``."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.activator.backend_process", f"{self.start_s:g}", str(self.port)],
            cwd=REPO_ROOT)
        end = time.monotonic() + deadline_s
        while not await asyncio.to_thread(listening, self.port):
            if time.monotonic() > end:
                raise AssertionError(f"the backend process did not listen on {self.port} within {deadline_s}s")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
