"""Golden files of the rendered engine Deployments, one per engine in unified mode. A change to the
rendered pod shows up as a diff of a reviewed file; every golden is also valid Kubernetes 1.33 (strict)
and passes the pinned engine release's argument parser.

Regenerate after an intended change: ``TIDAL_UPDATE_GOLDEN=1 pytest tests/controllers/test_engine_pod_golden.py``
and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.controllers.engine_flags import problems
from tests.controllers.test_modeldeployment_render import ACCELERATORS, SGLANG, UID, UNIFIED
from tidal.controllers.modeldeployment import ChildKey, render_deployment

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "vllm-unified": (UNIFIED, ChildKey("unified", "h100-80gb")),
    "sglang-unified": (SGLANG, ChildKey("unified", "l4")),
}


def rendered(case: str) -> dict:
    md, key = CASES[case]
    return render_deployment(md, UID, key, ACCELERATORS[key.accelerator], replicas=2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_deployment_matches_golden(case) -> None:
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("TIDAL_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(rendered(case), sort_keys=False))
    assert rendered(case) == yaml.safe_load(path.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_is_valid_kubernetes_and_valid_engine_cli(case) -> None:
    deployment = yaml.safe_load((GOLDEN / f"{case}.yaml").read_text())
    kubernetes_validate.validate(deployment, "1.33.0", strict=True)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    engine = CASES[case][0].spec.engine.metrics_dialect
    assert problems(engine, container["args"]) == []
