"""Every example in examples/ passes both the models and the generated CRD schema with CEL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tidal.api.crdgen import crd_for
from tidal.api.registry import API_VERSION, KINDS_BY_NAME
from tidal.api.validation import parse_resource
from tidal.cli import app
from tests.api.crd_schema import validate_against_crd

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = [
    pytest.param(doc, id=f"{path.name}:{doc['metadata']['name']}")
    for path in sorted(EXAMPLES.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
]


def test_every_kind_and_feature_has_an_example() -> None:
    docs = [p.values[0] for p in DOCS]
    kinds = {d["kind"] for d in docs}
    assert kinds == set(KINDS_BY_NAME)
    mdeps = [d["spec"] for d in docs if d["kind"] == "ModelDeployment"]
    assert {m.get("mode", "unified") for m in mdeps} == {"unified", "disaggregated"}
    assert any(m.get("autoscaling", {}).get("scaleToZero") for m in mdeps)
    assert sum(d["kind"] == "AcceleratorClass" for d in docs) >= 2
    assert any(len(d["spec"]["tenants"]) >= 3 for d in docs if d["kind"] == "FairSharePolicy")


@pytest.mark.parametrize("doc", DOCS)
def test_example_valid_in_models(doc) -> None:
    assert doc["apiVersion"] == API_VERSION
    parse_resource(doc)


@pytest.mark.parametrize("doc", DOCS)
def test_example_valid_in_crd_schema(doc) -> None:
    assert validate_against_crd(crd_for(KINDS_BY_NAME[doc["kind"]]), doc) == []


def test_validate_command(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", *map(str, sorted(EXAMPLES.glob("*.yaml")))])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "modeldeployment-unified.yaml").read_text().replace("maxReplicas: 8", "maxReplicas: 0")
    )
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "spec.pools.unified.maxReplicas" in " ".join(result.output.split())
