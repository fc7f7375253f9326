"""Shared helpers for the chart, plain-manifest and Dockerfile tests: find tools, render, validate."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "tidal"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
KUBERNETES_VERSION = "1.33.0"
"""The Kubernetes version whose schemas every rendered object must meet (kubectl 1.33 in .tools)."""

INSTALL_HINT = "run `PYTHON=.venv/bin/python bash scripts/install_tools.sh` (or `make tools`)"

# Kinds from other projects' CRDs: kubernetes-validate has no schema for them, so the tests check
# them structurally instead (see test_servicemonitor_structure).
FOREIGN_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
                 ("kopf.dev/v1", "ClusterKopfPeering"),
                 ("kopf.dev/v1", "KopfPeering")}


def helm() -> Path:
    """Path to helm; fails (never skips) when the project's tool installer has not run."""
    path = Path(os.environ.get("TIDAL_HELM", REPO_ROOT / ".tools" / "helm"))
    if not path.exists():
        pytest.fail(f"helm not found at {path}: {INSTALL_HINT}", pytrace=False)
    return path


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(helm()), *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return result


@functools.lru_cache(maxsize=None)
def _render_cached(values_files: tuple[str, ...], sets: tuple[str, ...], namespace: str) -> str:
    args = ["template", "tidal", str(CHART_DIR), "--namespace", namespace]
    for values_file in values_files:
        args += ["-f", values_file]
    for assignment in sets:
        args += ["--set", assignment]
    return run_helm(*args).stdout


def render(*values_files: Path, sets: tuple[str, ...] = (), namespace: str = "tidal-system") -> list[dict]:
    """Objects `helm template` renders (hooks included; CRDs from crds/ excluded, as Helm does)."""
    text = _render_cached(tuple(str(v) for v in values_files), tuple(sets), namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def validate(obj: dict) -> None:
    """Validate one object against the Kubernetes schema, failing with its kind and name."""
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = obj.get("metadata", {}).get("name")
        pytest.fail(f"{obj.get('kind')}/{name} is invalid for Kubernetes {KUBERNETES_VERSION}: {exc}", pytrace=False)


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]
