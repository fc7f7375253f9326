"""Every default of ``tidal bench`` in one place, each with its meaning and source.

Latency targets per trace live with the traces in ``workloads.py``; this module
holds the numbers that shape the method (search windows, bounds, the matrix).
"""

from __future__ import annotations

from tidal.policies.utilization import DEFAULT_TARGET_INFLIGHT_PER_REPLICA

TARGET_ATTAINMENT = 0.99
"""Fraction of requests that must meet both TTFT and TPOT targets. The oracle is the lower
bound on GPU-hours at this attainment (issue: "lower bound on GPU-hours at >= 99 % attainment")
and static-peak sizes for it at the peak."""

MIN_REPLICAS_PER_POOL = 1
"""Lower bound given to every scaling policy: no scale to zero (LLM serving behind a
gateway without an activator keeps one replica warm)."""

FIXED_REPLICAS_PER_POOL = 4
"""The ``fixed`` policy's size: ``tidal simulate``'s default ``--policy fixed:4``, a plain
"what someone provisioned by hand" row (static-peak is the sized version)."""

ORACLE_INTERVAL_S = 60.0
"""Oracle plan resolution: one replica count per pool per minute (four autoscaler ticks of
15 s, the HPA sync period the simulator ticks at)."""

ORACLE_WARMUP_S = 60.0
"""Arrivals replayed before each searched interval, not scored: they leave the queues and
running batches the interval starts with. Longer than the TTFT targets and than a typical
request's whole decode in these traces (mean output 28-211 tokens at < 0.1 s per token)."""

ORACLE_REPAIR_PASSES = 2
"""Full replays of the oracle's plan that check it: intervals whose scored attainment falls
below the target in the full run (carried-over queues the bounded window missed, pods placed
on nodes without cached weights) get one more replica of the short pool, then the plan is
replayed again. Bounded so the oracle's cost stays predictable."""

COLD_START_LEAD_SIGMAS = 2.0
"""The oracle starts pods this many log-normal sigmas of cold-start jitter before they are
needed (``exp(2 * 0.1)`` = +22 %), so a slow start is still ready in time in ~98 % of cases."""

STATIC_PEAK_CANDIDATES = 3
"""Static-peak searches the busiest intervals by each of request count, prompt tokens and
output tokens (this many of each): the peak is where one of them is largest."""

WARMUP_S = 300.0
"""Seconds of the trace's start replayed once before it, unscored (tidal/bench/warmup.py): every
policy meets the scored trace after serving five minutes of its load, as a deployment in production
would, instead of at a cold launch. Five minutes: longer than the slowest cold start (~100 s), the
metrics window (60 s) and a few forecast cells; the HPA's 300 s scale-down window fills once."""

DEFAULT_WORKERS = 2
"""Process-pool size: the 2 cores the bench targets (full run <= 15 min, --quick <= 2 min)."""

DEFAULT_SEEDS = (0,)
"""Seeds per run: cold-start jitter and sampled traces (ServeGen, agent) depend on it."""

QUICK_DURATION_S = 300.0
"""``--quick`` replays the first five minutes of each trace (with ``QUICK_SETUPS`` only)."""

QUICK_SETUPS = ("8b-h100",)
"""Model setups ``--quick`` keeps: the 8B one, whose cells are the cheapest to replay."""

DEFAULT_OUT_DIR = "reports/bench"
"""Where ``tidal bench`` writes its tables unless ``--out`` says otherwise (git-ignored
``reports/``, like ``make demo``'s report)."""

RIVAL_TARGET_PER_POD = DEFAULT_TARGET_INFLIGHT_PER_REPLICA
"""One per-pod in-flight target for every rival that scales on concurrency, so the table compares
algorithms, not targets: the HPA and KEDA baselines already default to tidal's 16
(tidal/policies/utilization.py); Knative's own default (100 per container, for generic HTTP) would
let one LLM replica take six times the load an engine batches well."""
