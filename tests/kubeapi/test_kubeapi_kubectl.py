"""The test API server driven by the real kubectl (installed into .tools/ by scripts/install_tools.sh)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import textwrap

import pytest

from tests.kubeapi import KubeApiServer

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBECTL = REPO_ROOT / ".tools" / "kubectl"
# kubectl against a loopback server answers in milliseconds; this bounds a hung call.
KUBECTL_TIMEOUT_S = 30

CRD = textwrap.dedent("""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.example.dev
    spec:
      group: example.dev
      scope: Namespaced
      names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
      versions:
      - name: v1
        served: true
        storage: true
        subresources: {status: {}}
        additionalPrinterColumns:
        - {name: Size, type: string, jsonPath: .spec.size}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                properties:
                  size: {type: string, enum: [small, large]}
    """)

WIDGET = textwrap.dedent("""\
    apiVersion: example.dev/v1
    kind: Widget
    metadata: {name: w1}
    spec: {size: SIZE}
    """)

DEPLOYMENT = textwrap.dedent("""\
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: web, labels: {app: web}}
    spec:
      replicas: 2
      selector: {matchLabels: {app: web}}
      template:
        metadata: {labels: {app: web}}
        spec:
          containers:
          - {name: main, image: "engine:1"}
    SIDECAR""")


@pytest.fixture
def kubectl(kubeconfig: pathlib.Path, tmp_path: pathlib.Path):
    if not (KUBECTL.is_file() and os.access(KUBECTL, os.X_OK)):
        pytest.fail(f"{KUBECTL} is missing: run scripts/install_tools.sh (make test does it)")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBECACHEDIR": str(tmp_path / "kube-cache"),
           "HOME": str(tmp_path)}

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(KUBECTL), *args], check=False, input=stdin, capture_output=True, text=True, env=env,
            timeout=KUBECTL_TIMEOUT_S,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    return run


def test_kubectl_apply_get_with_short_names_and_delete(kubectl, kube_api: KubeApiServer) -> None:
    assert "created" in kubectl("apply", "-f", "-", stdin=CRD).stdout
    assert kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "small")).stdout.strip() == (
        "widget.example.dev/w1 created")

    table = kubectl("get", "wg").stdout.split()
    assert table[:3] == ["NAME", "SIZE", "AGE"] and table[3:5] == ["w1", "small"]

    # Client-side apply of a change sends a merge patch computed from last-applied-configuration.
    assert "configured" in kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "large")).stdout
    assert kubectl("get", "widget", "w1", "-o", "jsonpath={.spec.size}").stdout == "large"

    # The server validates against the CRD schema and kubectl shows its message.
    invalid = kubectl("apply", "-f", "-", stdin=WIDGET.replace("SIZE", "huge"), check=False)
    assert invalid.returncode != 0 and "spec.size" in invalid.stderr

    # Server-side apply of a value another manager set is a conflict, as on a real cluster...
    conflict = kubectl("apply", "--server-side", "-f", "-", stdin=WIDGET.replace("SIZE", "small"),
                       check=False)
    assert conflict.returncode != 0
    assert 'conflict with "kubectl-client-side-apply": .spec.size' in conflict.stderr
    # ...until forced.
    assert "serverside-applied" in kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", "-",
        stdin=WIDGET.replace("SIZE", "small")).stdout
    applied = json.loads(kubectl("get", "widgets.example.dev", "w1", "-o", "json",
                                 "--show-managed-fields").stdout)
    assert applied["spec"]["size"] == "small"
    assert "kubectl" in {m["manager"] for m in applied["metadata"]["managedFields"]}

    assert 'widget.example.dev "w1" deleted' in kubectl("delete", "wg", "w1").stdout
    assert "No resources found" in kubectl("get", "wg").stderr
    kubectl("delete", "-f", "-", stdin=CRD)
    missing = kubectl("get", "wg", check=False)
    # Either discovery no longer lists it, or (cached discovery) the server answers 404.
    assert missing.returncode != 0
    assert ("doesn't have a resource type" in missing.stderr
            or "could not find the requested resource" in missing.stderr)


def test_kubectl_strategic_apply_scale_and_builtin_short_names(kubectl, kube_api: KubeApiServer) -> None:
    sidecar = "      - {name: side, image: \"proxy:1\"}\n"
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("SIDECAR", sidecar))
    # Dropping the sidecar from the manifest removes it (a strategic merge patch with $patch: delete).
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("SIDECAR", ""))
    names = kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}").stdout
    assert names == "main"

    assert "scaled" in kubectl("scale", "deploy/web", "--replicas=4").stdout
    assert kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "4"

    kubectl("create", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n")
    assert "team-a" in kubectl("get", "ns").stdout
    kubectl("delete", "ns", "team-a")
    assert "team-a" not in kubectl("get", "ns").stdout

    verbs = {(r.resource, r.verb) for r in kube_api.audit.records() if r.user_agent.startswith("kubectl")}
    assert {("deployments", "create"), ("deployments", "patch"), ("deployments", "get")} <= verbs


def test_kubectl_apply_of_every_example_works_on_a_fresh_cluster(kubectl) -> None:
    """`kubectl apply -f examples/<file>` right after installing the CRDs (docs/install.md): no
    example may need a namespace that does not exist yet."""
    kubectl("apply", "-f", str(REPO_ROOT / "crds"))
    kubectl("wait", "--for", "condition=established", "crd", "--all", "--timeout=30s")
    for example in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        kubectl("apply", "-f", str(example))
    listed = kubectl("get", "tidal", "-A", "-o", "name").stdout.split()
    assert any(name.startswith("modeldeployment") for name in listed), listed
