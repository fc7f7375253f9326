"""A small traces folder laid out like ../shared/traces: a bursty, seeded Azure-format trace.

Three minutes: 3 req/s, then a 15 req/s burst, then 5 req/s, with code-trace-like prompts
(median 2,500 tokens) and short outputs, so the 8B setup must scale between 1 and several
replicas to meet the azure-code SLO. Independent of ../shared, so these tests always run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tidal.sim.traces.registry import AZURE_LLM_FILES

SHORT_TRACE_S = 180.0
# (start s, end s, rate req/s)
PHASES = ((0.0, 60.0, 3.0), (60.0, 120.0, 15.0), (120.0, SHORT_TRACE_S, 5.0))


def write_azure_trace(path: Path, seed: int = 7) -> int:
    rng = np.random.default_rng(seed)
    times: list[float] = []
    for start, end, rate in PHASES:
        t = start
        while True:
            t += rng.exponential(1.0 / rate)
            if t >= end:
                break
            times.append(t)
    prompts = np.minimum(rng.lognormal(np.log(2500), 0.6, len(times)), 7000).astype(int) + 1
    outputs = np.minimum(rng.lognormal(np.log(20), 0.8, len(times)), 300).astype(int) + 2
    origin = datetime(2023, 11, 16, 18, 0, 0)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, p, o in zip(times, prompts, outputs):
        stamp = (origin + timedelta(seconds=t)).strftime("%Y-%m-%d %H:%M:%S.%f")
        lines.append(f"{stamp},{p},{o}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return len(times)


@pytest.fixture(scope="session")
def traces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("traces")
    for relative in AZURE_LLM_FILES.values():
        write_azure_trace(root / relative)
    return root
