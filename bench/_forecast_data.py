"""Small readers for the forecasting benchmark (and the prior's training script).

Deliberately separate from tidal/sim/traces: the benchmark needs only rate
series, and reading them here keeps the benchmark independent of the simulator.
Traces are read from ``$TIDAL_SHARED/traces`` (default: ``<repo>/../shared``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVEGEN_STEP_S = 600.0  # ServeGen: one row per 10-minute window (traces README)
AZURE_STEP_S = 10.0  # the issue bins Azure LLM 2023 arrivals to 10 s


def traces_dir() -> Path:
    return Path(os.environ.get("TIDAL_SHARED", REPO_ROOT.parent / "shared")) / "traces"


@dataclass(frozen=True)
class RateSeries:
    """One workload's rate on a regular grid (req/s), plus what it is and where it came from."""

    name: str
    step_s: float
    t0_s: float
    rate_rps: np.ndarray
    cv: np.ndarray | None = None  # ServeGen: coefficient of variation of inter-arrivals


def load_servegen(groups: tuple[str, ...] = ("m-small", "m-mid")) -> list[RateSeries]:
    """Every client of the named ServeGen groups; column 2 is the rate per window."""
    out: list[RateSeries] = []
    for g in groups:
        folder = traces_dir() / "servegen" / g
        if not folder.is_dir():
            raise FileNotFoundError(f"ServeGen folder {folder} not found (set TIDAL_SHARED)")
        files = sorted(folder.glob("chunk-*-trace.csv"), key=lambda p: int(p.name.split("-")[1]))
        for f in files:
            t, rate, cv = [], [], []
            with f.open(newline="") as fh:
                for lineno, row in enumerate(csv.reader(fh), 1):
                    if len(row) < 3:
                        raise ValueError(f"{f}:{lineno}: expected >= 3 columns, got {len(row)}")
                    try:
                        t.append(float(row[0]))
                        rate.append(float(row[1]))
                        cv.append(float(row[2]) if row[2] else 0.0)
                    except ValueError as e:
                        raise ValueError(f"{f}:{lineno}: {e}") from None
            ta = np.asarray(t)
            if len(ta) > 1 and not np.allclose(np.diff(ta), SERVEGEN_STEP_S):
                raise ValueError(f"{f}: windows are not a regular {SERVEGEN_STEP_S:.0f} s grid")
            out.append(RateSeries(f"{g}/{f.stem}", SERVEGEN_STEP_S, float(ta[0]), np.asarray(rate), np.asarray(cv)))
    return out


def load_azure_llm(service: str, step_s: float = AZURE_STEP_S) -> RateSeries:
    """Azure LLM 2023 arrivals of one service (``code`` or ``conv``) binned to a rate."""
    f = traces_dir() / "azure-llm-2023" / f"AzureLLMInferenceTrace_{service}.csv"
    if not f.exists():
        raise FileNotFoundError(f"Azure LLM trace {f} not found (set TIDAL_SHARED)")
    ts: list[float] = []
    with f.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "TIMESTAMP" not in reader.fieldnames:
            raise ValueError(f"{f}: no TIMESTAMP column in header {reader.fieldnames}")
        for lineno, row in enumerate(reader, 2):
            stamp = row["TIMESTAMP"]
            try:
                # Seven fractional digits: trim to the microseconds Python parses.
                head, _, frac = stamp.partition(".")
                stamp_dt = datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}")
                ts.append(stamp_dt.replace(tzinfo=timezone.utc).timestamp())
            except ValueError:
                raise ValueError(f"{f}:{lineno}: TIMESTAMP {stamp!r} is not 'YYYY-MM-DD HH:MM:SS.fffffff'") from None
    a = np.sort(np.asarray(ts))
    t0 = np.floor(a[0] / step_s) * step_s
    idx = ((a - t0) // step_s).astype(np.int64)
    counts = np.bincount(idx)
    return RateSeries(f"azure-{service}", step_s, float(t0), counts / step_s)
