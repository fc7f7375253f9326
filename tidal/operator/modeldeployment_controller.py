"""The ModelDeployment runtime: reconcile children and run the autoscaling tick.

kopf calls these through thin handlers (tidal/operator/handlers_modeldeployment.py). The tick only
observes (children, pods and their start phases, engine metrics), calls the decision core's
``decide_workload`` (tidal/core/modeldeployment.py: forecast, cold start, KV TTL, override, rule,
placement), persists the core's state and applies the decision; rendering and status formatting
are pure functions in tidal/controllers. This module does the I/O: Kubernetes reads and
server-side applies, Prometheus reads, Events, metrics, state persistence.

Failure policy (docs/architecture.md, "Failure behaviour"):
- invalid spec: conditions + a Warning Event, no exception (kopf would retry forever);
- API errors on reconcile: ``Degraded=True`` and ``kopf.TemporaryError`` -> retried, after the
  retry backoff when transient (409/429/5xx/timeouts), six times slower otherwise (403, 422);
- any failure inside a tick: ``Degraded=True`` naming the step, replicas held, next tick retries.
"""

from __future__ import annotations

import math
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

import kopf
from kubernetes.client.rest import ApiException

from tidal.api.acceleratorclass import AcceleratorClass, AcceleratorClassStatus
from tidal.api.modeldeployment import ModelDeployment
from tidal.api.types import parse_duration_s
from tidal.api.validation import InvalidResource, parse_resource
from tidal.controllers.labels import DEPLOYMENT_LABEL
from tidal.controllers.modeldeployment import (
    ChildKey, pools_of, render_children, render_deployment, taken_names, target_mode,
)
from tidal.controllers.modeldeployment_observe import (
    ChildDeployment,
    ChildPod,
    PoolReplicas,
    observe_replicas,
    pod_summary,
    start_times,
    summarize_deployment,
    target_deployment,
)
from tidal.controllers.modeldeployment_status import (
    READY,
    ConditionValue,
    MetricsReport,
    capacity_condition,
    degraded_condition,
    invalid_spec_conditions,
    merge_conditions,
    metrics_condition,
    override_condition,
    ready_condition,
    scale_event,
    slo_condition,
    status_patch,
)
from tidal.controllers.slo_attainment import Attainment, workload_attainment
from tidal.controllers.modeldeployment_entry import (
    EntryDemand,
    entry_demand,
    entry_observation,
    entry_path,
    entry_ready,
    entry_slice_name,
    fronted_by_activator,
    render_entry_activator_slice,
)
from tidal.controllers.pd_router import router_name
from tidal.core.modeldeployment import (
    WorkloadDecision,
    accelerator_profile,
    decide_workload,
    kv_ttl_seconds,
    missing_classes_limit,
    split_override,
)
from tidal.controllers.activator_routing import ActivatorEndpoints
from tidal.operator.activator_slices import delete_endpoint_slice, read_activator_endpoints
from tidal.operator.kube import KubeClients, apply_object, describe_api_error, is_transient, list_items
from tidal.operator.prune import prune_children
from tidal.operator.scale_targets import ScaleTargetProblem, list_pods, read_scale, write_replicas
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.prometheus import FLEET_MAX_AGE_FRACTION, FleetMetrics, PrometheusMetrics
from tidal.operator.settings import OperatorSettings
from tidal.operator.workloads import WorkloadCache, WorkloadRuntime
from tidal.policies.interface import Observation, PoolObservation, Reason, ReplicaStart
from tidal.core.placement import class_preference, planner_mix
from tidal.policies.placement import place
from tidal.policies.utilization import resume_window

log = logging.getLogger("tidal.operator.modeldeployment")

REASON_PARTIAL = "PartiallyObserved"
"""MetricsAvailable reason when some Ready pods' samples were missing or rejected: scale-down held."""
RESUME_AFTER_INTERVALS = 1.5
"""After a restart, the scale-down window is resumed (``resume_window``) when the stored state's last
tick is older than this many intervals: ticks went unsaved before a crash, or the operator was down."""
NON_TRANSIENT_RETRY_FACTOR = 6
"""Non-transient API errors (403, 422...) are retried six times slower than transient ones (60 s
with the default 10 s backoff): they need a human, but must clear without touching the object."""
MAX_EVENT_MESSAGE = 1000
"""Kubernetes truncates Event messages at 1024 bytes; stay below."""


def _event(body: Any, kind: str, reason: str, message: str) -> None:
    kopf.event(body, type=kind, reason=reason, message=message[:MAX_EVENT_MESSAGE])


def _parse(body: Mapping[str, Any]) -> ModelDeployment:
    manifest = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                "metadata": {"name": body["metadata"]["name"], "namespace": body["metadata"].get("namespace")},
                "spec": dict(body.get("spec") or {})}
    md = parse_resource(_plain(manifest))
    assert isinstance(md, ModelDeployment)
    return md


def _plain(value: Any) -> Any:
    """kopf bodies are read-only mapping views; pydantic wants plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class TickResult:
    """What one tick did (returned for tests and the benchmark; kopf ignores it)."""

    decision: WorkloadDecision | None
    latency_s: float
    applied: tuple[ChildKey, ...] = ()
    problems: tuple[str, ...] = ()


class ModelDeploymentController:
    """Everything one operator does for ModelDeployments. One instance per operator."""

    def __init__(self, settings: OperatorSettings, clients: KubeClients, metrics: OperatorMetrics,
                 workloads: WorkloadCache, prometheus: Any | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clients = clients
        self.metrics = metrics
        self.workloads = workloads
        self.prometheus = prometheus
        # One fleet read per dialect per half interval serves every workload's tick (docs/metrics.md,
        # "Reads for many workloads"); other readers (tests' fakes) are asked per pool.
        self.metrics_reader: Any = (
            FleetMetrics(prometheus, max_age_s=settings.interval_s * FLEET_MAX_AGE_FRACTION,
                         namespaces=settings.namespaces)
            if isinstance(prometheus, PrometheusMetrics) else prometheus)
        self.clock = clock
        self._activator_lock = threading.Lock()
        self._activator_read: tuple[float, ActivatorEndpoints | None] = (float("-inf"), None)

    # --- reconcile (create / update / resume) ---------------------------------------------------

    def reconcile(self, body: Mapping[str, Any], patch: Any, status: Mapping[str, Any] | None,
                  retry: int = 0) -> None:
        meta = body["metadata"]
        namespace, name, uid = meta.get("namespace"), meta["name"], meta["uid"]
        generation = meta.get("generation")
        now = self.clock()
        previous = (status or {}).get("conditions")
        try:
            md = _parse(body)
        except InvalidResource as exc:
            log.warning("%s/%s: %s", namespace, name, exc)
            patch["status"] = {"observedGeneration": generation,
                               "conditions": merge_conditions(previous, invalid_spec_conditions(exc), now, generation)}
            _event(body, "Warning", "InvalidSpec", "; ".join(str(e) for e in exc.errors))
            return  # permanent: the next spec change triggers a new reconcile
        try:
            accelerators, missing = self._read_accelerators(md)
            existing = self._list_children(namespace, name)
        except Exception as exc:  # noqa: BLE001 - classified below
            self._retry_or_degrade(exc, "read AcceleratorClasses/children", body, patch, previous, now, generation,
                                   retry)
            return
        current = {d.key: d.spec_replicas for d in existing}
        profiles = {n: accelerator_profile(a) for n, a in accelerators.items()}
        preference = class_preference(md, profiles, planner_mix(None)).preference  # the core's order
        override = split_override(md.spec.replicas, pools_of(md)) if md.spec.replicas is not None else None
        replicas: dict[ChildKey, int] = {}
        for pool, bounds in pools_of(md).items():
            cur = {k.accelerator: n for k, n in current.items() if k.pool == pool}
            # Existing children keep their replicas: replica changes are the tick's (which announces
            # them); a new workload starts at spec.replicas (clamped and split as the tick does) or
            # minReplicas.
            initial = override.per_pool[pool] if override is not None else bounds.min_replicas
            want = sum(cur.values()) if cur else initial
            for acc, n in place(want, cur, preference).items():
                replicas[ChildKey(pool, acc)] = n
        children = render_children(md, uid, accelerators, replicas, kv_ttl_seconds(md))
        name_problems: list[str] = []
        try:
            taken = set(self._taken_names(namespace, uid, children))
            for kind, child_name in sorted(taken):
                name_problems.append(f"{kind} {child_name} exists and belongs to another object, so tidal leaves it "
                                     "alone: rename this ModelDeployment or that object (Services are named "
                                     "<name> and <name>-<pool>)")
            children = [c for c in children if (c["kind"], c["metadata"]["name"]) not in taken]
            for child in children:
                apply_object(self.clients, child, field_manager=self.settings.field_manager)
            for kind, child_name in prune_children(self.clients, namespace, name, uid, children):
                _event(body, "Normal", "Pruned", f"deleted {kind} {child_name}: its pool or AcceleratorClass "
                       "is no longer in the spec")
        except Exception as exc:  # noqa: BLE001
            self._retry_or_degrade(exc, "apply children", body, patch, previous, now, generation, retry)
            return
        for problem in name_problems:
            if not any(c.get("type") == "Degraded" and c.get("status") == "True" and problem in c.get("message", "")
                       for c in previous or ()):
                _event(body, "Warning", "NameTaken", problem)
        pool_replicas = observe_replicas(pools_of(md), existing, ())
        limits = [missing_classes_limit(missing)] if missing else []
        desired = {p: sum(n for k, n in replicas.items() if k.pool == p) for p in pools_of(md)}
        conditions = [
            ready_condition(desired, pool_replicas),
            capacity_condition(limits, pool_replicas),
            override_condition(name, override),
            degraded_condition(name_problems),
        ]
        if not any(c.get("type") == "MetricsAvailable" for c in previous or ()):
            conditions.append(ConditionValue("MetricsAvailable", "Unknown", "NotYetRead",
                                             "no autoscaling tick has read metrics yet"))
        merged = merge_conditions(previous, conditions, now, generation)
        loaded = self.workloads.peek(namespace, name)
        if loaded is not None:
            loaded.last_status = None  # the next tick rewrites the whole status
        patch["status"] = {"observedGeneration": generation, "conditions": merged,
                           "desiredReplicas": sum(desired.values()), "kvTtlSeconds": kv_ttl_seconds(md),
                           "selector": f"{DEPLOYMENT_LABEL}={name}"}

    def _retry_or_degrade(self, exc: BaseException, step: str, body: Any, patch: Any,
                          previous: Any, now: float, generation: int | None, retry: int) -> None:
        """Report the failure as Degraded and let kopf retry: soon for transient errors, slowly for
        the rest (a 403 or a policy's 422 clears when someone fixes RBAC or the policy, without
        touching the object). The Warning Event is posted on the first failure only."""
        text = describe_api_error(exc)
        patch["status"] = {"conditions": merge_conditions(
            previous, [degraded_condition([f"{step}: {text}"]),
                       ConditionValue(READY, "False", "StepFailed", f"{step}: {text}")], now, generation)}
        if is_transient(exc):
            raise kopf.TemporaryError(f"{step}: {text}", delay=self.settings.retry_backoff_s) from exc
        if not retry:
            _event(body, "Warning", "ReconcileFailed", f"{step}: {text}")
        raise kopf.TemporaryError(f"{step}: {text}",
                                  delay=self.settings.retry_backoff_s * NON_TRANSIENT_RETRY_FACTOR) from exc

    def _read_accelerators(self, md: ModelDeployment) -> tuple[dict[str, AcceleratorClass], list[str]]:
        found: dict[str, AcceleratorClass] = {}
        missing: list[str] = []
        for acc_name in md.spec.placement.accelerator_classes:
            try:
                obj = self.clients.custom.get_cluster_custom_object(
                    "tidal.dev", "v1alpha1", "acceleratorclasses", acc_name,
                    _request_timeout=self.clients.request_timeout_s)
            except ApiException as exc:
                if exc.status == 404:
                    missing.append(acc_name)
                    continue
                raise
            parsed = _accelerator(obj)
            if parsed is None:
                missing.append(acc_name)
            else:
                found[acc_name] = parsed
        return found, missing

    def _taken_names(self, namespace: str, uid: str, children: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Rendered Services whose name another owner's Service has: the entry Service ``<name>`` and a
        pool's ``<name>-<pool>`` can be another ModelDeployment's pool or entry Service (``chat-decode``
        is ModelDeployment ``chat``'s decode Service and ``chat-decode``'s entry). Other children carry
        an accelerator, router or kv-policy suffix that no other child name ends in."""
        services = [c for c in children if c["kind"] == "Service"]
        if not services:
            return []
        found = list_items(self.clients.core.list_namespaced_service, namespace,
                           _request_timeout=self.clients.request_timeout_s)
        return taken_names([{**s, "kind": "Service"} for s in found], services, uid)

    def _list_children(self, namespace: str, name: str) -> list[ChildDeployment]:
        items = list_items(self.clients.apps.list_namespaced_deployment, namespace,
                           label_selector=f"{DEPLOYMENT_LABEL}={name}",
                           _request_timeout=self.clients.request_timeout_s)
        out = []
        for item in items:
            summary = summarize_deployment(item)
            if summary is not None and summary.workload == name:
                out.append(summary)
        return out

    # --- the autoscaling tick ---------------------------------------------------------------------

    def tick(self, body: Mapping[str, Any], patch: Any, status: Mapping[str, Any] | None,
             accelerator_index: Mapping[str, Any], deployments: Iterable[ChildDeployment],
             pods: Iterable[ChildPod], grant_gpus: int | None = None) -> TickResult | None:
        """One autoscaling tick. ``grant_gpus``: the GPUs a FairSharePolicy grants this workload
        (the smallest, when several list it; ``None``: none does)."""
        meta = body["metadata"]
        namespace, name, uid = meta.get("namespace"), meta["name"], meta["uid"]
        generation = meta.get("generation")
        try:
            md = _parse(body)
        except InvalidResource:
            return None  # reconcile reported it; nothing to scale
        rt = self.workloads.get(namespace, name, uid)
        with rt.lock:
            target_pods: dict[str, tuple[str, ...]] | None = None
            if target_mode(md):
                try:
                    deployments, pods, target_pods = self._observe_targets(md, namespace, name)
                except Exception as exc:  # noqa: BLE001 - reported as conditions; the next tick retries
                    return self._target_problem(md, rt, body, patch, status, generation, exc)
                rt.last_target_problem = None
            return self._tick_locked(md, rt, body, patch, status, accelerator_index, deployments, pods, generation,
                                     target_pods, grant_gpus)

    # --- target mode (scaleTargetRef on every pool) -------------------------------------------------

    def _observe_targets(self, md: ModelDeployment, namespace: str, name: str,
                         ) -> tuple[list[ChildDeployment], list[ChildPod], dict[str, tuple[str, ...]]]:
        """Each pool's target as its one child (``/scale`` replicas, Ready pods found by the selector
        ``/scale`` reports), the pods, and their names per pool for the metrics read. The target's
        pods are assigned the first allowed AcceleratorClass: tidal places no pods in target mode."""
        accelerator = md.spec.placement.accelerator_classes[0]
        children: list[ChildDeployment] = []
        all_pods: list[ChildPod] = []
        names: dict[str, tuple[str, ...]] = {}
        for pool, spec in pools_of(md).items():
            ref = spec.scale_target_ref
            assert ref is not None
            scale = read_scale(self.clients, namespace, pool, ref)
            pods = [pod_summary(obj, name, pool, accelerator) for obj in list_pods(self.clients, namespace, scale.selector)]
            children.append(target_deployment(ref.name, namespace, name, pool, accelerator, scale.spec_replicas, pods))
            all_pods += pods
            names[pool] = tuple(sorted(p.name for p in pods))
        return children, all_pods, names

    def _target_problem(self, md: ModelDeployment, rt: WorkloadRuntime, body: Any, patch: Any,
                        status: Mapping[str, Any] | None, generation: int | None, exc: BaseException) -> TickResult:
        """A target tidal cannot read: replicas untouched, Ready=False with the reason and the fix,
        Degraded=True, one Warning Event per distinct problem."""
        if isinstance(exc, ScaleTargetProblem):
            reason, message = exc.reason, exc.message
        else:
            reason, message = "ScaleTargetReadFailed", f"reading the scale targets failed: {describe_api_error(exc)}"
        now = self.clock()
        conditions = [ConditionValue(READY, "False", reason, message), degraded_condition([message])]
        patch["status"] = {"observedGeneration": generation, "conditions": merge_conditions(
            (status or {}).get("conditions"), conditions, now, generation)}
        rt.last_status = None  # the next good tick rewrites the whole status
        if message != rt.last_target_problem:
            _event(body, "Warning", reason, message)
            rt.last_target_problem = message
        log.warning("%s/%s: %s", rt.namespace, rt.name, message)
        return TickResult(None, 0.0, (), (message,))

    def _tick_locked(self, md: ModelDeployment, rt: WorkloadRuntime, body: Any, patch: Any,
                     status: Mapping[str, Any] | None, accelerator_index: Mapping[str, Any],
                     deployments: Iterable[ChildDeployment], pods: Iterable[ChildPod],
                     generation: int | None, target_pods: Mapping[str, tuple[str, ...]] | None = None,
                     grant_gpus: int | None = None) -> TickResult:
        namespace, name, uid = rt.namespace, rt.name, rt.uid
        started = time.perf_counter()
        now = self.clock()
        problems: list[str] = []
        accelerators: dict[str, AcceleratorClass] = {}
        for acc_name in md.spec.placement.accelerator_classes:
            acc = accelerator_index.get(acc_name)
            if acc is not None:
                accelerators[acc_name] = acc
        pools = list(pools_of(md))
        children = [d for d in deployments if d.workload == name]
        own_pods = [p for p in pods if p.workload == name]
        replicas = observe_replicas(pools, children, own_pods)
        demand = self.entry_demand(md, body, now)
        try:
            expected = ready_pod_names(own_pods, now, self.settings.metrics_window_s)
            observation, report = self._observe_metrics(md, namespace, name, replicas, expected, now, target_pods,
                                                        demand)
        except Exception as exc:  # noqa: BLE001 - a tick never crashes on data: hold and say why
            log.exception("%s/%s: reading metrics failed; holding replicas", namespace, name)
            pools_seen = {p: r.observation for p, r in replicas.items()}
            if demand is not None:
                pools_seen = entry_observation(md, pools_seen, demand)
            observation = Observation(now, pools_seen, metrics_available=False)
            report = MetricsReport(False, "MetricsReadFailed",
                                   f"reading metrics failed ({type(exc).__name__}: {exc}); holding replicas")
        rt.state.tick += 1
        current = settle_applies({d.key: d.spec_replicas for d in children}, rt.recent_applies, rt.state.tick,
                                 apply_settle_ticks(self.settings.interval_s))
        if rt.resumed:
            rt.resumed = False
            last = rt.state.decisions[-1] if rt.state.decisions else None
            last_tick_s = float(last.get("until", last.get("time", 0.0))) if last else None
            if last_tick_s is None or now - last_tick_s > RESUME_AFTER_INTERVALS * self.settings.interval_s:
                totals = {p: r.spec_total for p, r in replicas.items()}
                rt.core.recommendations = resume_window({"recommendations": rt.core.recommendations}, now,
                                                        totals)["recommendations"]
        observation = replace(observation, accelerators={n: accelerator_profile(a) for n, a in accelerators.items()},
                              placement=placement_of(current), starts=replica_starts(own_pods),
                              interval_s=self.settings.interval_s, grant_gpus=grant_gpus)
        try:
            wd, rt.core = decide_workload(md, observation, rt.core)
        except Exception as exc:  # noqa: BLE001 - a policy bug must not stop the operator: hold
            log.exception("%s/%s: decision failed; holding replicas", namespace, name)
            problems.append(f"decide: {type(exc).__name__}: {exc}")
            wd = WorkloadDecision(decision=_hold(replicas, str(exc)), by_child=current, kv_ttl_s=kv_ttl_seconds(md))
        latency = time.perf_counter() - started
        for start in wd.learned_starts:
            self.metrics.count_cold_start(namespace, name, start.pool)
        if target_pods is None:
            applied = self._apply_changes(md, uid, wd, current, accelerators, problems)
        else:
            applied = self._apply_to_targets(md, namespace, wd, current, problems)
        rt.recent_applies.update({key: (current.get(key, 0), wd.by_child[key], rt.state.tick) for key in applied})
        self._announce(body, rt, wd, applied)
        if demand is not None:
            self._route_entry(md, rt, body, {p: r.observation.ready_replicas for p, r in replicas.items()})
        elif self.settings.activator_service is not None and rt.routed is not False:
            self._unroute_entry(md, rt, body)  # no longer fronted (spec changed), or unknown after a restart
        conditions = [
            ready_condition(wd.decision.desired_replicas, replicas),
            metrics_condition(report),
            slo_condition(md, observation.pools, observation.metrics_available, report.attainment),
            capacity_condition(wd.capacity_limits, replicas),
            override_condition(name, wd.override),
            degraded_condition(problems),
        ]
        merged = merge_conditions((status or {}).get("conditions"), conditions, now, generation)
        forecast = wd.forecast
        new_status = status_patch(name, generation, wd.decision, wd.by_child, replicas, merged, now, wd.policy,
                                  forecast, wd.cold_start_s, wd.kv_ttl_s,
                                  workload_attainment(report.attainment) if report.available else None,
                                  wd.demand_gpus)
        comparable = _without_times(new_status)
        if comparable != rt.last_status:
            patch["status"] = new_status
            rt.last_status = comparable
        urgent = self._record_decision(rt, wd, now, report.available, forecast)
        for pool in pools:
            obs = observation.pools.get(pool)
            self.metrics.record_tick(
                namespace, name, pool, desired=wd.decision.desired_replicas.get(pool, 0),
                ready=obs.ready_replicas if obs else 0, observed_rps=obs.request_rate_rps if obs else None,
                forecast_rps=forecast.rps if forecast is not None and pool == pools[0] else None, latency_s=latency)
            attained = report.attainment.get(pool) if report.available else None
            self.metrics.set_slo_attainment(namespace, name, pool, attained.combined if attained else None)
        try:
            self.workloads.save(rt, urgent=urgent or bool(applied) or bool(wd.learned_starts),
                                min_interval_s=self.settings.state_save_interval_s)
        except Exception as exc:  # noqa: BLE001 - next tick retries the save
            log.warning("%s/%s: could not save state: %s", namespace, name, describe_api_error(exc))
        return TickResult(wd, latency, tuple(applied), tuple(problems))

    # --- the entry behind the activator (docs/activator.md, "ModelDeployments") -------------------

    def entry_demand(self, md: ModelDeployment, body: Mapping[str, Any], now: float) -> EntryDemand | None:
        """The activator's demand at this ModelDeployment's entry, when the activator fronts it
        (``--activator-service`` and the workload can be at zero); None otherwise (no entry signal)."""
        if self.settings.activator_service is None or not fronted_by_activator(md):
            return None
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return entry_demand(annotations, now_s=now, window_s=self.settings.metrics_window_s,
                            interval_s=self.settings.interval_s)

    def _activator_endpoints(self) -> ActivatorEndpoints | None:
        """The activator's ready addresses, read at most once per interval for all workloads."""
        assert self.settings.activator_service is not None
        with self._activator_lock:
            at, value = self._activator_read
            if value is None or time.monotonic() - at >= self.settings.interval_s:
                value = read_activator_endpoints(self.clients, self.settings.activator_service)
                self._activator_read = (time.monotonic(), value)
            return value

    def _routers_ready(self, md: ModelDeployment, namespace: str) -> int:
        if md.spec.mode != "disaggregated":
            return 0
        try:
            router = self.clients.apps.read_namespaced_deployment(
                router_name(md.metadata.name or ""), namespace, _request_timeout=self.clients.request_timeout_s)
        except ApiException as exc:
            if exc.status == 404:
                return 0
            raise
        return int((router.status and router.status.ready_replicas) or 0)

    def _route_entry(self, md: ModelDeployment, rt: WorkloadRuntime, body: Any, ready: Mapping[str, int]) -> None:
        """Route the entry Service to the activator while the entry cannot serve (an EndpointSlice
        applied when the activator's addresses change), back once it can (the slice deleted); an
        Event on each switch. A failure is logged and retried next tick: the Service keeps its own
        endpoints whatever happens here."""
        namespace, name = rt.namespace, rt.name
        try:
            routers = self._routers_ready(md, namespace) if all(ready.get(p, 0) > 0 for p in entry_path(md)) else 0
            if not entry_ready(md, ready, routers):
                endpoints = self._activator_endpoints()
                if endpoints is None:
                    log.warning("%s/%s: the entry cannot serve and the activator %s has no ready endpoint: "
                                "requests fail until a replica is ready", namespace, name,
                                self.settings.activator_service)
                    return
                if rt.routed != endpoints:
                    apply_object(self.clients, render_entry_activator_slice(md, rt.uid, endpoints),
                                 field_manager=self.settings.field_manager)
                if not isinstance(rt.routed, ActivatorEndpoints):
                    _event(body, "Normal", "RoutedToActivator", "the entry has no ready replica path: Service "
                           f"{name} traffic goes to the activator {self.settings.activator_service}")
                rt.routed = endpoints
            elif rt.routed is not False:
                if delete_endpoint_slice(self.clients, namespace, entry_slice_name(name)):
                    _event(body, "Normal", "RoutedToReplicas",
                           "the entry is ready: the activator left Service " + f"{name}'s path")
                rt.routed = False
        except Exception as exc:  # noqa: BLE001 - the next tick routes again
            log.warning("%s/%s: routing the entry through the activator: %s", namespace, name,
                        describe_api_error(exc))

    def _unroute_entry(self, md: ModelDeployment, rt: WorkloadRuntime, body: Any) -> None:
        """A ModelDeployment the activator does not front has no activator slice (one delete per
        workload after a restart or a spec change; a 404 is the usual answer)."""
        try:
            if delete_endpoint_slice(self.clients, rt.namespace, entry_slice_name(rt.name)):
                _event(body, "Normal", "RoutedToReplicas", "the workload can no longer be at zero: the activator "
                       f"left Service {rt.name}'s path")
            rt.routed = False
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("%s/%s: removing the activator from the entry: %s", rt.namespace, rt.name,
                        describe_api_error(exc))

    def wake_now(self, body: Mapping[str, Any], deployments: Iterable[ChildDeployment]) -> bool:
        """Whether the demand handler should decide now instead of at the next tick: the activator
        fronts this ModelDeployment, its entry pool has no replica at all, and the activator reports
        requests (held now, or arrived within the metrics window)."""
        try:
            md = _parse(body)
        except InvalidResource:
            return False
        demand = self.entry_demand(md, body, self.clock())
        if demand is None or (demand.rate_rps <= 0 and demand.held <= 0):
            return False
        name = md.metadata.name
        entry = entry_path(md)[0]
        return sum(d.spec_replicas for d in deployments if d.workload == name and d.key.pool == entry) == 0

    def _observe_metrics(self, md: ModelDeployment, namespace: str, name: str,
                         replicas: Mapping[str, PoolReplicas], ready_pods: Mapping[str, frozenset[str]] | None,
                         now: float, target_pods: Mapping[str, tuple[str, ...]] | None = None,
                         demand: EntryDemand | None = None) -> tuple[Observation, MetricsReport]:
        observation, report = self._observe_engines(md, namespace, name, replicas, ready_pods, now, target_pods,
                                                    demand)
        if demand is not None:
            observation = replace(observation, pools=entry_observation(md, observation.pools, demand))
        return observation, report

    def _observe_engines(self, md: ModelDeployment, namespace: str, name: str,
                         replicas: Mapping[str, PoolReplicas], ready_pods: Mapping[str, frozenset[str]] | None,
                         now: float, target_pods: Mapping[str, tuple[str, ...]] | None = None,
                         demand: EntryDemand | None = None) -> tuple[Observation, MetricsReport]:
        """Each pool's metrics, validated per pod (tidal/operator/metric_validation.py).

        ``ready_pods`` names each pool's Ready pods (``None`` when no pods are visible, e.g. before
        the pod watch delivered any): a Ready pod without a usable in-flight count makes its pool
        partially observed, which the core never scales down; the condition names pod and problem.
        ``target_pods`` (target mode): each pool's pods by name, read by name instead of tidal's labels.
        """
        pools = {p: r.observation for p, r in replicas.items()}
        if self.prometheus is None:
            return (Observation(now, pools, metrics_available=False),
                    MetricsReport(False, "NoPrometheus",
                                  "no --prometheus-url configured (operator.prometheusUrl); holding replicas"))
        read: dict[str, PoolObservation] = {}
        attainment: dict[str, Attainment] = {}
        ttft_target = parse_duration_s(md.spec.slo.ttft) if md.spec.slo.ttft else None
        tpot_target = parse_duration_s(md.spec.slo.tpot) if md.spec.slo.tpot else None
        failures: list[str] = []
        reason = "MetricsRead"
        available = True
        for pool, obs in pools.items():
            if obs.current_replicas == 0 and obs.ready_replicas == 0 and demand is not None \
                    and pool in entry_path(md):
                read[pool] = obs  # nothing running, and every request reaches the activator: observed
                continue
            if obs.current_replicas == 0 and obs.ready_replicas == 0:
                read[pool] = obs  # nothing running: no series to read
                available = False
                failures.append(f"pool {pool}: no replicas to read metrics from")
                reason = "NoReplicas" if reason == "MetricsRead" else reason
                continue
            if target_pods is not None and not target_pods.get(pool):
                read[pool] = obs  # the target wants replicas but has no pods yet: nothing to read
                available = False
                failures.append(f"pool {pool}: no pods match its scale target's selector yet")
                reason = "NoReplicas" if reason == "MetricsRead" else reason
                continue
            if target_pods is not None:
                result = self.metrics_reader.read_pods(
                    namespace=namespace, pods=target_pods[pool], dialect=md.spec.engine.metrics_dialect,
                    window_s=self.settings.metrics_window_s, percentile=md.spec.slo.percentile)
            else:
                result = self.metrics_reader.read_pool(
                    namespace=namespace, deployment=name, pool=pool, dialect=md.spec.engine.metrics_dialect,
                    window_s=self.settings.metrics_window_s, percentile=md.spec.slo.percentile)
            pool_ready = None if ready_pods is None else ready_pods.get(pool, frozenset())
            read[pool] = result.observe(obs, pool_ready)
            if hasattr(result, "attainment"):
                attainment[pool] = result.attainment(ttft_target, tpot_target)
            if read[pool].running_requests is None or read[pool].waiting_requests is None:
                available = False
                if reason in ("MetricsRead", "NoReplicas", REASON_PARTIAL):
                    reason = result.reason()
                failures.append(f"pool {pool}: {result.message()}")
            elif read[pool].unobserved_replicas or result.rejections:
                available = False
                if reason in ("MetricsRead", "NoReplicas"):
                    reason = REASON_PARTIAL
                problems = "; ".join(r.describe() for r in result.problems(pool_ready))
                failures.append(f"pool {pool}: partially observed ({problems}); scale-down held, "
                                "scale-up on the pods that report")
        if available:
            message = "engine metrics read for every pool"
        elif reason == REASON_PARTIAL:
            message = "; ".join(failures)
        else:
            message = "; ".join(failures) + "; holding replicas"
        return (Observation(now, read, metrics_available=available),
                MetricsReport(available, reason, message, attainment))

    def _apply_changes(self, md: ModelDeployment, uid: str, wd: WorkloadDecision, current: Mapping[ChildKey, int],
                       accelerators: Mapping[str, AcceleratorClass], problems: list[str]) -> list[ChildKey]:
        applied = []
        for key, n in wd.by_child.items():
            if current.get(key) == n:
                continue
            obj = render_deployment(md, uid, key, accelerators[key.accelerator], n)
            try:
                apply_object(self.clients, obj, field_manager=self.settings.field_manager)
                applied.append(key)
            except Exception as exc:  # noqa: BLE001 - reported as Degraded; next tick retries
                problems.append(f"apply Deployment {obj['metadata']['name']}: {describe_api_error(exc)}")
        return applied

    def _apply_to_targets(self, md: ModelDeployment, namespace: str, wd: WorkloadDecision,
                          current: Mapping[ChildKey, int], problems: list[str]) -> list[ChildKey]:
        """Target mode: each pool's decided total goes to its target's ``/scale``."""
        applied = []
        for pool, spec in pools_of(md).items():
            ref = spec.scale_target_ref
            assert ref is not None
            keys = [k for k in wd.by_child if k.pool == pool]
            want = sum(wd.by_child[k] for k in keys)
            if want == sum(n for k, n in current.items() if k.pool == pool):
                continue
            try:
                write_replicas(self.clients, namespace, pool, ref, want)
                applied += [k for k in keys if current.get(k) != wd.by_child[k]]
            except Exception as exc:  # noqa: BLE001 - reported as Degraded; next tick retries
                problems.append(f"scale {ref.kind} {ref.name}: {describe_api_error(exc)}")
        return applied

    def _announce(self, body: Any, rt: WorkloadRuntime, wd: WorkloadDecision, applied: list[ChildKey]) -> None:
        """One Event per applied replica change; the key (tick, child, from, to) is persisted so a
        restarted operator never repeats it."""
        for key, before, after in wd.changes:
            if key not in applied:
                continue
            event_key = f"{rt.state.tick}:{key.pool}/{key.accelerator}:{before}->{after}"
            if event_key == rt.state.last_scale_event:
                continue
            reason, message = scale_event(key, before, after, wd.decision.reasons)
            _event(body, "Normal", reason, message)
            rt.state.last_scale_event = event_key

    def _record_decision(self, rt: WorkloadRuntime, wd: WorkloadDecision, now: float, metrics_ok: bool,
                         forecast: Any) -> bool:
        """Append to the ring buffer; repeats of the same decision only extend the last entry.
        Returns whether this is a new decision (worth saving at once)."""
        record = {
            "time": now, "tick": rt.state.tick, "policy": wd.policy,
            "desired": dict(wd.decision.desired_replicas),
            "byChild": {f"{k.pool}/{k.accelerator}": n for k, n in wd.by_child.items()},
            "reasons": [{"code": r.code, "message": r.message, "pool": r.pool} for r in wd.decision.reasons],
            "limits": [r.message for r in wd.capacity_limits],
            "metricsAvailable": metrics_ok,
            "forecastRps": None if forecast is None else round(forecast.rps, 4),
        }
        last = rt.state.decisions[-1] if rt.state.decisions else None
        signature = lambda r: (r["desired"], r.get("byChild"), [x["code"] for x in r["reasons"]],  # noqa: E731
                               r["metricsAvailable"], r.get("limits"))
        if last is not None and signature(last) == signature(record):
            last["until"] = now
            last["repeats"] = int(last.get("repeats", 1)) + 1
            last["reasons"] = record["reasons"]
            return False
        rt.state.add_decision(record)
        return True

    def forget(self, namespace: str, name: str) -> None:
        self.workloads.forget(namespace, name)
        self.metrics.forget(namespace, name)


def _accelerator(obj: Mapping[str, Any]) -> AcceleratorClass | None:
    try:
        parsed = parse_resource({"apiVersion": obj.get("apiVersion"), "kind": "AcceleratorClass",
                                 "metadata": {"name": (obj.get("metadata") or {}).get("name")},
                                 "spec": _plain(obj.get("spec") or {})})
        status = _class_status(obj.get("status"))
        if status is not None and isinstance(parsed, AcceleratorClass):
            parsed = parsed.model_copy(update={"status": status})
    except InvalidResource as exc:
        log.warning("ignoring invalid %s", exc)
        return None
    return parsed if isinstance(parsed, AcceleratorClass) else None


def _class_status(raw: Any) -> AcceleratorClassStatus | None:
    """The inventory counts the operator's own loop wrote (tidal/operator/handlers_accelerators.py):
    placement reads ``free``. Unreadable -> None (placement then treats free GPUs as unknown)."""
    if not isinstance(raw, Mapping):
        return None
    counts = {k: raw.get(k) for k in ("nodes", "allocatable", "used", "free")}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        return None
    return AcceleratorClassStatus(**counts)  # type: ignore[arg-type]


def accelerator_from_body(obj: Mapping[str, Any]) -> AcceleratorClass | None:
    """Parse an AcceleratorClass body (for the index); None when it is invalid."""
    return _accelerator(_plain(obj))


APPLY_SETTLE_TICKS = 3
"""Ticks a replica write may take to show up in the watch-fed index before the index is believed
again (a watch event normally arrives well within one tick), and at least :data:`APPLY_SETTLE_S`."""
APPLY_SETTLE_S = 60.0
"""Seconds a replica write may take to show up in the index, whatever the tick: far beyond a healthy
watch's sub-second delivery, and beyond what an API server or operator starved of CPU takes (with
1 s ticks on two busy cores a write took more than 3 ticks to show, and the change was written and
announced twice)."""


def apply_settle_ticks(interval_s: float) -> int:
    """Ticks the operator believes its own replica writes over a lagging index: APPLY_SETTLE_TICKS,
    and at least APPLY_SETTLE_S at this tick interval."""
    return max(APPLY_SETTLE_TICKS, math.ceil(APPLY_SETTLE_S / max(interval_s, 1e-3)))


def settle_applies(indexed: Mapping[ChildKey, int], recent: dict[Any, tuple[int, int, int]],
                   tick: int, settle_ticks: int = APPLY_SETTLE_TICKS) -> dict[ChildKey, int]:
    """Replicas per child as this operator last wrote them, where the watch-fed index still shows the
    value from before the write. Without this, a tick that runs before the watch event arrives sees the
    old count, writes the same change again and announces it twice. Entries the index has caught up
    with, that someone else changed since, or older than ``settle_ticks`` are dropped."""
    current = dict(indexed)
    for key, (before, after, written) in list(recent.items()):
        if indexed.get(key) == before and before != after and tick - written <= settle_ticks:
            current[key] = after
        else:
            del recent[key]
    return current


def ready_pod_names(pods: Iterable[ChildPod], now_s: float, grace_s: float) -> dict[str, frozenset[str]] | None:
    """Each pool's pods expected to report metrics: Ready, not terminating, and Ready for longer than
    ``grace_s`` (a pod that just became Ready may not have been scraped yet; its load is still small).
    ``None`` when no pod is visible at all, so partial observation is judged by count
    (tidal/operator/prometheus.py)."""
    pods = list(pods)
    if not pods:
        return None
    names: dict[str, set[str]] = {}
    for pod in pods:
        settled = pod.ready_s is None or now_s - pod.ready_s >= grace_s
        if pod.ready and not pod.deleting and settled:
            names.setdefault(pod.pool, set()).add(pod.name)
    return {pool: frozenset(found) for pool, found in names.items()}


def placement_of(current: Mapping[ChildKey, int]) -> dict[str, dict[str, int]]:
    """Replicas per pool per accelerator class, the observation's ``placement``."""
    out: dict[str, dict[str, int]] = {}
    for key, n in current.items():
        out.setdefault(key.pool, {})[key.accelerator] = n
    return out


def replica_starts(pods: Iterable[ChildPod]) -> tuple[ReplicaStart, ...]:
    """The starts of the pods that became Ready, for the core's cold-start predictor. Pod timestamps
    cannot split weights load from engine init: both go to engine init."""
    out = []
    for pod in pods:
        times = start_times(pod)
        if times is not None:
            out.append(ReplicaStart(pod.uid, pod.pool, pod.accelerator, pod.node, times.scheduling_s,
                                    times.image_pull_s, 0.0, times.after_start_s, image_cached=times.image_cached))
    return tuple(out)


def _hold(replicas: Mapping[str, PoolReplicas], why: str) -> Any:
    from tidal.policies.interface import Decision

    return Decision(desired_replicas={p: r.spec_total for p, r in replicas.items()},
                    reasons=tuple(Reason("hold-decision-failed", f"decision failed ({why}); holding", p)
                                  for p in replicas))


def _without_times(status: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    decision = out.get("lastDecision")
    if isinstance(decision, Mapping):
        out["lastDecision"] = {k: v for k, v in decision.items() if k != "time"}
    return out
