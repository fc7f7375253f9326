"""Simulated GPU cluster: nodes carrying an accelerator class, pods with a real lifecycle.

Lifecycle: ``Pending`` while no node has enough free GPUs -> scheduled ->
``Starting`` (image pull, weights load, engine start; see coldstart.py) ->
``Ready`` (receives requests) -> ``Draining`` on scale-down (no new requests,
in-flight ones finish) -> ``Terminated`` (GPUs freed). A pod removed while
Pending or Starting terminates at once. GPU time is charged from scheduling to
termination, which is what a cloud bill charges for an allocated GPU.

Placement prefers nodes that already hold the model weights, then the image
(the kube-scheduler ImageLocality plugin scores nodes holding the image
higher), then the fullest node that fits (bin-packing limits fragmentation).

A mixed cluster has nodes of several accelerator classes (``classes``); a pod
is bound only to a node of its class, as the class's nodeSelector does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tidal.sim.coldstart import ColdStart, ColdStartParams, sample_cold_start
from tidal.sim.hardware import AcceleratorSpec, ModelSpec

PENDING = "Pending"
STARTING = "Starting"
READY = "Ready"
DRAINING = "Draining"
TERMINATED = "Terminated"


@dataclass
class Node:
    name: str
    accelerator: AcceleratorSpec
    gpus: int
    free_gpus: int
    cached_images: set[str] = field(default_factory=set)
    cached_weights: set[str] = field(default_factory=set)
    klass: str = ""
    """The accelerator class (AcceleratorClass name) the node belongs to."""


@dataclass
class Pod:
    id: int
    pool: str
    gpus: int
    created_s: float
    klass: str = ""
    """The accelerator class the pod asks for (only its nodes can take it)."""
    phase: str = PENDING
    node: Node | None = None
    scheduled_s: float | None = None
    ready_s: float | None = None
    drain_s: float | None = None
    dropped_requests: int = 0
    """Requests the pod still held when its drain window ended (it was killed with them)."""
    terminated_s: float | None = None
    cold_start: ColdStart | None = None
    image_cached: bool = False
    weights_cached: bool = False
    prewarmed: bool = False
    engine: object | None = None     # tidal.sim.engine.Engine once Ready

    def gpu_seconds(self, now_s: float) -> float:
        if self.scheduled_s is None:
            return 0.0
        end = self.terminated_s if self.terminated_s is not None else now_s
        return max(0.0, end - self.scheduled_s) * self.gpus


class Cluster:
    """Nodes and pods; the runner owns the clock and turns returned times into events."""

    def __init__(self, accelerator: AcceleratorSpec, model: ModelSpec, *, nodes: int,
                 cold_start: ColdStartParams, rng: np.random.Generator,
                 image_cached: bool = False, weights_cached: bool = False,
                 classes: Sequence[tuple[str, AcceleratorSpec, int]] | None = None) -> None:
        """``classes``: (class name, hardware, nodes) of a mixed cluster; without it, ``nodes``
        nodes of ``accelerator`` in one class named after it."""
        layout = list(classes) if classes else [(accelerator.name, accelerator, nodes)]
        if sum(n for _, _, n in layout) < 1:
            raise ValueError("the cluster needs at least one node")
        self.accelerator = accelerator
        self.default_class = layout[0][0]
        self.class_spec = {name: spec for name, spec, _ in layout}
        self.model = model
        self.cold_start_params = cold_start
        self.rng = rng
        self.image_key = f"vllm-image:{model.name}"
        self.weights_key = f"weights:{model.name}"
        self.nodes = []
        for name, spec, count in layout:
            for _ in range(count):
                self.nodes.append(Node(f"node-{len(self.nodes)}", spec, spec.gpus_per_node, spec.gpus_per_node,
                                       klass=name))
        for node in self.nodes:
            if image_cached:
                node.cached_images.add(self.image_key)
            if weights_cached:
                node.cached_weights.add(self.weights_key)
        self.pods: dict[int, Pod] = {}
        self._next_id = 0

    # -- queries --------------------------------------------------------------------
    def pods_in(self, pool: str, *phases: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.pool == pool and p.phase in phases]

    def count(self, pool: str, phase: str) -> int:
        return sum(1 for p in self.pods.values() if p.pool == pool and p.phase == phase)

    def gpu_seconds(self, now_s: float) -> float:
        return sum(p.gpu_seconds(now_s) for p in self.pods.values())

    def free_gpus(self, klass: str) -> int:
        """GPUs of ``klass`` no pod holds (an AcceleratorClass's status.free)."""
        return sum(n.free_gpus for n in self.nodes if n.klass == klass)

    def free_gpus_by_node(self, klass: str) -> tuple[int, ...]:
        """The same per node, largest first (status.freeByNode): a multi-GPU pod fits on one node only."""
        return tuple(sorted((n.free_gpus for n in self.nodes if n.klass == klass), reverse=True))

    # -- changes ----------------------------------------------------------------------
    def create_pod(self, pool: str, gpus: int, now_s: float, klass: str | None = None) -> Pod:
        klass = klass or self.default_class
        spec = self.class_spec[klass]
        if gpus > spec.gpus_per_node:
            raise ValueError(f"a replica needs {gpus} GPUs but a {spec.name} node "
                             f"has {spec.gpus_per_node}")
        pod = Pod(id=self._next_id, pool=pool, gpus=gpus, created_s=now_s, klass=klass)
        self._next_id += 1
        self.pods[pod.id] = pod
        return pod

    def schedule_pending(self, now_s: float) -> list[Pod]:
        """Bind pending pods (oldest first) to nodes; returns pods that started."""
        started = []
        for pod in sorted(self.pods_in_any_pool(PENDING), key=lambda p: p.id):
            node = self._pick_node(pod.gpus, pod.klass)
            if node is None:
                continue
            node.free_gpus -= pod.gpus
            pod.node = node
            pod.phase = STARTING
            pod.scheduled_s = now_s
            pod.image_cached = self.image_key in node.cached_images
            pod.weights_cached = self.weights_key in node.cached_weights
            pod.cold_start = sample_cold_start(self.cold_start_params, self.model,
                                               image_cached=pod.image_cached,
                                               weights_cached=pod.weights_cached, rng=self.rng)
            started.append(pod)
        return started

    def pods_in_any_pool(self, *phases: str) -> list[Pod]:
        return [p for p in self.pods.values() if p.phase in phases]

    def _pick_node(self, gpus: int, klass: str) -> Node | None:
        fits = [n for n in self.nodes if n.free_gpus >= gpus and n.klass == klass]
        if not fits:
            return None
        return max(fits, key=lambda n: (self.weights_key in n.cached_weights,
                                        self.image_key in n.cached_images,
                                        -n.free_gpus, -int(n.name.split("-")[1])))

    def mark_ready(self, pod: Pod, now_s: float) -> None:
        assert pod.phase == STARTING and pod.node is not None
        pod.phase = READY
        pod.ready_s = now_s
        pod.node.cached_images.add(self.image_key)
        pod.node.cached_weights.add(self.weights_key)

    def start_prewarmed(self, pod: Pod, now_s: float) -> bool:
        """Bind ``pod`` and make it Ready at once (replicas that exist when replay starts)."""
        node = self._pick_node(pod.gpus, pod.klass)
        if node is None:
            return False
        node.free_gpus -= pod.gpus
        pod.node, pod.scheduled_s, pod.ready_s = node, now_s, now_s
        pod.phase = READY
        pod.prewarmed = True
        node.cached_images.add(self.image_key)
        node.cached_weights.add(self.weights_key)
        return True

    def begin_drain(self, pod: Pod, now_s: float) -> None:
        assert pod.phase == READY
        pod.phase = DRAINING
        pod.drain_s = now_s

    def terminate(self, pod: Pod, now_s: float) -> None:
        if pod.phase == TERMINATED:
            return
        if pod.node is not None:
            pod.node.free_gpus += pod.gpus
        pod.phase = TERMINATED
        pod.terminated_s = now_s
