"""Where trace files live: ``../shared/traces`` next to the repository, or inside the package.

The real traces are never copied into the repository; code finds them at
``<repo>/../shared/traces`` (override the ``shared`` folder with the
``TIDAL_SHARED`` environment variable). Only the small demo excerpt ships as
package data, so ``make demo`` works with no network and no ``../shared``.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from tidal.sim.traces.errors import TraceNotFoundError

SHARED_ENV_VAR = "TIDAL_SHARED"
DEMO_TRACE_FILE = "AzureLLMInferenceTrace_conv_excerpt.csv"


def _project_root() -> Path:
    """The nearest parent of this file that holds ``pyproject.toml``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return here.parents[3]


def shared_dir() -> Path:
    """``$TIDAL_SHARED`` if set, else ``<repo>/../shared`` (it may not exist)."""
    override = os.environ.get(SHARED_ENV_VAR)
    return Path(override) if override else _project_root().parent / "shared"


def traces_dir(shared: str | Path | None = None) -> Path:
    """The ``traces`` folder of the shared data, or a clear error when it is absent."""
    base = Path(shared) if shared is not None else shared_dir()
    folder = base / "traces"
    if not folder.is_dir():
        raise TraceNotFoundError(
            f"shared traces folder not found at {folder}. Real traces are read from "
            f"../shared/traces next to the repository (set {SHARED_ENV_VAR} to the folder "
            "that holds 'traces/'); the 'demo' trace needs neither and ships in the package."
        )
    return folder


def demo_trace_resource() -> Traversable:
    """The bundled Azure LLM conv excerpt, as package data (see tidal/data/traces/README.md)."""
    return resources.files("tidal").joinpath("data", "traces", DEMO_TRACE_FILE)
