"""The simulator shell for a ModelDeployment custom resource: ``tidal simulate -f md.yaml``.

Reads the very manifests a user would ``kubectl apply`` with the operator's parser
(:func:`tidal.api.validation.parse_resource`), and drives :class:`tidal.sim.runner.Simulation` with
:class:`ModelDeploymentAutoscaler`, an :class:`~tidal.policies.interface.Autoscaler` over the core's
``decide_workload``: the same entry point, with the same defaults, as the operator's tick
(tidal/operator/modeldeployment_controller.py). The shell's own part is the same as the operator's:
build the observation (accelerator classes, placement, tick interval), call, keep the state.

What the simulator cannot represent is stated, not guessed: by default it simulates one accelerator
class (the most preferred existing one, where the core places new replicas) with unlimited room on
hardware from its table (tidal/sim/hardware.py), chosen by name or nearest datasheet figures, and one
tensor-parallel degree. :func:`mixed_config` simulates a mixed cluster instead: every class of the
spec that has nodes, in limited numbers, each on its nearest hardware at its ``hourlyCost``; the core
then places per class from the cluster's free GPUs (``bench/placement.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from tidal.api.acceleratorclass import AcceleratorClass
from tidal.api.modeldeployment import ModelDeployment
from tidal.api.types import parse_duration_s, parse_quantity_bytes
from tidal.api.validation import InvalidResource, parse_resource
from tidal.controllers.modeldeployment import PRESTOP_DELAY_S, drain_seconds, exports_kv_residency, pools_of
from tidal.core.modeldeployment import WorkloadDecision, accelerator_profile, decide_workload
from tidal.core.placement import class_preference, planner_mix
from tidal.core.state import CoreState
from tidal.operator.settings import DEFAULT_INTERVAL_S, DEFAULT_METRICS_WINDOW_S
from tidal.policies.interface import AcceleratorProfile, Decision, Observation
from tidal.policies.defaults import KV_METRICS_SAMPLE_RATE
from tidal.sim.engine import EngineConfig
from tidal.sim.hardware import ACCELERATORS, MODELS, TFLOPS
from tidal.sim.runner import SLO, SimClass, SimConfig
from tidal.sim.serverless.platform import ActivatorModel

UNBOUNDED_SLO_S = math.inf
"""A target the spec leaves out (``slo.ttft`` or ``slo.tpot``) never fails a request."""


class ManifestError(ValueError):
    """The files given with -f cannot be simulated; the message names the file or field and the fix."""


@dataclass(frozen=True)
class SimulatedWorkload:
    """A ModelDeployment ready to simulate: the spec, its classes, and what the simulator runs it on."""

    md: ModelDeployment
    accelerators: Mapping[str, AcceleratorProfile]
    accelerator_class: str
    """The class the simulated replicas run on (most preferred existing one)."""
    hardware: str
    """Its simulator hardware (tidal/sim/hardware.py ACCELERATORS key)."""
    model: str
    """Simulator model (tidal/sim/hardware.py MODELS key)."""
    tp: int


def load_manifests(paths: Iterable[Path]) -> tuple[ModelDeployment, dict[str, AcceleratorClass]]:
    """The one ModelDeployment and every AcceleratorClass in ``paths`` (multi-document YAML);
    other kinds are ignored. Invalid resources raise :class:`ManifestError` listing every field error."""
    mds: list[ModelDeployment] = []
    classes: dict[str, AcceleratorClass] = {}
    for path in paths:
        try:
            docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise ManifestError(f"{path}: cannot read YAML ({exc})") from None
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") not in ("ModelDeployment", "AcceleratorClass"):
                continue
            try:
                obj = parse_resource(doc)
            except InvalidResource as exc:
                raise ManifestError(f"{path}: {exc}") from None
            if isinstance(obj, ModelDeployment):
                mds.append(obj)
            elif isinstance(obj, AcceleratorClass):
                classes[obj.metadata.name or ""] = obj
    if len(mds) != 1:
        raise ManifestError(f"expected exactly one ModelDeployment in the -f files, found {len(mds)}")
    return mds[0], classes


def nearest_hardware(acc: AcceleratorClass) -> str:
    """The simulator accelerator closest to an AcceleratorClass's datasheet figures (peak TFLOP/s,
    memory bandwidth, memory; log distance), so ``h100-80gb`` runs as ``H100-80GB``."""
    spec = acc.spec
    want = (spec.peak_tflops * TFLOPS, spec.memory_bandwidth_gbps * 1e9, float(parse_quantity_bytes(spec.memory)))

    def distance(name: str) -> float:
        hw = ACCELERATORS[name]
        have = (hw.peak_bf16_flops, hw.memory_bandwidth_bps, float(hw.memory_bytes))
        return sum(math.log(a / b) ** 2 for a, b in zip(want, have))

    return min(ACCELERATORS, key=distance)


def nearest_model(md: ModelDeployment) -> str:
    """The simulator model named in ``spec.model.name`` (e.g. ``meta-llama/Llama-3.1-8B-Instruct`` ->
    ``llama-3.1-8b``), else the one with the closest parameter count."""
    name = md.spec.model.name.lower()
    named = [k for k in MODELS if k in name]
    if named:
        return max(named, key=len)
    billions = md.spec.model.parameters_billions
    return min(MODELS, key=lambda k: abs(math.log(MODELS[k].params / 1e9 / billions)))


def prepare(md: ModelDeployment, classes: Mapping[str, AcceleratorClass], hardware: str | None = None,
            model: str | None = None) -> SimulatedWorkload:
    """Choose what to simulate; ``hardware``/``model`` override the nearest match."""
    profiles = {n: accelerator_profile(a) for n, a in classes.items()}
    allowed = md.spec.placement.accelerator_classes
    # The class the core places new replicas on: cheapest per goodput (or fastest) that can meet the SLO.
    preference = class_preference(md, profiles, planner_mix(None)).preference
    if not preference:
        raise ManifestError(
            f"none of spec.placement.acceleratorClasses ({', '.join(allowed)}) is defined in the -f files; "
            "add their AcceleratorClass manifests, e.g. -f examples/accelerator-classes.yaml")
    tps = {p.gpus_per_replica for p in pools_of(md).values()}
    if len(tps) != 1:
        raise ManifestError("spec.pools: the simulator runs one gpusPerReplica for every pool; "
                            f"found {sorted(tps)}")
    if hardware is not None and hardware not in ACCELERATORS:
        raise ManifestError(f"--accelerator {hardware!r}: known: {', '.join(ACCELERATORS)}")
    if model is not None and model not in MODELS:
        raise ManifestError(f"--model {model!r}: known: {', '.join(MODELS)}")
    chosen = preference[0]
    return SimulatedWorkload(md, {n: profiles[n] for n in allowed if n in profiles}, chosen,
                             hardware or nearest_hardware(classes[chosen]), model or nearest_model(md), tps.pop())


def sim_config(wl: SimulatedWorkload, **overrides: Any) -> SimConfig:
    """SimConfig from the spec: mode, TP, SLO targets and percentile, the class's hourlyCost per GPU-hour,
    the drain window of the pods tidal renders (preStop delay + ``spec.engine.drainTimeout``), the
    operator's default tick interval and metrics window (tidal/operator/settings.py), engines that
    report KV-block residency when the rendered pods export it (``exports_kv_residency``), and the
    activator in front of the entry with ``tidal activator``'s defaults (docs/activator.md: what
    wakes a pool at zero in a cluster; ``activator=False`` removes its limits). ``overrides`` that
    are ``None`` are ignored."""
    slo = wl.md.spec.slo
    values: dict[str, Any] = dict(
        model=wl.model, accelerator=wl.hardware, tp=wl.tp, mode=wl.md.spec.mode,
        tick_s=DEFAULT_INTERVAL_S, metrics_window_s=DEFAULT_METRICS_WINDOW_S,
        drain_window_s=float(PRESTOP_DELAY_S + drain_seconds(wl.md)),
        slo=SLO(ttft_s=parse_duration_s(slo.ttft) if slo.ttft else UNBOUNDED_SLO_S,
                tpot_s=parse_duration_s(slo.tpot) if slo.tpot else UNBOUNDED_SLO_S,
                percentile=slo.percentile / 100.0),
        activator=ActivatorModel())
    values.update({k: v for k, v in overrides.items() if v is not None})
    engine = values.get("engine") or EngineConfig()
    if exports_kv_residency(wl.md) and engine.kv_metrics_sample is None:
        values["engine"] = replace(engine, kv_metrics_sample=KV_METRICS_SAMPLE_RATE,
                                   kv_metrics_seed=int(values.get("seed") or 0))
    if values["activator"] is False:
        values["activator"] = None
    values.setdefault("gpu_hour_cost_usd", wl.accelerators[wl.accelerator_class].hourly_cost)
    return SimConfig(**values)


def mixed_config(wl: SimulatedWorkload, classes: Mapping[str, AcceleratorClass], nodes: Mapping[str, int],
                 gpus_per_node: Mapping[str, int] | None = None, **overrides: Any) -> SimConfig:
    """:func:`sim_config` on a mixed cluster: ``nodes[c]`` nodes of each class ``c`` the spec allows
    (spec order), each simulated on its nearest hardware at its ``hourlyCost`` per GPU-hour, with
    ``gpus_per_node[c]`` GPUs per node when given (else the hardware table's)."""
    unknown = [c for c in nodes if c not in wl.accelerators]
    if unknown:
        raise ManifestError(f"nodes for {', '.join(unknown)}: not an AcceleratorClass the spec allows and the "
                            f"-f files define ({', '.join(wl.accelerators)})")
    per_node = gpus_per_node or {}
    layout = tuple(SimClass(c, nearest_hardware(classes[c]), int(nodes[c]), classes[c].spec.hourly_cost,
                            per_node.get(c)) for c in wl.accelerators if nodes.get(c, 0) > 0)
    if not layout:
        raise ManifestError("a mixed cluster needs nodes for at least one class")
    return sim_config(replace(wl, hardware=layout[0].accelerator, accelerator_class=layout[0].name),
                      classes=layout, **overrides)


class ModelDeploymentAutoscaler:
    """The simulator's shell around ``decide_workload``: adds what the operator's tick adds to an
    observation (classes, placement, interval), calls the core, returns its decision. The core's
    full :class:`WorkloadDecision` is in ``decision.details["workload"]``."""

    name = "tidal"

    def __init__(self, wl: SimulatedWorkload, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.wl = wl
        self.interval_s = interval_s

    @property
    def tick_s(self) -> float:
        """The operator's tick interval: shells that honour a policy's own period (``tidal bench``)
        run the core at it."""
        return self.interval_s

    def observation(self, observation: Observation) -> Observation:
        """The observation the operator would build for the same cluster state. On a mixed cluster
        the runner reports replicas per class and each class's free GPUs (a class of the spec with no
        nodes there has none free); otherwise every replica is on the simulated class."""
        if observation.accelerators:
            seen = {n: observation.accelerators.get(n) for n in self.wl.accelerators}
            accelerators = {n: replace(p, free_gpus=getattr(seen[n], "free_gpus", 0),
                                       free_by_node=getattr(seen[n], "free_by_node", ()))
                            for n, p in self.wl.accelerators.items()}
            placement = {pool: {c: n for c, n in by.items() if c in accelerators}
                         for pool, by in observation.placement.items()}
            return replace(observation, accelerators=accelerators, placement=placement, interval_s=self.interval_s)
        cls = self.wl.accelerator_class
        placement = {pool: {cls: obs.current_replicas} for pool, obs in observation.pools.items()}
        starts = tuple(replace(s, accelerator=cls) for s in observation.starts)
        return replace(observation, accelerators=self.wl.accelerators, placement=placement, starts=starts,
                       interval_s=self.interval_s)

    def decide(self, observation: Observation, state: Any) -> tuple[Decision, Any]:
        wd, core = decide_workload(self.wl.md, self.observation(observation),
                                   state if isinstance(state, CoreState) else None)
        placement: dict[str, dict[str, int]] = {}
        for key, n in wd.by_child.items():
            placement.setdefault(key.pool, {})[key.accelerator] = n
        return replace(wd.decision, details={"workload": wd, "placement": placement}), core


def workload_decision(decision: Decision) -> WorkloadDecision:
    """The core's decision behind a simulator decision made by :class:`ModelDeploymentAutoscaler`."""
    return decision.details["workload"]
