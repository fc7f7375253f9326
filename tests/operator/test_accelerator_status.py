"""The operator's AcceleratorClass index carries the inventory's free GPUs to placement."""

from __future__ import annotations

from tidal.core.modeldeployment import accelerator_profile
from tidal.operator.modeldeployment_controller import accelerator_from_body


def test_the_index_reads_free_gpus_from_the_class_status() -> None:
    """The operator's index parses status.free (its inventory loop writes it); no status, or no
    matching node, is unknown."""
    body = {"apiVersion": "tidal.dev/v1alpha1", "kind": "AcceleratorClass", "metadata": {"name": "h100"},
            "spec": {"memory": "80Gi", "peakTflops": 989, "memoryBandwidthGbps": 3350, "hourlyCost": 4.0}}
    status = {"nodes": 2, "allocatable": 16, "used": 13, "free": 3, "conditions": []}
    assert accelerator_profile(accelerator_from_body(body)).free_gpus is None  # type: ignore[arg-type]
    with_status = accelerator_from_body({**body, "status": status})
    assert with_status is not None and accelerator_profile(with_status).free_gpus == 3
    no_nodes = accelerator_from_body({**body, "status": {**status, "nodes": 0, "free": 0}})
    assert accelerator_profile(no_nodes).free_gpus is None  # type: ignore[arg-type]
    garbled = accelerator_from_body({**body, "status": {"free": "lots"}})
    assert garbled is not None and accelerator_profile(garbled).free_gpus is None
