"""Shared pytest fixtures.

Sections are independent; add new fixtures in their own section.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.kubeapi import KubeApiServer

# Property tests check properties, not speed: hypothesis' default 200 ms deadline per example turns
# a loaded 2-core machine into a failure (seen: 368 ms for a 0.1 ms example). Speed lives in bench/.
settings.register_profile("tidal", deadline=None)
settings.load_profile("tidal")

# --- test Kubernetes API server (tests/kubeapi) ------------------------------------------------


@pytest.fixture
def kube_api() -> Iterator[KubeApiServer]:
    """A fresh in-memory Kubernetes API server on 127.0.0.1 and a free port."""
    with KubeApiServer() as server:
        yield server


@pytest.fixture
def kubeconfig(kube_api: KubeApiServer, tmp_path: pathlib.Path) -> pathlib.Path:
    """A kubeconfig file pointing at ``kube_api`` (for kubectl, kopf and the kubernetes client).

    Code that reads KUBECONFIG when ``kubernetes`` is imported must have it set before the
    import; prefer passing this path explicitly (``new_client_from_config(config_file=...)``).
    """
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig: pathlib.Path) -> Iterator[object]:
    """A ``kubernetes.client.ApiClient`` bound to ``kube_api`` (no global configuration touched)."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client
    finally:
        client.close()
