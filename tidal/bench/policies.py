"""The bench's policies by name: how each is built for one (trace, mode, setup) cell.

Two kinds of entries:

- **Scaling policies** built the way ``tidal/policies/baselines/catalog.py`` exposes its
  rivals: ``factory(min_replicas=..., max_replicas=..., **params)`` returns an
  :class:`~tidal.policies.interface.Autoscaler`. :func:`from_factory` turns such a factory
  into a bench entry, so a catalog baseline is one line:
  ``"hpa": BenchPolicy(from_factory(BASELINE_FACTORIES["hpa"]), "Kubernetes HPA"),``.
- **References** searched with the simulator on the very trace they are judged on
  (static-peak, oracle): their builder receives the requests and may hand back the full
  replay it already ran, so the cell does not replay it twice.

``--policies`` takes ``name`` or ``name:key=value,key=value`` (values parsed as int, float,
or text) and passes the pairs to the factory as ``**params``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidal.bench.oracle import search_oracle
from tidal.bench.probe import Feasibility
from tidal.bench.profiling import heteroscale_targets, profile_engine, workload_lengths
from tidal.bench.settings import FIXED_REPLICAS_PER_POOL, RIVAL_TARGET_PER_POD
from tidal.bench.static_peak import search_static_peak
from tidal.bench.tidal_policy import tidal_autoscaler
from tidal.bench.workloads import BenchSLO
from tidal.policies.baselines.catalog import BASELINE_FACTORIES, PROFILED_BASELINE_FACTORIES
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.policies.interface import AcceleratorProfile, Autoscaler
from tidal.policies.planner import PLANNER_FACTORIES, PLANNER_NAME
from tidal.policies.profile import ModelShape
from tidal.policies.utilization import UtilizationTarget
from tidal.sim.hardware import get_accelerator, get_model
from tidal.sim.runner import MODE_DISAGGREGATED, SimConfig, SimResult
from tidal.sim.traces import LLMRequest


@dataclass(frozen=True)
class PolicyContext:
    """Everything a builder may use for one cell."""

    requests: Sequence[LLMRequest]
    config: SimConfig
    slo: BenchSLO
    limits: Feasibility
    min_replicas: int
    max_replicas: int
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def pools(self) -> tuple[str, ...]:
        return self.config.pools


@dataclass(frozen=True)
class Prepared:
    """A built policy; ``result`` is a full replay of exactly this policy and config, when
    building already ran one; ``notes`` are facts for the report (e.g. searched sizes)."""

    autoscaler: Autoscaler
    result: SimResult | None = None
    notes: Mapping[str, Any] = field(default_factory=dict)
    latency_percentile: float | None = None
    """The percentile (a fraction) the simulator reports TTFT/TPOT at in this policy's observations,
    when the policy states one (the CR's ``spec.slo.percentile``); ``None``: the config's."""


Builder = Callable[[PolicyContext], Prepared]


class PolicyBuildError(ValueError):
    """A policy could not be built from its ``--policies`` parameters."""


@dataclass(frozen=True)
class BenchPolicy:
    builder: Builder
    description: str
    modes: frozenset[str] | None = None
    """Serving modes the policy is defined for (None: every mode); the matrix skips the others."""

    def runs_in(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


def from_factory(factory: Callable[..., Autoscaler]) -> Builder:
    """A bench builder for a catalog-style ``factory(min_replicas=, max_replicas=, **params)``;
    ``--policies`` parameters may override the bench's bounds too."""

    def build(ctx: PolicyContext) -> Prepared:
        bounds = {"min_replicas": ctx.min_replicas, "max_replicas": ctx.max_replicas}
        return Prepared(factory(**{**bounds, **ctx.params}))

    return build


def _with_defaults(factory: Callable[..., Autoscaler], **defaults: Any) -> Callable[..., Autoscaler]:
    """``factory`` with bench-wide parameter defaults that ``--policies`` parameters still override."""

    def build(**params: Any) -> Autoscaler:
        return factory(**{**defaults, **params})

    return build


def _tidal_planner(ctx: PolicyContext) -> Prepared:
    """tidal's SLO planner, given what a user's CR and AcceleratorClass would say: the model's
    published shape and the GPU's datasheet (peak FLOP/s, bandwidth, memory), never the simulator's
    step times; its online correction learns the rest from observed TTFT/TPOT."""
    model = get_model(ctx.config.model)
    gpu = get_accelerator(ctx.config.accelerator)
    shape = ModelShape(parameters=model.params, weights_bytes=model.weights_bytes, layers=model.n_layers,
                       hidden=model.hidden, kv_heads=model.n_kv_heads, head_dim=model.head_dim,
                       kv_bytes_per_element=model.kv_cache_bytes)
    profile = AcceleratorProfile(gpu.name, ctx.config.gpu_hour_cost_usd or 0.0, gpu.peak_bf16_flops / 1e12,
                                 gpu.memory_bandwidth_bps / 1e9, float(gpu.memory_bytes))
    bounds = {"min_replicas": ctx.min_replicas, "max_replicas": ctx.max_replicas}
    return Prepared(PLANNER_FACTORIES[PLANNER_NAME](
        **{**bounds, **ctx.params}, model=shape, accelerator=profile, tp=ctx.config.tp,
        slo_ttft_s=ctx.slo.ttft_s, slo_tpot_s=ctx.slo.tpot_s, percentile=ctx.config.slo.percentile))


def _tidal(ctx: PolicyContext) -> Prepared:
    """tidal as the operator runs it: a ModelDeployment CR through the core (tidal/bench/tidal_policy.py);
    ``params`` are ``spec.autoscaling`` fields, e.g. ``tidal:prewarm=false``."""
    params = {k: (v.lower() == "true" if isinstance(v, str) and v.lower() in ("true", "false") else v)
              for k, v in ctx.params.items()}
    shell = tidal_autoscaler(ctx.config, ctx.min_replicas, ctx.max_replicas, **params)
    return Prepared(shell, latency_percentile=shell.wl.md.spec.slo.percentile / 100.0)


def _dynamo_planner(ctx: PolicyContext) -> Prepared:
    """Dynamo's SLA planner with the profile its pre-deployment profiler would measure on this
    setup's engine (``tidal.bench.profiling``) and the workload's SLO as its TTFT/ITL targets."""
    params = {"min_replicas": ctx.min_replicas, "max_replicas": ctx.max_replicas,
              "ttft_s": ctx.slo.ttft_s, "itl_s": ctx.slo.tpot_s, **ctx.params}
    return Prepared(PROFILED_BASELINE_FACTORIES["dynamo-planner"](
        profile=profile_engine(ctx.config), **params))


def _heteroscale(ctx: PolicyContext) -> Prepared:
    """HeteroScale with its decode TPS target and P/D ratio read off the same profile at the
    workload's mean request (its offline load tests), the TPOT target as the ITL limit."""
    isl, osl = workload_lengths(ctx.requests)
    targets = heteroscale_targets(profile_engine(ctx.config), isl, osl, ctx.slo.tpot_s)
    params = {"min_replicas": ctx.min_replicas, "max_replicas": ctx.max_replicas,
              "target_decode_tps_per_replica": targets.target_decode_tps_per_replica,
              "pd_ratio": targets.pd_ratio, **ctx.params}
    return Prepared(PROFILED_BASELINE_FACTORIES["heteroscale"](**params),
                    notes={"target_decode_tps_per_replica": round(
                        targets.target_decode_tps_per_replica, 1),
                        "pd_ratio": round(targets.pd_ratio, 3)})


def _fixed(ctx: PolicyContext) -> Prepared:
    unknown = set(ctx.params) - {"replicas"}
    if unknown:
        raise ValueError(f"fixed takes only 'replicas', got {', '.join(sorted(unknown))}")
    replicas = int(ctx.params.get("replicas", FIXED_REPLICAS_PER_POOL))
    return Prepared(FixedReplicas({pool: replicas for pool in ctx.pools}))


def _no_params(name: str, ctx: PolicyContext) -> None:
    if ctx.params:
        raise ValueError(f"{name} takes no parameters, got {', '.join(sorted(ctx.params))}")


def _static_peak(ctx: PolicyContext) -> Prepared:
    _no_params(STATIC_PEAK, ctx)
    peak = search_static_peak(ctx.requests, ctx.config, ctx.slo, ctx.limits,
                              min_replicas=ctx.min_replicas, max_replicas=ctx.max_replicas)
    return Prepared(peak.policy(), notes={"replicas": dict(peak.replicas), "met": peak.met,
                                          "window_replays": peak.replays})


def _oracle(ctx: PolicyContext) -> Prepared:
    _no_params(ORACLE, ctx)
    found = search_oracle(ctx.requests, ctx.config, ctx.slo, ctx.limits,
                          min_replicas=ctx.min_replicas, max_replicas=ctx.max_replicas)
    return Prepared(found.policy, result=found.result,
                    notes={"ttft_infeasible": found.ttft_infeasible,
                           "kv_infeasible": found.kv_infeasible,
                           "capped_intervals": found.capped_intervals,
                           "repaired_intervals": found.repaired_intervals,
                           "window_replays": found.window_replays,
                           "full_replays": found.full_replays})


ORACLE = "oracle"
STATIC_PEAK = "static-peak"

POLICIES: dict[str, BenchPolicy] = {
    "utilization": BenchPolicy(from_factory(UtilizationTarget),
                               "tidal's current rule: in-flight requests per replica (target 16)"),
    "fixed": BenchPolicy(_fixed, f"{FIXED_REPLICAS_PER_POOL} replicas per pool, by hand"),
    STATIC_PEAK: BenchPolicy(_static_peak, "fewest replicas meeting the SLO at the peak, "
                             "all run long (searched)"),
    ORACLE: BenchPolicy(_oracle, "clairvoyant per-minute plan, one cold start ahead "
                        "(searched lower bound)"),
    "tidal": BenchPolicy(_tidal, "tidal as the operator runs it: a ModelDeployment CR through the decision "
                         "core (SLO planner, forecast pre-warm, guards)"),
    PLANNER_NAME: BenchPolicy(_tidal_planner, "the SLO planner alone: goodput per replica from a roofline "
                              "profile, corrected online, without the core (no forecast, p90)"),
    # The rivals, as tidal/policies/baselines re-implements them with their documented defaults.
    "hpa": BenchPolicy(from_factory(BASELINE_FACTORIES["hpa"]),
                       "Kubernetes HPA on running+waiting per pod (target 16)"),
    "keda": BenchPolicy(from_factory(BASELINE_FACTORIES["keda"]),
                        "KEDA Prometheus scaler over the HPA (same metric and target)"),
    "knative-kpa": BenchPolicy(from_factory(_with_defaults(BASELINE_FACTORIES["knative-kpa"],
                                                           target_concurrency_per_pod=RIVAL_TARGET_PER_POD)),
                               "Knative KPA on concurrency (target 16 per pod x 70 %)"),
    "aibrix-kpa": BenchPolicy(from_factory(BASELINE_FACTORIES["aibrix-kpa"]), "AIBrix KPA (its vLLM metric)"),
    "aibrix-apa": BenchPolicy(from_factory(BASELINE_FACTORIES["aibrix-apa"]), "AIBrix APA (its vLLM metric)"),
    # The profile-driven rivals, on a profile swept from the setup's (unperturbed) engine.
    "dynamo-planner": BenchPolicy(_dynamo_planner, "Dynamo SLA planner: 180 s forecast + "
                                  "pre-deployment profile of the engine"),
    "heteroscale": BenchPolicy(_heteroscale, "HeteroScale: decode tokens/s, prefill at a fixed "
                               "profiled P/D ratio (disaggregated only)",
                               modes=frozenset({MODE_DISAGGREGATED})),
}
"""Every policy the bench can run, in table order."""


def build_policy(spec: "PolicySpec", ctx: PolicyContext) -> Prepared:
    """Build ``spec`` for one cell; bad parameters raise :class:`PolicyBuildError` naming it."""
    try:
        return POLICIES[spec.name].builder(ctx)
    except (TypeError, ValueError) as exc:
        raise PolicyBuildError(f"policy {spec.label!r}: {exc}") from None


@dataclass(frozen=True)
class PolicySpec:
    """A ``--policies`` item: the entry's name and its parameters."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params)


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_policy_spec(text: str) -> PolicySpec:
    """``name`` or ``name:key=value,...``; errors name the accepted policies and the syntax."""
    name, _, rest = text.strip().partition(":")
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; accepted: {', '.join(POLICIES)}")
    params = []
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"policy {text!r}: parameter {item!r} is not key=value "
                             f"(syntax: name:key=value,key=value)")
        params.append((key, _value(value)))
    return PolicySpec(name, tuple(params))
