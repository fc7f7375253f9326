"""deploy/: the plain `kubectl apply` manifests are exactly what scripts/render_manifests.py renders
from the chart, they validate, and they apply in two steps (CRDs first)."""

from __future__ import annotations

import importlib.util

import yaml

from tests.charts.chart_support import FOREIGN_KINDS, REPO_ROOT, helm, validate

DEPLOY = REPO_ROOT / "deploy"


def load_script():
    spec = importlib.util.spec_from_file_location("render_manifests", REPO_ROOT / "scripts" / "render_manifests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def objects(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_deploy_is_not_stale():
    script = load_script()
    problems = script.stale_files(script.render(helm()))
    assert not problems, "\n".join(problems) + "\nRun `python scripts/render_manifests.py` and commit deploy/."


def test_stale_check_notices_a_hand_edit(tmp_path, monkeypatch):
    script = load_script()
    rendered = script.render(helm())
    monkeypatch.setattr(script, "DEPLOY_DIR", tmp_path)
    monkeypatch.setattr(script, "REPO_ROOT", tmp_path)
    moved = {tmp_path / p.relative_to(DEPLOY): t for p, t in rendered.items()}
    for path, text in moved.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert script.stale_files(moved) == []
    (tmp_path / "tidal.yaml").write_text((tmp_path / "tidal.yaml").read_text().replace("--interval=15", "--interval=5"))
    (tmp_path / "extra.yaml").write_text("kind: ConfigMap\n")
    assert script.stale_files(moved) == ["tidal.yaml: differs from the chart",
                                         "extra.yaml: not produced by the chart (delete it)"]


def test_deploy_objects_validate_and_carry_no_helm_bookkeeping():
    for path in [DEPLOY / "tidal.yaml", DEPLOY / "crds" / "kopf-peering.yaml"]:
        for obj in objects(path):
            if (obj["apiVersion"], obj["kind"]) not in FOREIGN_KINDS:
                validate(obj)
            metadata = obj["metadata"]
            assert "helm.sh/chart" not in metadata.get("labels", {})
            assert not [k for k in metadata.get("annotations", {}) if k.startswith("helm.sh/")]
            assert metadata.get("labels", {}).get("app.kubernetes.io/managed-by") == "kubectl"


def test_apply_order_crds_first_namespace_first():
    crds = objects(DEPLOY / "crds" / "kopf-peering.yaml")
    assert {o["kind"] for o in crds} == {"CustomResourceDefinition"}
    rest = objects(DEPLOY / "tidal.yaml")
    assert "CustomResourceDefinition" not in {o["kind"] for o in rest}
    assert rest[0]["kind"] == "Namespace" and rest[0]["metadata"]["name"] == "tidal-system"
    namespaced = [o for o in rest if "namespace" in o["metadata"]]
    assert {o["metadata"]["namespace"] for o in namespaced} == {"tidal-system"}
    # The peering object needs its CRD, which is why deploy/crds/ is applied in the first step.
    assert {o["kind"] for o in rest if o["apiVersion"] == "kopf.dev/v1"} == {"ClusterKopfPeering"}
    assert {c["spec"]["names"]["kind"] for c in crds} >= {"ClusterKopfPeering"}
