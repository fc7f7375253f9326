"""What the cluster shows of a ModelDeployment's replicas, from its child Deployments and Pods.

Pure: the operator hands in the raw objects (camelCase dicts, as kopf and the API server give them)
and gets back per-pool replica counts and per-pod start phases. Why not read ``Deployment.status``
alone: it does not separate pods waiting for a node (pending, the pending-pod guard's input) from
pods loading weights (starting), and it knows nothing of when each phase ended (cold starts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from tidal.controllers.labels import ACCELERATOR_LABEL, DEPLOYMENT_LABEL, POOL_LABEL
from tidal.controllers.modeldeployment import ChildKey
from tidal.policies.interface import PoolObservation

IMAGE_CACHED_BELOW_S = 5.0
"""A container that started within 5 s of scheduling cannot have pulled a multi-GB serving image
(~100 s at registry speeds, see tidal/predictors/coldstart.py PRIOR_MEDIAN_P90_S): treat the image as
cached on the node. Pod status does not say whether the kubelet pulled."""


@dataclass(frozen=True)
class ChildDeployment:
    """The parts of one child Deployment the autoscaler needs."""

    name: str
    namespace: str
    workload: str
    pool: str
    accelerator: str
    spec_replicas: int
    ready_replicas: int

    @property
    def key(self) -> ChildKey:
        return ChildKey(self.pool, self.accelerator)


@dataclass(frozen=True)
class ChildPod:
    """One engine pod: where it is in its life, and the timestamps of its start phases."""

    name: str
    namespace: str
    uid: str
    workload: str
    pool: str
    accelerator: str
    node: str | None
    scheduled: bool
    ready: bool
    deleting: bool
    created_s: float | None = None
    scheduled_s: float | None = None
    started_s: float | None = None
    ready_s: float | None = None


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def parse_time_s(value: Any) -> float | None:
    """RFC 3339 timestamp (``2026-01-01T00:00:00Z``) -> Unix seconds; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def summarize_deployment(obj: Mapping[str, Any]) -> ChildDeployment | None:
    """A child Deployment, or None for a Deployment that tidal did not render (no tidal labels)."""
    labels = _labels(obj)
    if not all(k in labels for k in (DEPLOYMENT_LABEL, POOL_LABEL, ACCELERATOR_LABEL)):
        return None
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return ChildDeployment(
        name=str(meta.get("name", "")), namespace=str(meta.get("namespace", "")),
        workload=labels[DEPLOYMENT_LABEL], pool=labels[POOL_LABEL], accelerator=labels[ACCELERATOR_LABEL],
        spec_replicas=int(spec.get("replicas") or 0), ready_replicas=int(status.get("readyReplicas") or 0),
    )


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == kind:
            return cond
    return None


def summarize_pod(obj: Mapping[str, Any]) -> ChildPod | None:
    """An engine pod (labelled by tidal), or None for any other pod."""
    labels = _labels(obj)
    if not all(k in labels for k in (DEPLOYMENT_LABEL, POOL_LABEL, ACCELERATOR_LABEL)):
        return None
    return pod_summary(obj, labels[DEPLOYMENT_LABEL], labels[POOL_LABEL], labels[ACCELERATOR_LABEL])


def target_deployment(name: str, namespace: str, workload: str, pool: str, accelerator: str,
                      spec_replicas: int, pods: Iterable[ChildPod]) -> ChildDeployment:
    """A pool's scale target (``scaleTargetRef``) seen as the pool's one child: its ``/scale`` replicas,
    and its Ready pods (found by the target's selector) as ready replicas."""
    ready = sum(p.ready and not p.deleting for p in pods)
    return ChildDeployment(name=name, namespace=namespace, workload=workload, pool=pool, accelerator=accelerator,
                           spec_replicas=spec_replicas, ready_replicas=ready)


def pod_summary(obj: Mapping[str, Any], workload: str, pool: str, accelerator: str) -> ChildPod:
    """One pod of ``workload``'s ``pool``: tidal's own (from its labels, :func:`summarize_pod`) or a
    scale target's (found by the target's selector; the pool and class are the ModelDeployment's)."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scheduled_cond = _condition(status, "PodScheduled")
    ready_cond = _condition(status, "Ready")
    scheduled = bool(scheduled_cond and scheduled_cond.get("status") == "True") or bool(spec.get("nodeName"))
    ready = bool(ready_cond and ready_cond.get("status") == "True")
    started = [
        parse_time_s(((cs.get("state") or {}).get("running") or {}).get("startedAt"))
        for cs in status.get("containerStatuses") or ()
    ]
    started_known = [s for s in started if s is not None]
    return ChildPod(
        name=str(meta.get("name", "")), namespace=str(meta.get("namespace", "")), uid=str(meta.get("uid", "")),
        workload=workload, pool=pool, accelerator=accelerator,
        node=spec.get("nodeName") or None, scheduled=scheduled, ready=ready,
        deleting=meta.get("deletionTimestamp") is not None,
        created_s=parse_time_s(meta.get("creationTimestamp")),
        scheduled_s=parse_time_s(scheduled_cond.get("lastTransitionTime")) if scheduled_cond and scheduled else None,
        # The engine is up once its last container runs (sidecars may start first).
        started_s=max(started_known) if started_known else None,
        ready_s=parse_time_s(ready_cond.get("lastTransitionTime")) if ready_cond and ready else None,
    )


@dataclass(frozen=True)
class StartTimes:
    """Phase durations of one observed replica start, derived from pod timestamps."""

    scheduling_s: float
    image_pull_s: float
    after_start_s: float
    image_cached: bool

    @property
    def total_s(self) -> float:
        return self.scheduling_s + self.image_pull_s + self.after_start_s


def start_times(pod: ChildPod) -> StartTimes | None:
    """Phases of a pod that became Ready; None while it is not Ready or a timestamp is missing.

    created -> PodScheduled is scheduling; PodScheduled -> container startedAt is image pull (plus
    container creation); startedAt -> Ready is weights load plus engine init, which pod status
    cannot tell apart (the engine logs could). Clock skew cannot make a phase negative: each is
    clamped at 0.
    """
    if not pod.ready or None in (pod.created_s, pod.scheduled_s, pod.started_s, pod.ready_s):
        return None
    assert pod.created_s is not None and pod.scheduled_s is not None
    assert pod.started_s is not None and pod.ready_s is not None
    scheduling = max(0.0, pod.scheduled_s - pod.created_s)
    pull = max(0.0, pod.started_s - pod.scheduled_s)
    after = max(0.0, pod.ready_s - pod.started_s)
    return StartTimes(scheduling, pull, after, image_cached=pull < IMAGE_CACHED_BELOW_S)


@dataclass(frozen=True)
class PoolReplicas:
    """Per pool: the observation's replica counts and the current spec replicas per accelerator."""

    observation: PoolObservation
    by_accelerator: Mapping[str, int]
    ready_by_accelerator: Mapping[str, int]

    @property
    def spec_total(self) -> int:
        return sum(self.by_accelerator.values())


def observe_replicas(
    pools: Iterable[str], deployments: Iterable[ChildDeployment], pods: Iterable[ChildPod],
) -> dict[str, PoolReplicas]:
    """Ready/starting/pending/draining per pool.

    Invariant the hold rule relies on: ``ready + starting + pending`` equals the pool's current
    ``spec.replicas`` total, so "hold" keeps exactly what is deployed. Pods beyond it (terminating
    after a scale-down, or ready ones the ReplicaSet is about to remove) count as draining.
    With no pods visible (no kubelet yet, or pods not listed) Deployment status is used.
    """
    deployments = list(deployments)
    pods = list(pods)
    out: dict[str, PoolReplicas] = {}
    for pool in pools:
        ds = [d for d in deployments if d.pool == pool]
        ps = [p for p in pods if p.pool == pool]
        by_acc: dict[str, int] = {}
        for d in ds:
            by_acc[d.accelerator] = by_acc.get(d.accelerator, 0) + d.spec_replicas
        total = sum(by_acc.values())
        live = [p for p in ps if not p.deleting]
        draining = len(ps) - len(live)
        if live:
            ready_n = sum(p.ready for p in live)
            pending_n = sum(not p.scheduled for p in live)
            ready_by_acc: dict[str, int] = {}
            for p in live:
                if p.ready:
                    ready_by_acc[p.accelerator] = ready_by_acc.get(p.accelerator, 0) + 1
        else:
            ready_n = sum(d.ready_replicas for d in ds)
            pending_n = 0
            ready_by_acc = {}
            for d in ds:
                ready_by_acc[d.accelerator] = ready_by_acc.get(d.accelerator, 0) + d.ready_replicas
        ready = min(ready_n, total)
        pending = min(pending_n, total - ready)
        starting = total - ready - pending
        draining += max(0, ready_n - ready) + max(0, pending_n - pending)
        obs = PoolObservation(ready_replicas=ready, starting_replicas=starting,
                              pending_replicas=pending, draining_replicas=draining)
        out[pool] = PoolReplicas(obs, by_acc, ready_by_acc)
    return out
