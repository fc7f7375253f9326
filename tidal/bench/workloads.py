"""What the bench replays: the traces with the SLOs a user would set for them, and the
(model, accelerator) setups.

Traces are read from a folder laid out like ``../shared/traces`` (``--traces-dir``), with
the file names the simulator's registry uses, so a user can bench private traces dropped
into the same layout.

SLOs are per trace because they belong to the application the trace records, not to the
model. Where a number is a choice rather than a quoted limit, the docstring says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tidal.bench.settings import TARGET_ATTAINMENT
from tidal.sim.traces import (LLMRequest, load_azure_llm, load_mooncake, load_servegen_client,
                              sample_servegen_requests, synthetic_agent_sessions, time_window,
                              traces_dir)
from tidal.sim.traces.registry import (AGENT_DEFAULT_SESSIONS, AZURE_LLM_FILES, MOONCAKE_FILE,
                                       SERVEGEN_DEFAULT_DURATION_S)
from tidal.sim.traces.servegen import SERVEGEN_WINDOW_S


@dataclass(frozen=True)
class BenchSLO:
    """Per-request targets and the fraction of requests that must meet both."""

    ttft_s: float
    tpot_s: float
    attainment: float = TARGET_ATTAINMENT


Loader = Callable[[Path, int], list[LLMRequest]]


@dataclass(frozen=True)
class BenchTrace:
    """One workload: how to load it (``folder``, ``seed``) and the SLO its users would set."""

    name: str
    description: str
    slo: BenchSLO
    slo_reason: str
    loader: Loader

    def load(self, folder: Path | None, seed: int,
             duration_s: float | None = None) -> list[LLMRequest]:
        """The requests, optionally cut to the first ``duration_s`` seconds."""
        requests = self.loader(folder if folder is not None else traces_dir(), seed)
        if duration_s is not None:
            requests = time_window(requests, 0.0, duration_s)
        return requests


# ServeGen "m-mid" clients aggregated into one workload: four clients with steady day-long
# traffic (day-1 mean rates 1.1, 2.1, 3.3 and 1.2 req/s; peak 10-minute rates 2.2-5.2 req/s);
# their busiest hour together holds ~50,000 requests (~14 req/s), a few 8B replicas' worth.
SERVEGEN_POOL = "m-mid"
SERVEGEN_CLIENTS = (9, 18, 35, 61)
SERVEGEN_DAY_S = 86_400.0


def _azure(key: str) -> Loader:
    return lambda folder, seed: load_azure_llm(folder / AZURE_LLM_FILES[key])


def _mooncake(folder: Path, seed: int) -> list[LLMRequest]:
    return load_mooncake(folder / MOONCAKE_FILE)


def _agent(folder: Path, seed: int) -> list[LLMRequest]:
    return synthetic_agent_sessions(seed=seed, sessions=AGENT_DEFAULT_SESSIONS)


def servegen_busiest_hour_s(windows_by_client: list[list]) -> float:
    """Start of the first day's busiest hour of the aggregate (recorded counts, 10-min steps)."""
    per_window: dict[float, float] = {}
    for windows in windows_by_client:
        for w in windows:
            if w.start_s < SERVEGEN_DAY_S:
                per_window[w.start_s] = per_window.get(w.start_s, 0.0) + w.rate_rps
    starts = sorted(per_window)
    span = int(SERVEGEN_DEFAULT_DURATION_S // SERVEGEN_WINDOW_S)
    best_start, best = starts[0], -math.inf
    for i in range(len(starts)):
        total = sum(per_window.get(starts[i] + k * SERVEGEN_WINDOW_S, 0.0) for k in range(span))
        if total > best and starts[i] + SERVEGEN_DEFAULT_DURATION_S <= SERVEGEN_DAY_S:
            best_start, best = starts[i], total
    return best_start


def _servegen(folder: Path, seed: int) -> list[LLMRequest]:
    """The aggregate's busiest hour of day 1; each client sampled with its own seed."""
    base = folder / "servegen" / SERVEGEN_POOL
    windows = [load_servegen_client(base / f"chunk-{c}-trace.csv") for c in SERVEGEN_CLIENTS]
    start_s = servegen_busiest_hour_s(windows)
    merged: list[LLMRequest] = []
    for client, client_windows in zip(SERVEGEN_CLIENTS, windows):
        # seed * 1000 + client keeps clients' draws independent (client numbers are < 1000)
        merged.extend(sample_servegen_requests(client_windows, seed=seed * 1000 + client,
                                               start_s=start_s,
                                               duration_s=SERVEGEN_DEFAULT_DURATION_S))
    merged.sort(key=lambda r: r.arrival_s)
    return [dataclasses.replace(r, request_id=i) for i, r in enumerate(merged)]


TRACES: dict[str, BenchTrace] = {t.name: t for t in (
    BenchTrace("azure-conv", "Azure LLM 2023 conversation trace, full hour", BenchSLO(1.0, 0.1),
               "chat: the first token within a second; 10 tokens/s streams faster than people "
               "read", _azure("azure-conv")),
    BenchTrace("azure-code", "Azure LLM 2023 code trace, full hour", BenchSLO(1.0, 0.05),
               "IDE code completion: short suggestions (mean 28 tokens) wanted whole within "
               "about 2 s, so 1 s to the first token and 50 ms per token", _azure("azure-code")),
    BenchTrace("mooncake", "Mooncake FAST'25 synthetic trace (17 min, prefix hashes)",
               BenchSLO(5.0, 0.1),
               "long-context requests (mean prompt 15k tokens): prefilling alone takes ~1 s, "
               "users of document QA accept a few seconds", _mooncake),
    BenchTrace("servegen", f"ServeGen {SERVEGEN_POOL} clients {SERVEGEN_CLIENTS} aggregated, "
               "busiest hour of day 1", BenchSLO(2.0, 0.1),
               "general API traffic: the MLPerf Inference server-scenario limits for "
               "Llama-3.1-8B (TTFT 2 s, TPOT 100 ms)", _servegen),
    BenchTrace("agent", f"synthetic agent sessions ({AGENT_DEFAULT_SESSIONS} sessions, tool "
               "pauses)", BenchSLO(3.0, 0.1),
               "an agent loop waits on every turn: a few seconds per turn, streaming speed "
               "matters less than for people", _agent),
)}
"""Every trace the bench knows, by name (the ``--traces`` values)."""


@dataclass(frozen=True)
class ModelSetup:
    """A model served on one accelerator type, with the cluster and per-pool replica cap."""

    name: str
    model: str
    accelerator: str
    tp: int
    nodes: int
    max_replicas_per_pool: int
    engine_speed: float = 1.0
    """The simulated engine's speed relative to its performance model (``--perturb``): every policy
    in the cell meets the same engine; only a policy that trusts a profile (tidal-planner) starts out
    wrong and must correct itself online."""


PERTURBED_SEPARATOR = "@speed"
"""``<setup>@speed<F>``: a setup whose engine runs at F times its modelled speed."""


def perturbed(name: str, error: float) -> tuple[str, str]:
    """The two setups ``--perturb error`` adds: a profile that is ``error`` too optimistic (the
    engine is 1 + error times slower) and ``error`` too pessimistic (1 - error times as slow)."""
    if not 0 < error < 1:
        raise ValueError(f"--perturb must be in (0, 1), e.g. 0.4; got {error!r}")
    return (f"{name}{PERTURBED_SEPARATOR}{1 / (1 + error):.3f}", f"{name}{PERTURBED_SEPARATOR}{1 / (1 - error):.3f}")


def setup_named(name: str) -> ModelSetup:
    """A setup by name, including the ``<setup>@speed<F>`` variants ``--perturb`` adds."""
    base, _, speed = name.partition(PERTURBED_SEPARATOR)
    setup = SETUPS[base]
    return replace(setup, name=name, engine_speed=float(speed)) if speed else setup


SETUPS: dict[str, ModelSetup] = {s.name: s for s in (
    # 4 nodes x 8 H100 = 32 GPUs: 16 + 16 replicas in disaggregated mode.
    ModelSetup("8b-h100", "llama-3.1-8b", "H100-80GB", tp=1, nodes=4, max_replicas_per_pool=16),
    # TP 4 (a 140 GB checkpoint over 4 x 80 GB leaves room for KV): 16 nodes = 32 replicas.
    ModelSetup("70b-h100-tp4", "llama-3.1-70b", "H100-80GB", tp=4, nodes=16,
               max_replicas_per_pool=16),
)}
"""Model setups by name (the ``--models`` values)."""
