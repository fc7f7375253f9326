"""A small, conformant-enough Kubernetes API server for tests.

No real kube-apiserver can run where tidal's tests run, so this package serves the Kubernetes REST
API from memory on loopback. The real ``kopf`` runtime, the real ``kubernetes`` Python client and the
real ``kubectl`` talk to it unmodified. Scope and limits: docs/testing.md.
"""

from tests.kubeapi.server import KubeApiServer

__all__ = ["KubeApiServer"]
