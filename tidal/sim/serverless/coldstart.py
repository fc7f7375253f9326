"""Cold-start time of a serverless function instance, as the sum of its production components.

Huawei Cloud's cold-start study (Joosen et al., "Serverless Cold Starts and
Where to Find Them", EuroSys'25, arXiv:2410.06145; data and schema in
github.com/sir-lab/data-release, ``README_data_release_2025.md``) splits every
cold start into four logged parts:

- pod allocation: take a pod from the warm pool, or start one if none is free;
- code deployment: download, extract and deploy the function's code;
- dependency deployment: fetch and load the function's dependencies (zero for
  functions without separate dependencies);
- scheduling: networking, routing and scheduling overheads.

The paper's headline: in Region 1 cold starts take up to 7 s and are dominated
by dependency deployment and scheduling; in Region 2 up to 3 s, dominated by
pod allocation. Only those bounds and the example rows of the release's demo
notebook (``src/demo_cold_start.ipynb``, rows of Regions 1 and 5: pod allocation
0.1-27 ms, code 0.001-1.7 s, dependency 0 or 0.4-4.3 s, scheduling 0.15-3.6 s)
were available here, not the full distributions, so each component is a
log-normal whose median and spread are chosen to reproduce those bounds (the
sum's p99 near the "up to" figure). The exact numbers are in docs/simulator.md
("Serverless platform"). They are assumptions fitted to published bounds, not
fits to the 11.9 million recorded cold starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

COMPONENTS = ("pod_allocation_s", "code_deployment_s", "dependency_deployment_s", "scheduling_s")


@dataclass(frozen=True)
class Component:
    """One cold-start phase: zero with probability ``1 - p_present``, else log-normal."""

    median_s: float
    sigma: float
    p_present: float = 1.0

    def __post_init__(self) -> None:
        if self.median_s < 0 or self.sigma < 0 or not 0.0 <= self.p_present <= 1.0:
            raise ValueError(f"component needs median_s >= 0, sigma >= 0 and p_present in [0, 1], "
                             f"got {self}")


@dataclass(frozen=True)
class FunctionColdStartModel:
    """Distribution of one instance's cold start (seconds), the sum of four components."""

    name: str
    pod_allocation: Component
    code_deployment: Component
    dependency_deployment: Component
    scheduling: Component

    def components(self) -> tuple[Component, ...]:
        return (self.pod_allocation, self.code_deployment, self.dependency_deployment,
                self.scheduling)

    def sample(self, rng: np.random.Generator) -> tuple[float, float, float, float]:
        """One cold start's components, in the order of ``COMPONENTS``."""
        out = []
        for comp in self.components():
            if comp.median_s == 0.0 or (comp.p_present < 1.0 and rng.random() >= comp.p_present):
                out.append(0.0)
            elif comp.sigma == 0.0:
                out.append(comp.median_s)
            else:
                out.append(comp.median_s * math.exp(comp.sigma * rng.standard_normal()))
        return out[0], out[1], out[2], out[3]


HUAWEI_R1 = FunctionColdStartModel(
    name="huawei-r1",
    # Example rows: 0.0006, 0.0008, 0.0006, 0.0007, 0.015 s (pod taken from the warm pool).
    pod_allocation=Component(median_s=0.002, sigma=1.5),
    # Example rows: 0.001-0.052 s typical, 1.7 s for a large package.
    code_deployment=Component(median_s=0.04, sigma=1.3),
    # Zero in most example rows; 0.42 s and 4.3 s when present. "Dominated by dependency
    # deployment and scheduling": present in a third of starts (assumption), median 1 s.
    dependency_deployment=Component(median_s=1.0, sigma=0.9, p_present=0.3),
    # Example rows: 0.15, 0.16, 0.39, 0.38, 0.54, 0.91, 1.0, 1.6, 2.6, 3.6 s.
    scheduling=Component(median_s=0.6, sigma=0.8),
)
"""Region 1: cold starts up to ~7 s (p99 of the sum); dependencies and scheduling dominate."""

HUAWEI_R2 = FunctionColdStartModel(
    name="huawei-r2",
    # "Dominated by pod allocation time": a fresh pod start, median 0.5 s (assumption).
    pod_allocation=Component(median_s=0.5, sigma=0.6),
    code_deployment=Component(median_s=0.03, sigma=1.0),
    dependency_deployment=Component(median_s=0.3, sigma=0.8, p_present=0.1),
    scheduling=Component(median_s=0.15, sigma=0.6),
)
"""Region 2: cold starts up to ~3 s (p99 of the sum), pod allocation dominates."""

PRESETS: dict[str, FunctionColdStartModel] = {m.name: m for m in (HUAWEI_R1, HUAWEI_R2)}
DEFAULT_PRESET = HUAWEI_R1.name


def fixed_cold_start(seconds: float) -> FunctionColdStartModel:
    """Every cold start takes exactly ``seconds`` (all of it counted as scheduling); for tests."""
    if seconds < 0:
        raise ValueError(f"cold start must be >= 0 s, got {seconds}")
    zero = Component(0.0, 0.0)
    return FunctionColdStartModel(name=f"fixed:{seconds:g}", pod_allocation=zero,
                                  code_deployment=zero, dependency_deployment=zero,
                                  scheduling=Component(seconds, 0.0))


def parse_cold_start(spec: str) -> FunctionColdStartModel:
    """``huawei-r1``, ``huawei-r2`` or ``fixed:SECONDS``; errors list what is accepted."""
    if spec in PRESETS:
        return PRESETS[spec]
    name, _, arg = spec.partition(":")
    if name == "fixed":
        try:
            return fixed_cold_start(float(arg))
        except ValueError:
            pass
    raise ValueError(f"unknown cold-start model {spec!r}; use one of "
                     f"{', '.join(PRESETS)} or fixed:SECONDS")
