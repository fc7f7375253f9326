"""examples/gitops/: the Argo CD Application and the Flux HelmRelease point at the chart that exists
here, and the values they carry pass the chart's schema and render valid objects."""

from __future__ import annotations

import pytest
import yaml

from tests.charts.chart_support import CHART_DIR, FOREIGN_KINDS, REPO_ROOT, render, validate

GITOPS = REPO_ROOT / "examples" / "gitops"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((GITOPS / name).read_text()) if d]


def render_with(values: dict, tmp_path) -> list[dict]:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    objects = render(values_file)
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) not in FOREIGN_KINDS:
            validate(obj)
    return objects


def test_argocd_application_points_at_the_chart(tmp_path):
    (app,) = documents("argocd-application.yaml")
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    assert (REPO_ROOT / source["path"] / "Chart.yaml").exists()
    assert app["spec"]["destination"]["namespace"] == "tidal-system"
    assert "CreateNamespace=true" in app["spec"]["syncPolicy"]["syncOptions"]
    objects = render_with(source["helm"]["valuesObject"], tmp_path)
    assert {"ServiceMonitor", "ConfigMap", "Deployment"} <= {o["kind"] for o in objects}


def test_flux_helmrelease_points_at_the_chart(tmp_path):
    docs = {d["kind"]: d for d in documents("flux-helmrelease.yaml")}
    assert set(docs) == {"Namespace", "GitRepository", "HelmRelease"}
    release, source = docs["HelmRelease"], docs["GitRepository"]
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    chart = release["spec"]["chart"]["spec"]
    assert (REPO_ROOT / chart["chart"] / "Chart.yaml").exists()
    assert chart["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"],
                                  "namespace": source["metadata"]["namespace"]}
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    assert release["metadata"]["namespace"] == docs["Namespace"]["metadata"]["name"]
    validate(docs["Namespace"])
    render_with(release["spec"]["values"], tmp_path)


def test_both_examples_carry_the_same_values():
    (app,) = documents("argocd-application.yaml")
    release = next(d for d in documents("flux-helmrelease.yaml") if d["kind"] == "HelmRelease")
    assert app["spec"]["source"]["helm"]["valuesObject"] == release["spec"]["values"]
    assert CHART_DIR.name == "tidal"


# --- ordering and health checks -----------------------------------------------------------------

HEALTH_KEY = "resource.customizations.health.tidal.dev_{kind}"


def _health(kind: str, obj: dict) -> tuple[str, str]:
    """Run the example's Argo CD health script for ``kind`` on ``obj`` in Lua 5.1 (gopher-lua's
    language version), as Argo CD does: the object is the global ``obj``; the script returns a table."""
    from lupa import lua51

    (config_map,) = documents("argocd-health-checks.yaml")
    script = config_map["data"][HEALTH_KEY.format(kind=kind)]
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return result["status"], result["message"]


def _workload(conditions: list[dict] | None, generation: int = 2, observed: int = 2) -> dict:
    obj: dict = {"metadata": {"name": "m", "generation": generation}}
    if conditions is not None:
        obj["status"] = {"observedGeneration": observed, "conditions": conditions}
    return obj


def _cond(kind: str, status: str, reason: str, message: str = "msg") -> dict:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_argocd_health_checks_cover_every_tidal_kind() -> None:
    from tidal.api.registry import KINDS_BY_NAME

    (config_map,) = documents("argocd-health-checks.yaml")
    assert set(config_map["data"]) == {HEALTH_KEY.format(kind=k) for k in KINDS_BY_NAME}


@pytest.mark.parametrize("kind", ["ModelDeployment", "ServerlessFunction"])
def test_argocd_health_of_workloads(kind: str) -> None:
    assert _health(kind, _workload(None))[0] == "Progressing"
    assert _health(kind, _workload([_cond("Ready", "True", "Ready")], observed=1))[0] == "Progressing"
    assert _health(kind, _workload([_cond("Ready", "False", "ReplicasStarting")]))[0] == "Progressing"
    assert _health(kind, _workload([_cond("Ready", "True", "Ready", "2/2 ready")])) == ("Healthy", "2/2 ready")
    degraded = _workload([_cond("Ready", "True", "Ready"), _cond("Degraded", "True", "ApplyFailed", "422")])
    assert _health(kind, degraded) == ("Degraded", "ApplyFailed: 422")
    invalid = _workload([_cond("Ready", "False", "InvalidSpec", "spec.x: bad")])
    assert _health(kind, invalid) == ("Degraded", "InvalidSpec: spec.x: bad")


def test_argocd_health_of_cluster_kinds() -> None:
    acc = {"metadata": {"name": "h100"}}
    assert _health("AcceleratorClass", acc)[0] == "Progressing"
    for reason, expected in (("DevicesFree", "Healthy"), ("AllDevicesUsed", "Healthy"),
                             ("NoMatchingNodes", "Degraded"), ("InvalidSpec", "Degraded")):
        status = "True" if reason == "DevicesFree" else "Unknown" if reason == "InvalidSpec" else "False"
        acc["status"] = {"conditions": [_cond("Available", status, reason)]}
        assert _health("AcceleratorClass", acc)[0] == expected, reason
    fsp = {"metadata": {"name": "p"}, "status": {"conditions": [
        _cond("CapacityLimited", "True", "DemandExceedsCapacity", "a: 2/4 GPUs"),
        _cond("Degraded", "False", "AsExpected", "")]}}
    assert _health("FairSharePolicy", fsp) == ("Healthy", "a: 2/4 GPUs")
    fsp["status"]["conditions"].append(_cond("GuaranteesMet", "False", "GuaranteesExceedCapacity", "12 > 8"))
    assert _health("FairSharePolicy", fsp) == ("Degraded", "GuaranteesExceedCapacity: 12 > 8")


def test_gitops_examples_deploy_workloads_after_the_crds() -> None:
    (workloads,) = [d for d in documents("argocd-workloads.yaml")]
    assert workloads["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "1"
    assert "SkipDryRunOnMissingResource=true" in workloads["spec"]["syncPolicy"]["syncOptions"]
    (tidal_app,) = documents("argocd-application.yaml")
    assert int(tidal_app["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0")) < 1
    flux = {d["metadata"]["name"]: d for d in documents("flux-workloads.yaml")}
    assert flux["tidal-workloads"]["spec"]["dependsOn"] == [{"name": "tidal"}]
    assert flux["tidal"]["spec"]["wait"] is True
