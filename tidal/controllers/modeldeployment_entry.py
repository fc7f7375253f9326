"""A ModelDeployment's entry behind the activator: when to route it there, and what the activator's
demand means to the decision core.

The entry is the Service named after the ModelDeployment (``pd_router.render_entry_service``): the
unified pool's engines, or the P/D router in front of the prefill and decode pools. The pools that
serve a request arriving there are the *entry path*: ``unified``, or ``prefill`` and ``decode``.

- **Routing.** While the entry cannot serve a request, the operator adds the EndpointSlice
  ``<name>-activator`` to the entry Service (``activator_routing.render_service_activator_slice``,
  as for ServerlessFunctions) and deletes it once the entry can. Unified: a Ready unified replica.
  Disaggregated: a Ready router *and* a Ready prefill *and* a Ready decode replica: a router with
  no prefill or no decode worker cannot answer (its readiness probe waits for both workers, but a
  router that is Ready while a pool just went to zero is not trusted either).
- **Demand.** The activator writes the arrivals it held to the ModelDeployment's
  ``demand.activator.tidal.dev/*`` annotations (``tidal.activator.demand``). Every request that
  finds the entry unable to serve reaches the activator, so while the entry is routed there, the
  arrivals in the metrics window *are* the entry's request rate. :func:`entry_observation` turns
  them into the entry pool's ``entry_request_rate_rps`` (0 when there were none, so
  ``scaleToZero`` can park) and, for a pool at zero, into the whole observation the simulator
  makes for it (``tidal/sim/runner.py``: nothing running, the held requests waiting, the windowed
  rate and its per-interval peak): a pool at zero behind the activator is fully observed.

Only ModelDeployments that can be at zero are fronted: ``scaleToZero``, or ``minReplicas: 0`` on
a pool of the entry path. Target mode (``scaleTargetRef``) renders no entry Service: never fronted.
Pure: the operator does the I/O.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, replace
from typing import Any, Mapping

from tidal.activator.demand import reports
from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.activator_routing import ActivatorEndpoints, render_service_activator_slice
from tidal.controllers.labels import COMPONENT_LABEL, DEPLOYMENT_LABEL
from tidal.controllers.modeldeployment import owner_reference, pools_of, target_mode
from tidal.controllers.pd_router import entry_service_name
from tidal.policies.interface import PoolObservation

UNIFIED_PATH = ("unified",)
DISAGGREGATED_PATH = ("prefill", "decode")


def entry_path(md: ModelDeployment) -> tuple[str, ...]:
    """The pools a request at the entry needs, the entry pool first (the core's ``pools[0]``)."""
    return DISAGGREGATED_PATH if md.spec.mode == "disaggregated" else UNIFIED_PATH


def fronted_by_activator(md: ModelDeployment) -> bool:
    """Whether the activator fronts this ModelDeployment's entry: it can be at zero."""
    if target_mode(md):
        return False
    pools = pools_of(md)
    return bool(md.spec.autoscaling.scale_to_zero) or any(
        pools[p].min_replicas == 0 for p in entry_path(md) if p in pools)


def entry_ready(md: ModelDeployment, ready: Mapping[str, int], routers_ready: int) -> bool:
    """Whether the entry Service can serve a request: a Ready replica of every entry-path pool,
    and in P/D mode a Ready router."""
    if any(ready.get(p, 0) <= 0 for p in entry_path(md)):
        return False
    return md.spec.mode != "disaggregated" or routers_ready > 0


def entry_slice_name(md_name: str) -> str:
    return f"{entry_service_name(md_name)}-activator"


def render_entry_activator_slice(md: ModelDeployment, uid: str, endpoints: ActivatorEndpoints) -> dict[str, Any]:
    """The EndpointSlice that adds the activator to the ModelDeployment's entry Service."""
    name = md.metadata.name or ""
    return render_service_activator_slice(
        namespace=md.metadata.namespace, service=entry_service_name(name),
        labels={DEPLOYMENT_LABEL: name, COMPONENT_LABEL: "activator"},
        owner=owner_reference("ModelDeployment", name, uid), endpoints=endpoints)


@dataclass(frozen=True)
class EntryDemand:
    """What the activator reported for one ModelDeployment, over the operator's metrics window."""

    rate_rps: float
    """Held arrivals in ``[now - window, now)`` per second of the window."""
    peak_rps: float
    """The highest of those per interval (the window cut into intervals ending at ``now``)."""
    held: int
    """Requests the activator holds now (reports sent within the last interval)."""


def entry_demand(annotations: Mapping[str, str] | None, *, now_s: float, window_s: float,
                 interval_s: float) -> EntryDemand:
    """The activator's demand, windowed the way the simulator windows arrivals (``PoolMetrics``:
    buckets of one interval, the window's worth ending at the tick). Each replica reports its last
    64 arrivals, so past 64 per replica in a window the rate is a lower bound: enough to wake a
    pool, and the engines' own rate takes over once they serve."""
    found = reports(annotations)
    start = now_s - window_s
    arrivals = sorted(t for r in found for t in r.arrivals_s if start <= t < now_s)
    buckets = max(1, math.ceil(window_s / interval_s - 1e-9))
    peak = 0.0
    for k in range(buckets):
        hi, lo = now_s - k * interval_s, max(start, now_s - (k + 1) * interval_s)
        if hi > lo:
            peak = max(peak, (bisect_left(arrivals, hi) - bisect_left(arrivals, lo)) / (hi - lo))
    held = sum(r.held for r in found if r.sent_s > now_s - interval_s)
    return EntryDemand(len(arrivals) / window_s, peak, held)


def entry_observation(md: ModelDeployment, pools: Mapping[str, PoolObservation],
                      demand: EntryDemand) -> dict[str, PoolObservation]:
    """The entry path's pools with the activator's demand, for a ModelDeployment it fronts.

    A pool at zero replicas is observed whole: nothing runs; the entry pool has the held requests
    waiting and the activator's rate as its request and entry rate (and no change in flight: the
    activator's arrivals are the arrivals); another entry-path pool at zero (P/D decode) has nothing
    arriving (the activator holds every request until the whole path is Ready). A pool with replicas
    keeps its engine metrics, except that the entry pool's peak and entry rates are the larger of the
    engines' arrival estimate (``PoolObservation.arrival_rate_rps``) and the activator's (never their
    sum: a held request is counted by the activator on arrival and by the engine once forwarded;
    while it starts, the held requests are the demand) and the held requests are added to its
    waiting ones; its request rate stays the engines' completions. Unknown engine values stay unknown (the core holds on them)."""
    path = entry_path(md)
    out = dict(pools)
    for pool in path:
        obs = pools.get(pool, PoolObservation(ready_replicas=0))
        is_entry = pool == path[0]
        if obs.current_replicas == 0 and obs.ready_replicas == 0:
            rate = demand.rate_rps if is_entry else 0.0
            out[pool] = replace(obs, running_requests=0.0, waiting_requests=float(demand.held if is_entry else 0),
                                request_rate_rps=rate, entry_request_rate_rps=rate, in_flight_change_rps=0.0,
                                peak_request_rate_rps=demand.peak_rps if is_entry else 0.0,
                                prompt_tokens_rps=0.0, output_tokens_rps=0.0, unobserved_replicas=0)
        elif is_entry:
            engines, peak, waiting = obs.arrival_rate_rps, obs.peak_request_rate_rps, obs.waiting_requests
            out[pool] = replace(
                obs, entry_request_rate_rps=demand.rate_rps if engines is None else max(engines, demand.rate_rps),
                peak_request_rate_rps=None if peak is None else max(peak, demand.peak_rps),
                waiting_requests=None if waiting is None else waiting + demand.held)
    return out
