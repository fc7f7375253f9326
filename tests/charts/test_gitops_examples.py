"""examples/gitops/: the Argo CD Application and the Flux HelmRelease point at the chart that exists
here, and the values they carry pass the chart's schema and render valid objects."""

from __future__ import annotations

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
