"""The end-to-end suite runs only against a real cluster named by KUBECONFIG (see docs/operator.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REACHABLE_TIMEOUT_S = 5.0
"""How long to wait for the cluster's /version before skipping."""


def _reachable(kubeconfig: str) -> str | None:
    """None when the API server answers; otherwise why not."""
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=kubeconfig)
    except Exception as exc:  # noqa: BLE001 - any kubeconfig problem means "not usable"
        return f"KUBECONFIG={kubeconfig} cannot be loaded ({exc})"
    try:
        client.VersionApi(api).get_code(_request_timeout=REACHABLE_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        return f"the cluster in KUBECONFIG={kubeconfig} is not reachable ({type(exc).__name__})"
    finally:
        api.close()
    return None


@pytest.fixture(scope="session")
def cluster_kubeconfig() -> str:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.skip("e2e: set KUBECONFIG to a real cluster (e.g. `kind create cluster`; see docs/operator.md)")
    first = kubeconfig.split(os.pathsep)[0]
    if not Path(first).is_file():
        pytest.skip(f"e2e: KUBECONFIG={kubeconfig} is not a file")
    why = _reachable(first)
    if why:
        pytest.skip(f"e2e: {why}")
    return first


@pytest.fixture(scope="session")
def cluster_api(cluster_kubeconfig: str) -> Iterator[Any]:
    from kubernetes import config

    api = config.new_client_from_config(config_file=cluster_kubeconfig)
    try:
        yield api
    finally:
        api.close()
