"""Golden files of the rendered serving objects: the engine Deployment per engine in unified mode, and
for prefill/decode disaggregation the prefill and decode Deployments, the router (Deployment,
ServiceAccount, Role, RoleBinding) and the entry Service. A change to what tidal renders shows up as a
diff of a reviewed file; every golden object is valid Kubernetes 1.33 (strict), and every container's
command line passes the pinned engine's or router's argument parser.

Regenerate after an intended change: ``TIDAL_UPDATE_GOLDEN=1 pytest tests/controllers/test_engine_pod_golden.py``
and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.controllers.engine_flags import problems
from tests.controllers.test_modeldeployment_render import (
    ACCELERATORS, DISAGGREGATED, SGLANG, SGLANG_PD, UID, UNIFIED,
)
from tidal.controllers.modeldeployment import ChildKey, render_children, render_deployment

GOLDEN = Path(__file__).parent / "golden"
UNIFIED_CASES = {
    "vllm-unified": (UNIFIED, ChildKey("unified", "h100-80gb")),
    "sglang-unified": (SGLANG, ChildKey("unified", "l4")),
}
PD_CASES = {"vllm-pd": DISAGGREGATED, "sglang-pd": SGLANG_PD}
CASES = sorted([*UNIFIED_CASES, *PD_CASES])
ROUTER_PARSER = {"vllm": "vllm-router", "sglang": "smg"}


def rendered(case: str) -> list[dict]:
    if case in UNIFIED_CASES:
        md, key = UNIFIED_CASES[case]
        return [render_deployment(md, UID, key, ACCELERATORS[key.accelerator], replicas=2)]
    md = PD_CASES[case]
    accelerator = md.spec.placement.accelerator_classes[0]
    replicas = {ChildKey("prefill", accelerator): 1, ChildKey("decode", accelerator): 2}
    children = render_children(md, UID, ACCELERATORS, replicas, kv_ttl_s=None)
    # Per-pool Services and the KV-policy ConfigMap are the same in both modes (covered elsewhere).
    per_pool = {f"{md.metadata.name}-prefill", f"{md.metadata.name}-decode"}
    return [c for c in children if c["kind"] != "ConfigMap"
            and not (c["kind"] == "Service" and c["metadata"]["name"] in per_pool)]


def dialect(case: str) -> str:
    md = UNIFIED_CASES[case][0] if case in UNIFIED_CASES else PD_CASES[case]
    return md.spec.engine.metrics_dialect


@pytest.mark.parametrize("case", CASES)
def test_rendered_objects_match_golden(case) -> None:
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("TIDAL_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump_all(rendered(case), sort_keys=False))
    assert rendered(case) == [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("case", CASES)
def test_golden_is_valid_kubernetes_and_valid_engine_cli(case) -> None:
    objects = [d for d in yaml.safe_load_all((GOLDEN / f"{case}.yaml").read_text()) if d]
    containers = 0
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
        if obj["kind"] != "Deployment":
            continue
        (container,) = obj["spec"]["template"]["spec"]["containers"]
        parser = ROUTER_PARSER[dialect(case)] if container["name"] == "router" else dialect(case)
        assert problems(parser, container["args"]) == [], (obj["metadata"]["name"], parser)
        containers += 1
    assert containers == (1 if case in UNIFIED_CASES else 3)  # engine; or prefill, decode and router
