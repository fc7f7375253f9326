"""Every tunable the decision core uses: its default, what it means, and where the number comes from.

One place, as Knative's ``pkg/autoscaler/config`` holds every autoscaler default beside its
ConfigMap key. The operator shell and the simulator shell read none of these directly: they call
the core (tidal/core), which reads them here, so both run with the same values. Spec defaults a
user sees (SLO percentile, scale-down delay...) stay with their API fields in tidal/api.
"""

from __future__ import annotations

# --- the utilisation rule (tidal/policies/utilization.py) -------------------------------------

TARGET_INFLIGHT_PER_REPLICA = 16.0
"""In-flight (running + waiting) requests one replica should carry. The order of vLLM's useful batch
sizes for chat workloads on one GPU; Knative's KPA concurrency target is 100 per pod for generic
HTTP (``container-concurrency-target-default``), which LLM replicas saturate far below."""
HPA_TOLERANCE = 0.1
"""Changes within 10 % of the target are ignored: the Kubernetes HPA's
``--horizontal-pod-autoscaler-tolerance`` default."""
HPA_SCALE_DOWN_STABILIZATION_S = 300.0
"""Scale-down window of the bare rule when a caller gives none: the HPA's
``--horizontal-pod-autoscaler-downscale-stabilization`` default (5 minutes). A ModelDeployment's
window is its ``spec.autoscaling.scaleDownDelay``."""

# --- waking a pool at zero ----------------------------------------------------------------------

WAKE_FROM_ZERO_REPLICAS = 1
"""Replicas a pool at zero gets when demand reaches its entry (at least this, and at least
minReplicas): one replica serves the first requests while the rule sizes the rest on the next
ticks, as Knative's activator wakes a revision with one pod (``initial-scale`` default 1)."""

# --- load forecast (tidal/predictors) -------------------------------------------------------------

FORECAST_STEP_S = 60.0
"""Grid step of the load forecasters (never finer than the tick interval). One-minute cells average
four 15 s samples (rates read over a 60 s window are that smooth anyway), put a week of history in the
10,080-cell grid (tidal/predictors/grid.py MAX_HISTORY_CELLS: weekly seasonality is visible), and cost
a quarter of the per-tick learning: with 15 s cells the ``auto`` forecaster alone kept 1,000 workloads
above the operator's CPU target (bench/operator_fleet.py). Pre-warm horizons are minutes."""
FORECAST_QUANTILES = (0.1, 0.5, 0.9)
"""Median plus an 80 % band: the forecast and the bounds shown in status.forecast."""
FORECAST_SERIES_POOL_ORDER = ("unified", "prefill")
"""The pool whose request rate is forecast: unified, or prefill (every request passes it once)."""

# --- cold start (tidal/predictors/coldstart.py) -----------------------------------------------------

COLD_START_QUANTILE = 0.9
"""The p90 predicted cold start sets the pre-warm horizon: capacity that arrives late misses the
SLO, so the lead is planned for a slow start (as DESIGN.md, "Pre-warm", states)."""
MAX_COUNTED_STARTS = 256
"""Replica uids whose start was already learnt; more than any pool's replicas in flight at once."""
DTYPE_BYTES = {"float16": 2.0, "bfloat16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
"""Bytes per parameter of each weight precision, for the weights size (cold-start feature) when
``spec.model.weightsSize`` is absent."""

# --- serverless function cold start (tidal/core/function_coldstart.py) -----------------------------

FUNCTION_COLD_START_S = 0.95
"""Cold start of a function instance assumed before any start of the function was seen: the median
of Huawei Cloud's Region 1 cold starts as tidal's simulator models them (Joosen et al., "Serverless
Cold Starts and Where to Find Them", EuroSys'25; tidal/sim/serverless/coldstart.py ``HUAWEI_R1``,
whose sum has median 0.95 s, docs/simulator.md), so the simulator's default model starts where its
learning converges. Both shells start from it: it is the pre-warm lead and the cold start compared
with ``spec.slo.latency`` until a start is observed."""
FUNCTION_COLD_START_SAMPLES = 32
"""Recent instance starts a function's cold start is learnt from (bounded state, persisted with the
keep-alive state); the median of 32 follows a changed image or node pool within 16 starts."""
FUNCTION_COUNTED_STARTS = 64
"""Instance (pod) uids whose start was already learnt, so no start counts twice (also across an
operator restart); more than a function's instances becoming Ready between two ticks."""

# --- KV-cache TTL ----------------------------------------------------------------------------------------

KV_BREAK_EVEN_HOLD_S = 10.0
"""Seconds of holding one token's KV that cost a replica as much as re-prefilling it
(tidal/policies/kv_ttl.py ``break_even_hold_s``: KV capacity x prefill time per token), used when
the ModelDeployment's accelerator is unknown. From tidal/policies/profile.py: Llama-3.1-8B on one
H100 holds ~0.4 M tokens and prefills one in ~23 us (9 s); 70B on four H100s ~20 s. The order of
the short tool calls Continuum pins for (Li et al., arXiv:2511.02230: milliseconds to tens of
seconds)."""
KV_MEMORY_PRESSURE = 1.0
"""Fraction of the time KV memory limits the running batch, which prices holding KV. 1 (tidal's
choice, conservative): pinned KV is never counted as free, so ``ttl: auto`` never over-holds on a
busy replica; a shell that measures pressure may pass less."""
KV_TTL_MAX_PINNED_FRACTION = 0.5
"""At most half of a replica's KV capacity pinned for sessions between turns in expectation
(tidal's choice): running batches keep at least the other half."""
KV_TTL_MIN_NET_BENEFIT = 0.01
"""A TTL must save more than 1 % of a re-prefill per turn (net of the memory held) to be worth
pinning at all; below that ``ttl: auto`` is 0 (tidal's choice: the estimate's own noise)."""
KV_TTL_MIN_S = 0.05
"""Shortest TTL candidate, 50 ms: below the pause predictor's 0.1 s resolution
(tidal/predictors/pauses.py MIN_PAUSE_S) and the scheduling step of an engine."""
KV_TTL_GRID_POINTS = 400
"""Log-spaced TTL candidates between 50 ms and a day: 64 per factor of 10, steps of 3.7 %."""
KV_TTL_DECIMALS = 1
"""The TTL is reported and rendered to 0.1 s."""
KV_METRICS_SAMPLE_RATE = 0.01
"""Fraction of KV blocks vLLM follows for its residency histograms (``--kv-cache-metrics-sample``),
rendered explicitly on engine pods of ``ttl: auto`` and used by the simulator's engine: vLLM's own
default (vllm/config/observability.py ``kv_cache_metrics_sample``). Pinned so the simulator and
the engine sample alike whatever a later vLLM defaults to. At 16-token blocks a 10 k-token
context has ~6 sampled blocks per turn: enough gaps per minute on a busy replica, and the
collector's lock is taken on one block in a hundred."""
KV_SIGNAL_MIN_GAPS = 50.0
"""Reuse gaps (block-weighted, decayed) the core must have learnt from vLLM's residency
histograms before ``ttl: auto`` trusts them over the prior (tidal's choice). Below it the prior's
TTL (0) stands: a handful of gaps from one long session's blocks is one session, not a
distribution. See docs/kv-ttl.md ("What the operator learns pauses from") for the bench check."""

# --- placement over accelerator classes (tidal/core/placement.py) ------------------------------------

PLACEMENT_MOVE_HORIZON_S = 3600.0
"""How long a replica moved to a cheaper class is expected to keep serving: a move pays for the new
replica's cold start only if the hourly saving over this time exceeds it. One hour is tidal's choice
(not measured): longer than the minutes a load peak lasts, shorter than the diurnal cycle over which
a pool shrinks anyway."""
PLACEMENT_GOODPUT_RESOLUTION = 0.02
"""Placement computes each class's goodput at the request mix and profile corrections rounded to 2 %
steps (log grid): it compares classes and splits replicas, which a 2 % change of the mix does not
move, and steady ticks then reuse the cached goodputs (four classes cost ~1 ms a tick uncached).
The planner's own sizing uses the exact values. tidal's choice."""
PLACEMENT_BISECTION_STEPS = 10
"""Bisection steps of placement's goodput per class: 2^-10 (0.1 %) of the bracket, finer than
:data:`PLACEMENT_GOODPUT_RESOLUTION`; the planner's own goodput keeps capacity.py's 24."""
PLACEMENT_RANK_HYSTERESIS = 0.05
"""The class most of a workload's replicas run on keeps first place until another is 5 % cheaper
per goodput: the ranking follows the request mix, and near-ties would otherwise flip with it (each
flip changes where new replicas go and the unit the planner sizes in). tidal's choice."""
