"""The generated CRDs: fresh on main, structural, accepted by Kubernetes' own schema, and in step with the models."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import pytest
import yaml
from pydantic import Field, create_model
from typer.testing import CliRunner

from tidal.api.crdgen import crd_for, render_crds, stale_crds
from tidal.api.modeldeployment import ModelDeployment, ModelDeploymentSpec
from tidal.api.registry import KINDS
from tidal.cli import app

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
KUBERNETES_VERSION = "1.33.0"


def _nodes(schema: Any, path: str = ""):
    if isinstance(schema, dict):
        yield path, schema
        for key in ("properties",):
            for name, sub in (schema.get(key) or {}).items():
                yield from _nodes(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                yield from _nodes(schema[key], f"{path}[{key}]")


def test_committed_crds_are_fresh() -> None:
    assert stale_crds(CRD_DIR) == []


def test_check_command_passes_on_main() -> None:
    result = CliRunner().invoke(app, ["crds", "--check", "-o", str(CRD_DIR), "--reference", str(ROOT / "docs/reference.md")])
    assert result.exit_code == 0, result.output


def test_changing_a_model_makes_check_fail(tmp_path: Path) -> None:
    """A model edited without regenerating must be caught, naming the file."""
    shutil.copytree(CRD_DIR, tmp_path / "crds")
    changed_spec = create_model(
        "ModelDeploymentSpec", __base__=ModelDeploymentSpec,
        newKnob=(int, Field(default=3, ge=0, description="A field added without regenerating.")),
    )
    changed_kind = create_model("ModelDeployment", __base__=ModelDeployment, spec=(changed_spec, ...))
    kinds = tuple(dataclasses.replace(k, model=changed_kind) if k.kind == "ModelDeployment" else k for k in KINDS)
    problems = stale_crds(tmp_path / "crds", kinds)
    assert len(problems) == 1 and "tidal.dev_modeldeployments.yaml" in problems[0]


def test_check_command_names_the_stale_file(tmp_path: Path) -> None:
    shutil.copytree(CRD_DIR, tmp_path / "crds")
    target = tmp_path / "crds" / "tidal.dev_fairsharepolicies.yaml"
    target.write_text(target.read_text().replace("tenant names must be unique", "tenant names may repeat"))
    (tmp_path / "crds" / "tidal.dev_leftovers.yaml").write_text("{}\n")
    result = CliRunner().invoke(app, ["crds", "--check", "-o", str(tmp_path / "crds"), "--reference", str(ROOT / "docs/reference.md")])
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "tidal.dev_fairsharepolicies.yaml" in flat and "tidal.dev_leftovers.yaml" in flat


def test_stale_reference_fails_check(tmp_path: Path) -> None:
    reference = tmp_path / "reference.md"
    reference.write_text("old\n")
    result = CliRunner().invoke(app, ["crds", "--check", "-o", str(CRD_DIR), "--reference", str(reference)])
    assert result.exit_code == 1 and "reference.md" in result.output


def test_write_then_check_round_trips(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["-o", str(tmp_path / "c"), "--reference", str(tmp_path / "r.md")]
    assert runner.invoke(app, ["crds", *args]).exit_code == 0
    assert runner.invoke(app, ["crds", "--check", *args]).exit_code == 0


@pytest.mark.parametrize("name", sorted(render_crds()))
def test_crd_validates_as_kubernetes_object(name: str) -> None:
    doc = yaml.safe_load((CRD_DIR / name).read_text())
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_schema_is_structural(info) -> None:
    schema = crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _nodes(schema):
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if path.startswith(".spec") and "properties" not in node and path.count("[") == 0:
            assert node.get("description"), f"{path} has no description"


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_cel_rules_compile(info) -> None:
    schema = crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    env = celpy.Environment()
    rules = [r for _, node in _nodes(schema) for r in node.get("x-kubernetes-validations", [])]
    for rule in rules:
        env.compile(rule["rule"])
        assert rule["message"]


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_printer_columns_point_at_schema_fields(info) -> None:
    crd = crd_for(info)
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        node: Any = {"properties": {**schema["properties"], "metadata": {"properties": {"creationTimestamp": {}}}}}
        # A filter (`conditions[?(@.type=="Ready")]`) selects list items: descend into `items`.
        path = re.sub(r"\[\?\(@\.[^)]*\)\]", "[]", column["jsonPath"])
        for part in path.strip(".").split("."):
            node = (node.get("properties") or {}).get(part.removesuffix("[]"))
            assert node is not None, f"{column['name']}: {column['jsonPath']} is not in the schema"
            if part.endswith("[]"):
                node = node["items"]


@pytest.mark.parametrize("kind", ["ModelDeployment", "ServerlessFunction"])
def test_workloads_show_ready_and_reason_columns(kind: str) -> None:
    info = next(k for k in KINDS if k.kind == kind)
    columns = {c["name"]: c["jsonPath"] for c in crd_for(info)["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Reason"] == '.status.conditions[?(@.type=="Ready")].reason'
    if kind == "ModelDeployment":
        names = list(columns)
        assert names.index("SLO-Target") == names.index("SLO") + 1, "the target next to the attainment"


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_conditions_are_a_map_keyed_by_type(info) -> None:
    schema = crd_for(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"], "a map key must be required (structural schema rule)"


def test_short_names_and_category() -> None:
    names = {info.kind: crd_for(info)["spec"]["names"] for info in KINDS}
    assert [n["shortNames"] for n in names.values()] == [["mdep"], ["sfn"], ["acc"], ["fsp"]]
    assert all(n["categories"] == ["tidal"] for n in names.values())


def test_modeldeployment_has_scale_subresource() -> None:
    info = next(k for k in KINDS if k.kind == "ModelDeployment")
    sub = crd_for(info)["spec"]["versions"][0]["subresources"]
    assert sub["status"] == {} and sub["scale"]["specReplicasPath"] == ".spec.replicas"
