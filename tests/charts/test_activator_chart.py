"""The chart's activator: Deployment (>= 2 replicas, same image, `tidal activator`), Service, PDB,
its own least-privilege RBAC, and the operator's flag and EndpointSlice grants."""

from __future__ import annotations

from tests.charts.chart_support import CHART_DIR, by_kind, render, run_helm
from tests.charts.rbac_rules import Grant, grants

VALUES = CHART_DIR / "ci" / "activator-values.yaml"


def named(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: rendered {len(found)}"
    return found[0]


def test_activator_is_off_by_default() -> None:
    objects = render()
    assert not [o for o in objects if o["metadata"]["name"].endswith("-activator")]
    operator = named(objects, "Deployment", "tidal")
    assert not any(a.startswith("--activator-service") for a in operator["spec"]["template"]["spec"]["containers"][0]["args"])


def test_activator_deployment_service_and_pdb() -> None:
    objects = render(VALUES)
    deployment = named(objects, "Deployment", "tidal-activator")
    operator = named(objects, "Deployment", "tidal")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert container["image"] == operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert container["args"][:2] == ["activator", "--port=8012"]
    assert "--hold-timeout=300" in container["args"] and "--queue-limit=10000" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["serviceAccountName"] == "tidal-activator"
    assert pod["terminationGracePeriodSeconds"] == 310
    selector = deployment["spec"]["selector"]["matchLabels"]
    # Neither the operator's Deployment nor its Service selects the activator pods.
    assert selector != operator["spec"]["selector"]["matchLabels"]
    assert named(objects, "Service", "tidal-metrics")["spec"]["selector"] != selector
    service = named(objects, "Service", "tidal-activator")
    assert service["spec"]["selector"] == selector and service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = named(objects, "PodDisruptionBudget", "tidal-activator")
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"] == selector
    assert "--activator-service=tidal-system/tidal-activator" in operator["spec"]["template"]["spec"]["containers"][0]["args"]


def test_activator_rbac_is_least_privilege() -> None:
    objects = render(VALUES)
    assert grants(objects, "tidal-activator", "tidal-system") == {
        Grant(None, "", "services", "get"), Grant(None, "", "pods", "list"),
        Grant(None, "tidal.dev", "serverlessfunctions", "patch"), Grant(None, "tidal.dev", "modeldeployments", "patch")}
    operator = grants(objects, "tidal", "tidal-system")
    assert Grant("tidal-system", "discovery.k8s.io", "endpointslices", "list") in operator
    assert {Grant(None, "discovery.k8s.io", "endpointslices", v) for v in ("create", "patch", "delete")} <= operator
    namespaced = render(VALUES, sets=("watchNamespaces={team-a}",))
    assert grants(namespaced, "tidal-activator", "tidal-system") == {
        Grant("team-a", "", "services", "get"), Grant("team-a", "", "pods", "list"),
        Grant("team-a", "tidal.dev", "serverlessfunctions", "patch"),
        Grant("team-a", "tidal.dev", "modeldeployments", "patch")}


def test_one_activator_replica_is_refused() -> None:
    result = run_helm("template", "tidal", str(CHART_DIR), "-f", str(VALUES), "--set",
                      "activator.replicaCount=1", check=False)
    assert result.returncode != 0 and "activator" in result.stderr and "replicaCount" in result.stderr
