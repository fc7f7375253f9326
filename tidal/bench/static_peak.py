"""Static peak provisioning: the fewest replicas per pool that meet the SLO at the trace's
peak, held for the whole run. What a careful operator without an autoscaler deploys.

The peak is searched, not guessed: the trace is cut into ``ORACLE_INTERVAL_S`` windows and
the busiest ``STATIC_PEAK_CANDIDATES`` windows by each load measure (requests, prompt tokens,
output tokens; they peak at different times when prompt lengths vary) are candidates. For
each candidate the simulator finds the fewest replicas meeting the target attainment
(``search.fewest_replicas``, starting from the largest answer so far, so a candidate that
the current size already serves costs one replay). The result is the per-pool maximum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tidal.bench.probe import Feasibility, WindowProbe
from tidal.bench.search import fewest_replicas
from tidal.bench.settings import ORACLE_INTERVAL_S, ORACLE_WARMUP_S, STATIC_PEAK_CANDIDATES
from tidal.bench.workloads import BenchSLO
from tidal.policies.baselines.fixed import FixedReplicas
from tidal.sim.runner import SimConfig
from tidal.sim.traces import LLMRequest


@dataclass(frozen=True)
class StaticPeak:
    """The searched size, the windows it was sized on, and whether the cap sufficed."""

    replicas: dict[str, int]
    peak_windows: tuple[tuple[float, float], ...]
    met: bool
    replays: int

    def policy(self) -> FixedReplicas:
        return FixedReplicas(dict(self.replicas), name="static-peak")


def peak_windows(requests: Sequence[LLMRequest], interval_s: float = ORACLE_INTERVAL_S,
                 per_measure: int = STATIC_PEAK_CANDIDATES) -> list[tuple[float, float]]:
    """The busiest windows by request count, prompt tokens and output tokens (time order)."""
    if not requests:
        return []
    n = int(math.floor(requests[-1].arrival_s / interval_s)) + 1
    load = [[0, 0, 0] for _ in range(n)]
    for r in requests:
        k = int(r.arrival_s // interval_s)
        load[k][0] += 1
        load[k][1] += r.prompt_tokens
        load[k][2] += r.output_tokens
    chosen: set[int] = set()
    for measure in range(3):
        ranked = sorted(range(n), key=lambda k: (-load[k][measure], k))
        chosen.update(ranked[:per_measure])
    return [(k * interval_s, (k + 1) * interval_s) for k in sorted(chosen)]


def search_static_peak(requests: Sequence[LLMRequest], config: SimConfig, slo: BenchSLO,
                       limits: Feasibility, *, min_replicas: int,
                       max_replicas: int) -> StaticPeak:
    """Fewest replicas per pool meeting ``slo`` on every peak window (see module docstring)."""
    pools = config.pools
    probe = WindowProbe(requests, config, slo, limits, ORACLE_WARMUP_S)
    best = {pool: min_replicas for pool in pools}
    windows = peak_windows(requests)
    met = True
    for start, end in windows:
        answer = fewest_replicas(probe, start, end, pools, lo=best, hi=max_replicas, guess=best)
        best = {pool: max(best[pool], answer.replicas[pool]) for pool in pools}
        met = met and answer.met
    return StaticPeak(best, tuple(windows), met, probe.replays)
