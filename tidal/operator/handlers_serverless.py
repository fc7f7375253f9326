"""ServerlessFunction handlers: apply the Deployment and Service, and a keep-alive timer.

* create / update / resume: validate the spec with :mod:`tidal.api.validation`. Invalid: status
  condition ``Ready=False, reason InvalidSpec`` and a Warning event, and the handler returns (no
  retry loop; the next spec change is handled again). Valid: server-side apply (field manager
  from the settings) of the Deployment (replicas: the last decision within the current bounds, or
  the initial scale) and the Service, and ``status.observedGeneration``. A failed apply sets
  ``Degraded=True, reason ApplyFailed``, posts one Warning event and raises ``kopf.TemporaryError``
  with a doubling delay (:func:`apply_retry_delay_s`); a failed scale in the timer does the same and
  the next tick retries. Every API call carries ``clients.request_timeout_s``.
* timer (``settings.interval_s``): read the Deployment and the function's metrics, run
  :class:`tidal.policies.keepalive.KeepAlivePolicy`, re-apply the Deployment when the instance
  count changes (with a ``Scaled`` event), and patch the status when it changed. The decision is
  :func:`tidal.core.serverlessfunction.decide_function`, the simulator's too: when the instance
  counts changed or an instance is starting, the tick lists the function's pods and hands the
  starts of those that became Ready (creation -> scheduled -> running -> Ready) to it, which
  learns the function's cold start (median of the recent starts: the pre-warm lead, compared
  with ``spec.slo.latency``). The policy's state lives in the per-object kopf ``memo``; it is
  persisted, learnt starts included, in the ConfigMap ``<name>-keepalive`` when it learns an idle
  time or a start or the function goes idle, and restored from it after an operator restart.
* with an activator (``settings.activator_service``, docs/activator.md): each tick also reads the
  arrivals the activator reported in the function's ``demand.activator.tidal.dev/*`` annotations
  and passes them to the policy as exact arrivals (:func:`tidal.controllers.function_activity.function_pool`),
  and routes the Service through the activator while no instance is ready (an EndpointSlice
  ``<service>-activator``, :mod:`tidal.controllers.activator_routing`), deleting that slice once
  one is. A change of those annotations is an update event: at zero instances the operator starts
  instances at once for the held requests (``serverlessfunction-demand``), not at the next tick.
* deletion: no handler and no finalizer (owner references garbage-collect the children); a
  ``DELETED``-only event handler stops the object's timer (:mod:`tidal.operator.finalizers`).

Function metrics come from a :data:`FunctionMetricsSource`. Without ``--prometheus-url`` every tick
reports ``MetricsAvailable=False`` and the policy holds the current instances (never zero on
missing data). With it, :class:`PrometheusFunctionMetrics` reads the request counter and in-flight
gauge the function exports (names below). A function at zero instances exports nothing: without an
activator it is brought back only by pre-warm windows or a spec change; with one, by its first request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from tidal.activator.demand import held_now, new_arrivals
from tidal.api.serverlessfunction import ServerlessFunction, ServerlessFunctionSpec
from tidal.api.types import ObjectMeta
from tidal.api.validation import InvalidResource, parse_spec
from tidal.controllers.activator_routing import (
    ActivatorEndpoints,
    activator_slice_name,
    render_activator_slice,
    routes_to_activator,
    wake_instances,
)
from tidal.controllers.conditions import set_condition
from tidal.controllers.function_activity import TickActivity, arrivals_cursor_s, function_pool
from tidal.controllers.serverlessfunction import (
    KIND,
    cold_starts_added,
    compute_status,
    instances_to_render,
    invalid_status,
    name_problem,
    policy_for,
    render_children,
    instance_starts,
    label_selector,
    render_deployment,
    render_state_configmap,
    state_configmap_name,
    state_from_configmap,
)
from tidal.operator.finalizers import (
    is_deletion_event,
    mark_deleted,
    not_deleted,
    timers_need_no_finalizer,
)
from tidal.operator.handlers_accelerators import Clock, utcnow
from tidal.operator.activator_slices import delete_endpoint_slice, read_activator_endpoints
from tidal.operator.kube import KubeClients, apply_object, describe_api_error
from tidal.operator.metrics import OperatorMetrics
from tidal.operator.prometheus import FailureKind, PrometheusMetrics, PrometheusSettings
from tidal.operator.promql import FUNCTION_IN_FLIGHT_METRIC, FUNCTION_REQUESTS_METRIC
from tidal.operator.settings import OperatorSettings
from tidal.policies.interface import POOL_FUNCTION, Observation, PoolObservation
from tidal.sim.serverless.observation import FunctionPoolObservation
from tidal.core.serverlessfunction import (
    FunctionState,
    decide_function,
    function_state_from_dict,
    function_state_to_dict,
    function_worth_persisting,
)
from tidal.policies.keepalive import resumed

GROUP, VERSION, PLURAL = "tidal.dev", "v1alpha1", "serverlessfunctions"
APPLY_RETRY_MAX_FACTOR = 8
"""A failed child apply is retried after ``retry_backoff_s`` doubling per attempt, up to this many
times it (10, 20, 40, 80 s with the default 10 s): a 422 from a policy or a quota clears when a human
fixes it, and must not be retried in a tight loop meanwhile."""
MEMO_KEY = "tidal_keepalive_state"
COUNTS_KEY = "tidal_function_instance_counts"
"""(instances, ready) at the previous tick: the function's pods are listed for new starts only when
this changes or an instance is starting, not at every tick."""
ARRIVALS_CURSOR_KEY = "tidal_activator_arrivals_cursor"
"""The latest activator arrival the keep-alive policy has seen (wall-clock seconds)."""
LAST_TICK_KEY = "tidal_activator_last_tick_s"
WAKE_CURSOR_KEY = "tidal_activator_wake_cursor"
"""The latest activator arrival the demand handler has acted on."""
ROUTED_KEY = "tidal_activator_routed"
"""False, or the activator addresses this operator last routed the function's Service to."""
APPLY_FAILED = "ApplyFailed"
"""Reason of ``Degraded=True`` and of the Warning Event when applying a child failed."""


def apply_retry_delay_s(backoff_s: float, retry: int) -> float:
    """Delay before kopf retries a failed apply: exponential from ``backoff_s``, capped."""
    return backoff_s * min(2 ** max(retry, 0), APPLY_RETRY_MAX_FACTOR)


@dataclass(frozen=True)
class FunctionMetrics:
    """One tick's metrics of a function; ``available`` False means unknown (the policy holds).

    ``unobserved_instances`` counts Ready instances without a usable in-flight count (missing,
    stale or rejected): the function is then partially observed and never scaled down
    (tidal/policies/guards.py)."""

    available: bool
    message: str
    request_rate_rps: float | None = None
    running_requests: float | None = None
    unobserved_instances: int = 0


FunctionMetricsSource = Callable[[str, str, int, int], FunctionMetrics]
"""(namespace, name, current instances, ready instances) -> metrics. Called in a worker thread."""


def no_metrics(namespace: str, name: str, instances: int, ready: int) -> FunctionMetrics:
    return FunctionMetrics(
        False,
        "no Prometheus configured (--prometheus-url / operator.prometheusUrl); holding instances",
    )


class PrometheusFunctionMetrics:
    """Request rate and in-flight requests of a function's pods from Prometheus, validated per pod by
    the same step as engine metrics (:meth:`PrometheusMetrics.read_function`)."""

    def __init__(self, url: str, window_s: float):
        self._prometheus = PrometheusMetrics(PrometheusSettings(url=url))
        self._window_s = window_s

    def __call__(self, namespace: str, name: str, instances: int, ready: int) -> FunctionMetrics:
        read = self._prometheus.read_function(namespace=namespace, function=name, window_s=self._window_s)
        if not read.prometheus_reachable:
            return FunctionMetrics(False, f"Prometheus query failed: {read.message()}; holding instances")
        nothing = all(f.kind is FailureKind.EMPTY for f in read.failures) and len(read.failures) == 2
        if nothing and instances == 0:  # nothing runs, nothing exports: idle, not unknown
            return FunctionMetrics(True, "no instances running", 0.0, 0.0)
        if read.running_requests is None and read.request_rate_rps is None:
            if nothing:
                return FunctionMetrics(
                    False,
                    f"no {FUNCTION_REQUESTS_METRIC} or {FUNCTION_IN_FLIGHT_METRIC} series for the function's "
                    "pods; does the function export them and does Prometheus scrape it?",
                )
            return FunctionMetrics(False, f"{read.message()}; holding instances")
        reporting = sum(pod.running_requests is not None for pod in read.pods.values())
        unobserved = max(0, ready - reporting) if read.running_requests is not None else 0
        if read.rejections or unobserved:
            message = (f"partially observed ({read.message()}; {reporting} of {ready} Ready instances report "
                       "a usable in-flight count): scale-down held")
        else:
            message = "read from Prometheus" if read.complete else f"read from Prometheus; {read.message()}"
        return FunctionMetrics(True, message, read.request_rate_rps, read.running_requests, unobserved)


def default_metrics_source(settings: OperatorSettings) -> FunctionMetricsSource:
    if settings.prometheus_url is None:
        return no_metrics
    return PrometheusFunctionMetrics(settings.prometheus_url, settings.metrics_window_s)


def function_of(name: str, namespace: str, spec: ServerlessFunctionSpec) -> ServerlessFunction:
    return ServerlessFunction(metadata=ObjectMeta(name=name, namespace=namespace), spec=spec)


def read_deployment(clients: KubeClients, namespace: str, name: str) -> tuple[int, int] | None:
    """(spec replicas, ready replicas) of the function's Deployment, None when it does not exist."""
    try:
        deployment = clients.apps.read_namespaced_deployment(
            name, namespace, _request_timeout=clients.request_timeout_s
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return int(deployment.spec.replicas or 0), int(
        (deployment.status and deployment.status.ready_replicas) or 0
    )


def load_state(clients: KubeClients, namespace: str, name: str) -> FunctionState | None:
    """The keep-alive state and learnt starts persisted in the function's ConfigMap, None when
    there is none (yet)."""
    try:
        config_map = clients.core.read_namespaced_config_map(
            state_configmap_name(name), namespace, _request_timeout=clients.request_timeout_s
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return function_state_from_dict(state_from_configmap(config_map.data))


def read_instance_pods(clients: KubeClients, namespace: str, name: str) -> list[dict[str, Any]]:
    """The function's pods (camelCase dicts), for the starts they show."""
    pods = clients.core.list_namespaced_pod(
        namespace, label_selector=label_selector(name), _request_timeout=clients.request_timeout_s
    )
    return [clients.api.sanitize_for_serialization(p) for p in pods.items]


class ActivatorAddresses:
    """The activator's addresses, read at most once per ``ttl_s`` for all functions (one list call
    per interval, not one per function at zero). Local to one registered operator."""

    def __init__(self, clients: KubeClients, service: str, ttl_s: float) -> None:
        self._clients, self._service, self._ttl_s = clients, service, ttl_s
        self._value: ActivatorEndpoints | None = None
        self._read_at_s = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self) -> ActivatorEndpoints | None:
        async with self._lock:
            if time.monotonic() - self._read_at_s >= self._ttl_s or self._value is None:
                self._value = await asyncio.to_thread(read_activator_endpoints, self._clients, self._service)
                self._read_at_s = time.monotonic()
            return self._value


def delete_activator_slice(clients: KubeClients, namespace: str, name: str) -> bool:
    """Delete the function's activator EndpointSlice; False when there was none."""
    return delete_endpoint_slice(clients, namespace, activator_slice_name(name))


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _changed(previous: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if previous.get(k) != v}


def register(
    registry: kopf.OperatorRegistry,
    settings: OperatorSettings,
    clients: KubeClients,
    *,
    function_metrics: FunctionMetricsSource | None = None,
    clock: Clock = utcnow,
    wall_clock_s: Callable[[], float] = time.time,
    operator_metrics: OperatorMetrics | None = None,
) -> None:
    """Register the ServerlessFunction handlers. ``function_metrics`` defaults to Prometheus when
    ``settings.prometheus_url`` is set, else to "no metrics" (hold). Policy time is wall-clock
    seconds so the persisted last-activity time stays meaningful across operator restarts.
    ``operator_metrics``: the operator's own /metrics series (pool ``function``), when served."""
    metrics_source = function_metrics or default_metrics_source(settings)
    activator = settings.activator_service
    activity_window_s = settings.metrics_window_s if settings.prometheus_url else 0.0

    def validate(
        name: str,
        spec: Mapping[str, Any],
        body: Any,
        status: Mapping[str, Any],
        generation: int | None,
        patch: Any,
        now: datetime,
    ) -> ServerlessFunctionSpec | None:
        try:
            parsed = parse_spec(KIND, spec)
            problem = name_problem(name)
        except InvalidResource as exc:
            problem = "; ".join(str(e) for e in exc.errors)
        if problem is not None:
            patch.status.update(invalid_status(generation, problem, status, now))
            kopf.warn(body, reason="InvalidSpec", message=problem)
            return None
        assert isinstance(parsed, ServerlessFunctionSpec)
        return parsed

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, id="serverlessfunction-children")
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="serverlessfunction-children")
    # field="spec": the activator's demand annotations are handled by serverlessfunction-demand.
    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="serverlessfunction-children",
                    field="spec")
    async def apply_children(
        spec: Any,
        name: str,
        namespace: str,
        uid: str,
        status: Any,
        body: Any,
        meta: Any,
        patch: Any,
        logger: Any,
        retry: int,
        **_: Any,
    ) -> None:
        now = clock()
        generation = meta.get("generation")
        previous = dict(status or {})
        fn_spec = validate(name, spec, body, previous, generation, patch, now)
        if fn_spec is None:
            return
        replicas = instances_to_render(fn_spec, previous)
        conditions = previous.get("conditions") or []
        for child in render_children(function_of(name, namespace, fn_spec), uid, replicas):
            try:
                await asyncio.to_thread(apply_object, clients, child, settings.field_manager)
            except Exception as exc:  # noqa: BLE001 - every failed apply is reported and retried
                problem = (
                    f"apply {child['kind']} {child['metadata']['name']}: {describe_api_error(exc)}"
                )
                patch.status.update(
                    {
                        "conditions": set_condition(
                            conditions, "Degraded", True, APPLY_FAILED, problem, now, generation
                        )
                    }
                )
                if not retry:  # one Warning per spec version, not one per attempt
                    kopf.warn(body, reason=APPLY_FAILED, message=problem)
                raise kopf.TemporaryError(
                    problem, delay=apply_retry_delay_s(settings.retry_backoff_s, retry)
                ) from exc
        conditions = set_condition(
            conditions, "Degraded", False, "AsExpected", "", now, generation
        )
        ready = next((c for c in conditions if c.get("type") == "Ready"), None)
        if ready is None or ready.get("reason") == "InvalidSpec":
            conditions = set_condition(
                conditions,
                "Ready",
                False,
                "InstancesStarting",
                f"applied Deployment {name} with {replicas} instances",
                now,
                generation,
            )
        patch.status.update(
            {
                "observedGeneration": generation,
                "desiredInstances": replicas,
                "conditions": conditions,
            }
        )
        logger.info(
            "applied Deployment and Service %s/%s with %d instances", namespace, name, replicas
        )

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        id="serverlessfunction-keepalive",
        interval=settings.interval_s,
        when=not_deleted,
    )
    async def keepalive(
        spec: Any,
        name: str,
        namespace: str,
        uid: str,
        status: Any,
        body: Any,
        meta: Any,
        patch: Any,
        memo: Any,
        logger: Any,
        **_: Any,
    ) -> None:
        previous = dict(status or {})
        generation = meta.get("generation")
        if previous.get("observedGeneration") != generation:
            return  # the create/update handler has not applied this generation yet
        try:
            fn_spec = parse_spec(KIND, spec)
        except InvalidResource:
            return  # reported by the create/update handler
        if name_problem(name) is not None:
            return
        assert isinstance(fn_spec, ServerlessFunctionSpec)
        deployment = await asyncio.to_thread(read_deployment, clients, namespace, name)
        if deployment is None:
            return  # the create/update/resume handler applies it
        current, ready = deployment
        metrics = await asyncio.to_thread(metrics_source, namespace, name, current, ready)
        pool: PoolObservation = PoolObservation(
            ready_replicas=min(ready, current),
            starting_replicas=max(0, current - ready),
            request_rate_rps=metrics.request_rate_rps,
            running_requests=metrics.running_requests,
            unobserved_replicas=metrics.unobserved_instances,
        )
        now_s = wall_clock_s()
        state = memo.get(MEMO_KEY)
        if not isinstance(state, FunctionState):
            state = await asyncio.to_thread(load_state, clients, namespace, name)
            if state is not None and state.keepalive is not None:
                # a restart: never shorten a keep-alive (keepalive.resumed)
                state = FunctionState(resumed(state.keepalive, now_s, current), state.starts)
        starts = ()
        if current != ready or memo.get(COUNTS_KEY) != (current, ready):
            # An instance started or is starting: its pod's timestamps say how long it took.
            pods = await asyncio.to_thread(read_instance_pods, clients, namespace, name)
            starts = instance_starts(name, pods)
        keepalive_state = state.keepalive if state is not None else None
        if activator is not None:
            # The activator's held arrivals since the last tick: exact arrivals for the policy.
            annotations = dict(meta.get("annotations") or {})
            cursor = arrivals_cursor_s(memo.get(ARRIVALS_CURSOR_KEY),
                                       last_seen_s=keepalive_state.last_seen_s if keepalive_state else None,
                                       now_s=now_s, interval_s=settings.interval_s)
            arrivals = new_arrivals(annotations, cursor)
            activity = TickActivity(
                arrivals_s=arrivals,
                held=held_now(annotations, newer_than_s=memo.get(LAST_TICK_KEY, now_s - settings.interval_s)),
            )
            pool = function_pool(pool, activity, instances=current,
                                 idle_since_s=keepalive_state.idle_since_s if keepalive_state else None)
        observation = Observation(now_s, {POOL_FUNCTION: pool}, metrics_available=metrics.available,
                                  starts=starts)
        started = time.perf_counter()
        decision, new_state = decide_function(
            lambda cold_start_s: policy_for(
                fn_spec, cold_start_s=cold_start_s, activity_window_s=activity_window_s
            ),
            observation,
            state,
        )
        latency_s = time.perf_counter() - started
        persisted = function_state_to_dict(new_state)
        if persisted is not None and function_worth_persisting(state, new_state):
            config_map = render_state_configmap(
                function_of(name, namespace, fn_spec), uid, persisted
            )
            await asyncio.to_thread(apply_object, clients, config_map, settings.field_manager)
        memo[MEMO_KEY] = (
            new_state  # only after it is persisted, so a failed write is retried next tick
        )
        memo[COUNTS_KEY] = (current, ready)
        if activator is not None:
            memo[ARRIVALS_CURSOR_KEY] = (
                pool.last_arrival_s
                if isinstance(pool, FunctionPoolObservation) and pool.last_arrival_s is not None
                else cursor
            )
            memo[LAST_TICK_KEY] = now_s
        desired = decision.desired_replicas.get(POOL_FUNCTION, current)
        degraded: str | None = None
        if desired != current:
            child = render_deployment(function_of(name, namespace, fn_spec), uid, desired)
            try:
                await asyncio.to_thread(apply_object, clients, child, settings.field_manager)
            except Exception as exc:  # noqa: BLE001 - reported; the next tick decides and applies again
                degraded = f"scale Deployment {name} {current} -> {desired}: {describe_api_error(exc)}"
                if not _condition_true(previous, "Degraded"):
                    kopf.warn(body, reason=APPLY_FAILED, message=degraded)
                logger.warning("%s/%s: %s", namespace, name, degraded)
                desired = current  # nothing changed in the cluster; no cold starts to count
            else:
                why = "; ".join(r.message for r in decision.reasons)
                kopf.info(body, reason="Scaled", message=f"instances {current} -> {desired}: {why}")
                logger.info("scaled %s/%s %d -> %d: %s", namespace, name, current, desired, why)
        if activator is not None:
            await route(function_of(name, namespace, fn_spec), uid, ready, memo, body, logger)
        if operator_metrics is not None:
            operator_metrics.record_tick(namespace, name, POOL_FUNCTION, desired=desired, ready=ready,
                                         observed_rps=metrics.request_rate_rps, forecast_rps=None,
                                         latency_s=latency_s)
            for _ in range(cold_starts_added(current, desired)):
                operator_metrics.count_cold_start(namespace, name, POOL_FUNCTION)
        new_status = compute_status(
            generation=generation,
            desired=desired,
            ready=ready,
            decision=decision,
            metrics_available=metrics.available,
            metrics_message=metrics.message,
            previous=previous,
            now=clock(),
            cold_starts=cold_starts_added(current, desired),
            degraded=degraded,
        )
        changes = _changed(previous, new_status)
        if changes:
            patch.status.update(changes)

    addresses = ActivatorAddresses(clients, activator, settings.interval_s) if activator else None

    async def route(fn: ServerlessFunction, uid: str, ready: int, memo: Any, body: Any, logger: Any) -> None:
        """Route the function's Service to the activator while nothing is ready, else back (an
        EndpointSlice applied when the activator's addresses change, deleted when an instance is
        ready; events on each switch). A failure is logged and retried at the next tick: the
        Service keeps its own endpoints whatever happens here."""
        assert activator is not None and addresses is not None
        namespace, name = fn.metadata.namespace or "", fn.metadata.name or ""
        routed = memo.get(ROUTED_KEY)  # None: unknown (a restart); False; or the addresses applied
        try:
            if routes_to_activator(ready):
                endpoints = await addresses.get()
                if endpoints is None:
                    logger.warning("%s/%s has no ready instance and the activator %s has no ready "
                                   "endpoint: requests fail until one is ready", namespace, name, activator)
                    return
                if routed != endpoints:
                    await asyncio.to_thread(apply_object, clients, render_activator_slice(fn, uid, endpoints),
                                            settings.field_manager)
                if not isinstance(routed, ActivatorEndpoints):
                    kopf.info(body, reason="RoutedToActivator",
                              message=f"no ready instance: Service traffic goes to the activator {activator}")
                memo[ROUTED_KEY] = endpoints
            elif routed is not False:
                if await asyncio.to_thread(delete_activator_slice, clients, namespace, name):
                    kopf.info(body, reason="RoutedToInstances",
                              message=f"{ready} instances ready: the activator left the Service's path")
                memo[ROUTED_KEY] = False
        except Exception as exc:  # noqa: BLE001 - the next tick routes again
            logger.warning("routing %s/%s through the activator: %s", namespace, name, describe_api_error(exc))

    if activator is not None:

        @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry, id="serverlessfunction-demand",
                        field="metadata.annotations")
        async def wake(
            spec: Any, name: str, namespace: str, uid: str, meta: Any, status: Any, body: Any,
            memo: Any, logger: Any, **_: Any,
        ) -> None:
            """The activator holds requests: at zero instances start some now, not at the next tick."""
            annotations = dict(meta.get("annotations") or {})
            # After a restart, arrivals older than one interval are old news, not demand.
            cursor = arrivals_cursor_s(memo.get(WAKE_CURSOR_KEY), last_seen_s=None,
                                       now_s=wall_clock_s(), interval_s=settings.interval_s)
            arrivals = new_arrivals(annotations, cursor)
            if not arrivals:
                return
            memo[WAKE_CURSOR_KEY] = arrivals[-1]
            try:
                fn_spec = parse_spec(KIND, spec)
            except InvalidResource:
                return  # reported by the create/update handler
            if name_problem(name) is not None or (status or {}).get("observedGeneration") != meta.get("generation"):
                return
            assert isinstance(fn_spec, ServerlessFunctionSpec)
            deployment = await asyncio.to_thread(read_deployment, clients, namespace, name)
            if deployment is None or deployment[0] > 0:
                return  # not applied yet, or instances exist or are starting
            held = held_now(annotations, newer_than_s=cursor)
            desired = wake_instances(fn_spec, held)
            fn = function_of(name, namespace, fn_spec)
            await asyncio.to_thread(apply_object, clients, render_deployment(fn, uid, desired), settings.field_manager)
            message = f"instances 0 -> {desired}: {held} requests held by the activator since {arrivals[0]:.3f}"
            kopf.info(body, reason="Scaled", message=message)
            logger.info("woke %s/%s: %s", namespace, name, message)
            if operator_metrics is not None:
                for _ in range(desired):
                    operator_metrics.count_cold_start(namespace, name, POOL_FUNCTION)
            await route(fn, uid, 0, memo, body, logger)

    @kopf.on.event(
        GROUP,
        VERSION,
        PLURAL,
        registry=registry,
        id="serverlessfunction-deleted",
        when=is_deletion_event,
    )
    def forget_deleted(memo: Any, **_: Any) -> None:
        mark_deleted(memo)  # stops the keep-alive timer: there is no finalizer to wait for it

    timers_need_no_finalizer(registry, ["serverlessfunction-keepalive"])
