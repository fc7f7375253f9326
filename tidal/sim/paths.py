"""Where the shared traces and calibration data live (``../shared`` next to the repo)."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV_VAR = "TIDAL_SHARED"


def project_root() -> Path:
    """The repository root: the nearest parent of this file holding ``pyproject.toml``."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists():
            return parent
    return here.parents[2]


def shared_dir() -> Path:
    """``$TIDAL_SHARED`` if set, else ``<repo>/../shared``."""
    env = os.environ.get(SHARED_ENV_VAR)
    return Path(env) if env else project_root().parent / "shared"
