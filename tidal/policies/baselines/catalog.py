"""The rivals' autoscalers by name, for ``tidal bench``.

Each entry is ``factory(min_replicas, max_replicas, **params)``.

Every factory returns an :class:`~tidal.policies.interface.Autoscaler` with the rival's
documented defaults (``tidal.policies.baselines.defaults``); ``params`` are the fields of the
policy's dataclass (for example ``target_per_pod`` for ``hpa``, ``threshold`` for ``keda``,
``target_concurrency_per_pod`` for ``knative-kpa``, ``target_value`` for the AIBrix ones). An
unknown parameter raises ``TypeError`` naming it. Each policy exposes ``tick_s``, the rival's
control period, for shells that want to run it at its own cadence.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

from tidal.policies.baselines.aibrix import STRATEGY_APA, STRATEGY_KPA, AIBrixAutoscaler
from tidal.policies.baselines.heteroscale import HeteroScaleStyle
from tidal.policies.baselines.hpa import KubernetesHPA
from tidal.policies.baselines.keda import KedaPrometheus
from tidal.policies.baselines.kpa import KnativeKPA
from tidal.policies.baselines.planner import DynamoStylePlanner
from tidal.policies.interface import Autoscaler


def _hpa(min_replicas: int, max_replicas: int, **params: Any) -> Autoscaler:
    return KubernetesHPA(min_replicas=min_replicas, max_replicas=max_replicas, **params)


def _keda(min_replicas: int, max_replicas: int, **params: Any) -> Autoscaler:
    return KedaPrometheus(min_replicas=min_replicas, max_replicas=max_replicas, **params)


def _knative_kpa(min_replicas: int, max_replicas: int, **params: Any) -> Autoscaler:
    return KnativeKPA(min_replicas=min_replicas, max_replicas=max_replicas, **params)


def _aibrix(strategy: str, min_replicas: int, max_replicas: int, **params: Any) -> Autoscaler:
    return AIBrixAutoscaler(strategy=strategy, min_replicas=min_replicas,
                            max_replicas=max_replicas, name=f"aibrix-{strategy}", **params)


BASELINE_FACTORIES: Mapping[str, Callable[..., Autoscaler]] = {
    "hpa": _hpa,
    "keda": _keda,
    "knative-kpa": _knative_kpa,
    "aibrix-kpa": partial(_aibrix, STRATEGY_KPA),
    "aibrix-apa": partial(_aibrix, STRATEGY_APA),
}
"""Baseline name -> ``factory(min_replicas, max_replicas, **params)``."""


def _dynamo_planner(min_replicas: int, max_replicas: int, **params: Any) -> Autoscaler:
    return DynamoStylePlanner(min_replicas=min_replicas, max_replicas=max_replicas, **params)


def _heteroscale(min_replicas: int, max_replicas: int, **params: Any) -> Autoscaler:
    return HeteroScaleStyle(min_replicas=min_replicas, max_replicas=max_replicas, **params)


PROFILED_BASELINE_FACTORIES: Mapping[str, Callable[..., Autoscaler]] = {
    "dynamo-planner": _dynamo_planner,
    "heteroscale": _heteroscale,
}
"""Baselines that need a pre-deployment profile: ``dynamo-planner`` takes
``profile=PerformanceProfile(...)`` (and ``ttft_s``, ``itl_s`` targets), ``heteroscale`` takes
``target_decode_tps_per_replica`` (and ``pd_ratio``). Whoever calls them supplies the profile;
they never read the simulator's performance model."""
