"""Start a real Prometheus (the Debian ``prometheus`` binary) on 127.0.0.1 for tests, and stop it.

The instance gets a generated config with static targets whose target labels stand in
for what a PodMonitor's relabelling puts on engine pods (``namespace``, ``pod``,
``tidal_dev_deployment``, ``tidal_dev_pool``), a short scrape interval, and a storage
directory the caller owns (a pytest tmp dir). It is never the system service.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

MISSING_BINARY_REASON = (
    "the prometheus binary is not on PATH: install Debian package prometheus "
    "(apt-get install -y prometheus; the tests start their own instance, not the service)"
)
BINARY_ENV_VAR = "TIDAL_PROMETHEUS_BIN"
"""Overrides the binary looked up on PATH (e.g. a release tarball's ./prometheus)."""

STARTUP_TIMEOUT_S = 30.0
"""Prometheus 2.42 opens its TSDB and answers /-/ready within ~1 s here; targets appear only after
the discovery manager's fixed 5 s update throttle, so waiting for targets needs more."""


def find_prometheus_binary() -> str | None:
    """The Prometheus binary to run, or ``None`` if there is none."""
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("prometheus")


def require_prometheus_binary() -> str:
    """The binary, or fail (under CI, where it must be installed) / skip (elsewhere) with the fix."""
    import pytest

    binary = find_prometheus_binary()
    if binary is not None:
        return binary
    reason = MISSING_BINARY_REASON
    if os.environ.get(BINARY_ENV_VAR):
        reason = f"{BINARY_ENV_VAR}={os.environ[BINARY_ENV_VAR]!r} is not an executable file; unset it or {reason}"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ScrapeTarget:
    """One ``host:port`` serving /metrics, with the target labels Prometheus attaches to its series."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


def render_config(targets: Sequence[ScrapeTarget], scrape_interval_s: float) -> str:
    """Prometheus YAML (JSON is valid YAML) with one static config per target."""
    interval = f"{round(scrape_interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": "engines",
            "metrics_path": "/metrics",
            "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in targets],
        }],
    }
    return json.dumps(config, indent=2)


class PrometheusServer:
    """A Prometheus child process; use as a context manager or call ``start``/``stop``."""

    def __init__(self, targets: Sequence[ScrapeTarget], work_dir: Path, *, binary: str | None = None,
                 scrape_interval_s: float = 1.0):
        self.targets = list(targets)
        self.work_dir = Path(work_dir)
        self.binary = binary or find_prometheus_binary()
        if self.binary is None:
            raise FileNotFoundError(MISSING_BINARY_REASON)
        self.scrape_interval_s = scrape_interval_s
        self.port: int | None = None
        self._process: subprocess.Popen | None = None
        self._log_path = self.work_dir / "prometheus.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("prometheus not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_for_targets: bool = True, timeout_s: float = STARTUP_TIMEOUT_S) -> "PrometheusServer":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config_path = self.work_dir / "prometheus.yml"
        config_path.write_text(render_config(self.targets, self.scrape_interval_s))
        storage = self.work_dir / "data"
        storage.mkdir(exist_ok=True)
        self.port = free_loopback_port()
        log = open(self._log_path, "ab")
        try:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout_s
        try:
            self._wait(lambda: self._get("/-/ready") is not None, deadline, "answer /-/ready")
            if wait_for_targets and self.targets:
                self._wait(self._all_targets_up, deadline, f"scrape all {len(self.targets)} targets")
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, condition, deadline: float, what: str) -> None:
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode} before it could {what}; "
                    f"log tail:\n{self.log_tail()}"
                )
            if condition():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus did not {what} in time; log tail:\n{self.log_tail()}")
            time.sleep(0.2)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> bytes | None:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=2) as response:
                return response.read() if response.status == 200 else None
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def query(self, promql: str) -> list:
        """Raw instant-query result (for test diagnostics, not the adapter under test)."""
        body = self._get("/api/v1/query", {"query": promql})
        return json.loads(body)["data"]["result"] if body else []

    def query_at(self, promql: str, at_s: float) -> list:
        """Raw query result evaluated at ``at_s`` (Unix seconds)."""
        body = self._get("/api/v1/query", {"query": promql, "time": repr(float(at_s))})
        return json.loads(body)["data"]["result"] if body else []

    def counter_slope(self, metrics: Sequence[str], matchers: Mapping[str, str], window_s: float,
                      at_s: float) -> float:
        """Per-second increase of the counters' raw samples in the window ending at ``at_s``, summed over
        series: each series' (last - first) / (t_last - t_first), computed here from what Prometheus
        stored, without rate() and without the adapter under test.

        Why tests compare with this rather than the nominal load: on a busy 2-core machine the replayer
        that drives the exporters is starved unevenly, so the counters grow by up to ~25 % less than
        the nominal rate inside a 5 s window; the adapter must report what was served, which this is.
        """
        names = "|".join(f"{m}|{m.replace(':', '_')}" for m in metrics)
        selector = ", ".join([f'__name__=~"{names}"'] + [f'{k}="{v}"' for k, v in sorted(matchers.items())])
        window_ms = round(window_s * 1000)
        total = 0.0
        for series in self.query_at(f"{{{selector}}}[{window_ms}ms]", at_s):
            values = series.get("values") or []
            if len(values) >= 2:
                (t0, v0), (t1, v1) = values[0], values[-1]
                total += (float(v1) - float(v0)) / (float(t1) - float(t0))
        return total

    def _all_targets_up(self) -> bool:
        result = self.query('sum(up{job="engines"})')
        return bool(result) and float(result[0]["value"][1]) >= len(self.targets)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
