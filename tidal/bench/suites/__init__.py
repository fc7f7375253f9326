"""The suites ``tidal bench`` runs besides the policy comparison (``--suites``): KV-cache TTL,
placement across accelerator classes, fair share and serverless keep-alive. Each is a function of
:class:`SuiteOptions` returning a :class:`SuiteResult`; the bench/*.py scripts call the same ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Optional

from tidal.bench.suites.result import SuiteInputError, SuiteOptions, SuiteResult, Target
from tidal.sim.traces.errors import TraceNotFoundError
from tidal.sim.traces.locations import traces_dir as shared_traces_dir
from tidal.sim.traces.registry import AZURE_FUNCTIONS_FOLDER, AZURE_LLM_FILES, MOONCAKE_FILE

POLICIES_SUITE = "policies"
"""The policy comparison on real traces (tidal/bench/run.py), the suite ``tidal bench`` began as."""


def _kv_ttl(options: SuiteOptions) -> SuiteResult:
    from tidal.bench.suites import kv_ttl

    return kv_ttl.run(options)


def _placement(options: SuiteOptions) -> SuiteResult:
    from tidal.bench.suites import placement

    return placement.run(options)


def _fair_share(options: SuiteOptions) -> SuiteResult:
    from tidal.bench.suites import fair_share

    return fair_share.run(options)


def _keep_alive(options: SuiteOptions) -> SuiteResult:
    from tidal.bench.suites import keep_alive

    return keep_alive.run(options)


SUITES: dict[str, Callable[[SuiteOptions], SuiteResult]] = {
    "kv-ttl": _kv_ttl,
    "placement": _placement,
    "fair-share": _fair_share,
    "keep-alive": _keep_alive,
}
"""Suite name -> runner, in the order ``tidal bench`` runs them (each imported when it runs)."""

SUITE_NAMES = (POLICIES_SUITE, *SUITES)
"""Every name ``--suites`` accepts."""

SUITE_INPUTS: dict[str, tuple[str, ...]] = {
    "kv-ttl": (MOONCAKE_FILE,),
    "placement": (AZURE_LLM_FILES["azure-conv"], AZURE_LLM_FILES["azure-code"]),
    "fair-share": ("servegen/m-mid",),
    "keep-alive": (AZURE_FUNCTIONS_FOLDER,),
}
"""What each suite reads, relative to the traces folder (the agent workload is synthetic)."""


def check_inputs(names: Iterable[str], traces_dir: Optional[Path] = None) -> None:
    """Raise :class:`SuiteInputError` naming every input the chosen suites miss, before any runs."""
    wanted = {name: SUITE_INPUTS.get(name, ()) for name in names}
    if not any(wanted.values()):
        return
    try:
        folder = traces_dir if traces_dir is not None else shared_traces_dir()
    except TraceNotFoundError as exc:
        raise SuiteInputError(str(exc)) from None
    missing = [f"{name} needs {folder / path}" for name, paths in wanted.items() for path in paths
               if not (folder / path).exists()]
    if missing:
        raise SuiteInputError("; ".join(missing) + " (give a folder laid out like ../shared/traces)")

__all__ = ["POLICIES_SUITE", "SUITES", "SUITE_INPUTS", "SUITE_NAMES", "check_inputs", "SuiteInputError", "SuiteOptions", "SuiteResult", "Target"]
