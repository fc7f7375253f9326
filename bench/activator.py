"""Activator speed: proxied requests/s on one core and the latency it adds once warm, against a
direct-to-backend baseline measured in the same run.

Three processes: the activator (``tidal.activator.server.Activator``, the real server with a
fixed ready endpoint and no demand sink) pinned to CPU 0; a minimal HTTP/1.1 backend and the load
generator (raw asyncio keep-alive connections, so neither is the bottleneck) pinned to CPU 1.
Each phase runs direct to the backend first, then through the activator:

* throughput: ``--connections`` closed-loop keep-alive connections for ``--seconds``;
* added latency: one connection, one request at a time (the hop's own cost), and a paced
  ``--rate`` req/s over 8 connections; p50/p99 through the activator minus direct.

Targets (issue #13): >= 2,000 proxied req/s on one core, p99 added <= 5 ms. Prints the numbers.

    .venv/bin/python bench/activator.py [--seconds 5] [--connections 32] [--rate 1000]
    TIDAL_BENCH_NO_PIN=1 .venv/bin/python bench/activator.py   # let the scheduler place them
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "fn.bench"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
TARGET_RPS, TARGET_P99_ADDED_MS = 2000.0, 5.0


PIN = os.environ.get("TIDAL_BENCH_NO_PIN") is None
"""TIDAL_BENCH_NO_PIN=1 lets the scheduler place the processes (to tell CPU contention on a shared
machine from the activator's own cost)."""


def pin(cpu: int) -> None:
    """Pin this process to one CPU when the machine has it (the bench's "one core")."""
    if PIN and hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- backend: answers every request at once with a 2-byte body ------------------------------------
class _Backend(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:  # GETs only: a request ends with its headers
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


def run_backend(port: int) -> None:
    pin(1)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_Backend, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


def run_activator(port: int, backend_port: int) -> None:
    pin(0)
    from tidal.activator.queueing import WorkloadRef
    from tidal.activator.server import Activator, serve
    from tidal.activator.settings import ActivatorSettings

    ref = WorkloadRef("bench", "fn")

    class Fixed:
        async def ready_endpoints(self, workload: WorkloadRef) -> tuple[str, ...]:
            return (f"http://127.0.0.1:{backend_port}",)

    class NoDemand:
        async def signal(self, workload: WorkloadRef, report: object) -> None:
            return None

    activator = Activator(ActivatorSettings(port=port, bind_address="127.0.0.1"), Fixed(), NoDemand())
    activator.gate(ref)  # nothing else: the first request finds no endpoint and is held once
    asyncio.run(serve(activator))


# -- load generator ---------------------------------------------------------------------------------
async def _connection(port: int, stop_at: float, latencies: list[float], interval_s: float = 0.0) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /work HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    done = 0
    next_at = time.perf_counter()
    try:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return done
            if interval_s:
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += interval_s
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response: {head[:60]!r}")
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            done += 1
    finally:
        writer.close()


async def load(port: int, seconds: float, connections: int, rate_rps: float = 0.0) -> tuple[float, np.ndarray]:
    """(requests/s, latencies in s) over ``connections`` keep-alive connections."""
    latencies: list[float] = []
    interval_s = connections / rate_rps if rate_rps else 0.0
    started = time.perf_counter()
    counts = await asyncio.gather(*(_connection(port, started + seconds, latencies, interval_s)
                                    for _ in range(connections)))
    return sum(counts) / (time.perf_counter() - started), np.array(latencies)


def wait_listening(port: int, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {deadline_s:g}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000.0, help="paced phase, req/s")
    parser.add_argument("--role", choices=("backend", "activator"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--backend-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "backend":
        return run_backend(args.port)
    if args.role == "activator":
        return run_activator(args.port, args.backend_port)

    backend_port, activator_port = free_port(), free_port()
    me = [sys.executable, str(Path(__file__).resolve())]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen(me + ["--role", "backend", "--port", str(backend_port)], env=env),
             subprocess.Popen(me + ["--role", "activator", "--port", str(activator_port),
                                    "--backend-port", str(backend_port)], env=env)]
    try:
        wait_listening(backend_port)
        wait_listening(activator_port)
        pin(1)
        asyncio.run(_measure(args, backend_port, activator_port, procs[1].pid))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def _ms(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q) * 1000.0)


async def _measure(args: argparse.Namespace, backend_port: int, activator_port: int, activator_pid: int) -> None:
    await load(activator_port, 1.0, 4)  # warm: the first request is held once, endpoints cached
    await load(backend_port, 1.0, 4)
    rows = []
    for label, connections, rate in (("throughput", args.connections, 0.0), ("one at a time", 1, 0.0),
                                     (f"paced {args.rate:g} req/s", 8, args.rate)):
        direct_rps, direct = await load(backend_port, args.seconds, connections, rate)
        cpu_before = cpu_seconds(activator_pid)
        proxied_rps, proxied = await load(activator_port, args.seconds, connections, rate)
        cpu_s = cpu_seconds(activator_pid) - cpu_before
        rows.append((label, connections, direct_rps, proxied_rps, direct, proxied, len(proxied) / max(cpu_s, 1e-9)))
    where = "activator on CPU 0, backend + load generator on CPU 1" if PIN else "not pinned"
    print(f"activator bench: {where} of {os.cpu_count()} CPUs; "
          f"{args.seconds:g} s per phase")
    print(f"{'phase':<22}{'conns':>6}{'direct req/s':>14}{'proxied req/s':>15}{'per CPU-s':>11}{'p50 +ms':>9}"
          f"{'p99 +ms':>9}{'direct p99 ms':>15}{'proxied p99 ms':>16}")
    for label, connections, direct_rps, proxied_rps, direct, proxied, per_cpu_s in rows:
        print(f"{label:<22}{connections:>6}{direct_rps:>14.0f}{proxied_rps:>15.0f}{per_cpu_s:>11.0f}"
              f"{_ms(proxied, 50) - _ms(direct, 50):>9.2f}{_ms(proxied, 99) - _ms(direct, 99):>9.2f}"
              f"{_ms(direct, 99):>15.2f}{_ms(proxied, 99):>16.2f}")
    print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(per CPU-s: proxied requests per second of the activator's own CPU time, i.e. on one whole core)")
    best_rps = max(rows[0][3], rows[0][6])
    added = max(_ms(r[5], 99) - _ms(r[4], 99) for r in rows[1:])
    print(f"proxied {rows[0][6]:.0f} req/s per CPU-second ({rows[0][3]:.0f} req/s wall clock) on one core (target >= {TARGET_RPS:g}): "
          f"{'met' if best_rps >= TARGET_RPS else 'MISSED'}; p99 added {added:.2f} ms at <= {args.rate:g} req/s "
          f"(target <= {TARGET_P99_ADDED_MS:g}): {'met' if added <= TARGET_P99_ADDED_MS else 'MISSED'}")


if __name__ == "__main__":
    main()
