"""``load_trace``: every LLM workload by a short name, for the CLI and benchmarks.

Names and what they load:

- ``demo``: the bundled 12-minute Azure LLM 2023 ``conv`` excerpt (package data;
  needs no network and no ``../shared``).
- ``azure-conv``, ``azure-code``: the full Azure LLM 2023 traces.
- ``mooncake``: the Mooncake FAST'25 synthetic trace (with prefix-block hashes).
- ``servegen-m-small:<client>``, ``servegen-m-mid:<client>``: requests sampled
  from one ServeGen client's rate windows (``<client>`` is the N of
  ``chunk-N-trace.csv``); seeded by ``seed``. Because a busy client sends
  hundreds of millions of requests over the 14 days, ``duration_s=None`` means
  the first ``SERVEGEN_DEFAULT_DURATION_S`` after ``start_s`` for these names.
- ``agent``: ``AGENT_DEFAULT_SESSIONS`` synthetic multi-turn agent sessions
  (``agent.py``; default parameters are stated assumptions), seeded by ``seed``.

Real traces are read from ``../shared/traces`` (see ``locations.py``).
``start_s``/``duration_s`` cut a window out of any trace and re-base it to 0.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from tidal.sim.traces.agent import synthetic_agent_sessions
from tidal.sim.traces.azure_functions import load_azure_functions
from tidal.sim.traces.azure_llm import load_azure_llm
from tidal.sim.traces.errors import UnknownTraceError
from tidal.sim.traces.locations import demo_trace_resource, traces_dir
from tidal.sim.traces.mooncake import load_mooncake
from tidal.sim.traces.records import FunctionSpec, LLMRequest
from tidal.sim.traces.servegen import load_servegen_client, sample_servegen_requests
from tidal.sim.traces.transforms import time_window

AZURE_LLM_FILES = {
    "azure-conv": "azure-llm-2023/AzureLLMInferenceTrace_conv.csv",
    "azure-code": "azure-llm-2023/AzureLLMInferenceTrace_code.csv",
}
MOONCAKE_FILE = "mooncake-synthetic/synthetic_trace.jsonl"
AZURE_FUNCTIONS_FOLDER = "azure-functions-2019"
SERVEGEN_POOLS = ("m-small", "m-mid")
SERVEGEN_DEFAULT_DURATION_S = 3600.0
AGENT_DEFAULT_SESSIONS = 600  # 20 minutes of session starts at the default 0.5 sessions/s

TRACE_NAMES: tuple[str, ...] = (
    "demo",
    "azure-conv",
    "azure-code",
    "mooncake",
    "servegen-m-small:<client>",
    "servegen-m-mid:<client>",
    "agent",
)
"""Every name ``load_trace`` accepts (``<client>`` stands for a client number)."""


def load_demo_trace() -> list[LLMRequest]:
    """The bundled Azure conv excerpt; works without ``../shared``."""
    with resources.as_file(demo_trace_resource()) as path:
        return load_azure_llm(path)


def load_function_trace(
    shared: str | Path | None = None,
) -> tuple[list[FunctionSpec], dict[str, np.ndarray]]:
    """The Azure Functions 2019 sample from ``../shared/traces`` (specs, per-minute counts)."""
    return load_azure_functions(traces_dir(shared) / AZURE_FUNCTIONS_FOLDER)


def load_trace(
    name: str,
    *,
    seed: int = 0,
    shared: str | Path | None = None,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> list[LLMRequest]:
    """Load an LLM workload by short name (see the module docstring for the names).

    ``seed`` makes sampled workloads reproducible; replayed traces ignore it.
    ``shared`` overrides the folder holding ``traces/`` (default ``../shared``).
    """
    if name.startswith("servegen-"):
        return _servegen(name, seed=seed, shared=shared, start_s=start_s, duration_s=duration_s)
    if name == "agent":
        requests = synthetic_agent_sessions(seed=seed, sessions=AGENT_DEFAULT_SESSIONS)
        if start_s or duration_s is not None:
            requests = time_window(requests, start_s, duration_s)
        return requests
    loader = _replay_loaders(shared).get(name)
    if loader is None:
        raise UnknownTraceError(f"unknown trace {name!r}; valid names: {', '.join(TRACE_NAMES)}")
    requests = loader()
    if start_s or duration_s is not None:
        requests = time_window(requests, start_s, duration_s)
    return requests


def _replay_loaders(shared: str | Path | None) -> dict[str, Callable[[], list[LLMRequest]]]:
    """Loaders of the traces that are replayed as recorded (no sampling)."""
    loaders: dict[str, Callable[[], list[LLMRequest]]] = {"demo": load_demo_trace}
    for name, relative in AZURE_LLM_FILES.items():
        loaders[name] = lambda relative=relative: load_azure_llm(traces_dir(shared) / relative)
    loaders["mooncake"] = lambda: load_mooncake(traces_dir(shared) / MOONCAKE_FILE)
    return loaders


def _servegen(
    name: str, *, seed: int, shared: str | Path | None, start_s: float, duration_s: float | None
) -> list[LLMRequest]:
    pool, _, client = name.removeprefix("servegen-").partition(":")
    if pool not in SERVEGEN_POOLS or not client.isdigit():
        raise UnknownTraceError(
            f"unknown trace {name!r}; ServeGen names look like 'servegen-m-small:3' "
            f"(pools: {', '.join(SERVEGEN_POOLS)}); valid names: {', '.join(TRACE_NAMES)}"
        )
    folder = traces_dir(shared) / "servegen" / pool
    path = folder / f"chunk-{int(client)}-trace.csv"
    if not path.is_file():
        available = sorted(int(p.name.split("-")[1]) for p in folder.glob("chunk-*-trace.csv"))
        raise UnknownTraceError(
            f"ServeGen pool {pool} has no client {client} ({path.name} not found); "
            f"clients: {available[0]}..{available[-1]}"
            if available
            else f"{folder} is empty"
        )
    windows = load_servegen_client(path)
    return sample_servegen_requests(
        windows,
        seed=seed,
        start_s=start_s,
        duration_s=SERVEGEN_DEFAULT_DURATION_S if duration_s is None else duration_s,
    )
