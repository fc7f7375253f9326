"""Every default of the rivals' autoscalers, with its meaning and its source.

One place for the numbers the baselines in this package use, in the shape of
Knative's ``config-autoscaler`` ConfigMap: a named constant, what it means, and
where the rival sets it. Sources (read at the commits named in
docs/baselines.md):

- Kubernetes HPA: ``pkg/controller/podautoscaler/horizontal.go`` and
  ``replica_calculator.go`` (kubernetes/kubernetes), the kube-controller-manager
  flags, and the "Horizontal Pod Autoscaling" concept page
  (kubernetes/website
  ``content/en/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale.md``).
- KEDA: ``apis/keda/v1alpha1`` (ScaledObject types), ``pkg/scaling/executor``,
  ``pkg/fallback/fallback.go`` and ``pkg/scalers/prometheus_scaler.go`` (kedacore/keda).
- Knative Serving: ``config/core/configmaps/autoscaler.yaml``,
  ``pkg/autoscaler/config/config.go``, ``pkg/autoscaler/scaling/{autoscaler,multiscaler}.go``,
  ``pkg/autoscaler/metrics/collector.go``, ``pkg/reconciler/autoscaling/kpa/scaler.go``
  and ``pkg/deployment/config.go`` (knative/serving).
- AIBrix: ``pkg/controller/podautoscaler/{context/context.go,metrics/client.go,
  podautoscaler_controller.go,algorithm/{kpa,apa}.go}`` and
  ``samples/autoscaling/{kpa,apa}.yaml`` (vllm-project/aibrix, v0.7.0) and its
  "Metric-based Autoscaling" documentation page.

Values that are tidal's own choices (not a rival's) are marked as such.
"""

from __future__ import annotations

from tidal.policies.utilization import DEFAULT_TARGET_INFLIGHT_PER_REPLICA

# --------------------------------------------------------------------------------------------
# Shared
# --------------------------------------------------------------------------------------------
TIME_SLACK_S = 1e-6
"""Float slack when comparing tick times against periods (tidal's; avoids 15 - 1e-15 < 15)."""

TARGET_INFLIGHT_PER_POD = DEFAULT_TARGET_INFLIGHT_PER_REPLICA
"""Per-pod target of vLLM ``num_requests_running + num_requests_waiting`` for HPA and KEDA.

No rival ships a default for this user-chosen target; tidal uses the target of its own
utilisation rule (``tidal.policies.utilization``) so a comparison isolates the control
algorithm rather than the target."""

# --------------------------------------------------------------------------------------------
# Kubernetes HPA (autoscaling/v2)
# --------------------------------------------------------------------------------------------
HPA_SYNC_PERIOD_S = 15.0
"""``--horizontal-pod-autoscaler-sync-period`` default: the HPA control loop period."""

HPA_TOLERANCE = 0.1
"""``--horizontal-pod-autoscaler-tolerance`` default: no scaling while |ratio - 1| <= 0.1."""

HPA_DOWNSCALE_STABILIZATION_S = 300.0
"""``--horizontal-pod-autoscaler-downscale-stabilization`` default and the default
``behavior.scaleDown.stabilizationWindowSeconds``: scale down only to the highest
recommendation of the last 5 minutes."""

HPA_SCALE_UP_STABILIZATION_S = 0.0
"""Default ``behavior.scaleUp.stabilizationWindowSeconds``: scale-ups are immediate."""

HPA_POLICY_PERIOD_S = 15.0
"""``periodSeconds`` of every default scaling policy (HPA docs, "Default behavior")."""

HPA_SCALE_UP_PERCENT = 100
"""Default scale-up policy ``{type: Percent, value: 100, periodSeconds: 15}``: double per 15 s."""

HPA_SCALE_UP_PODS = 4
"""Default scale-up policy ``{type: Pods, value: 4, periodSeconds: 15}``: +4 pods per 15 s."""

HPA_SCALE_DOWN_PERCENT = 100
"""Default scale-down policy ``{type: Percent, value: 100, periodSeconds: 15}``: may drop to min."""

HPA_SELECT_POLICY_MAX = "Max"
"""Default ``selectPolicy``: the policy allowing the largest change wins."""
HPA_SELECT_POLICY_MIN = "Min"
"""``selectPolicy: Min``: the policy allowing the smallest change wins."""
HPA_SELECT_POLICY_DISABLED = "Disabled"
"""``selectPolicy: Disabled``: no scaling in that direction."""

HPA_POLICY_PODS = "Pods"
"""Scaling policy type: a fixed number of pods per period."""
HPA_POLICY_PERCENT = "Percent"
"""Scaling policy type: a percentage of the replicas at the start of the period."""

HPA_MIN_REPLICAS = 1
"""``spec.minReplicas`` default; 0 needs the alpha HPAScaleToZero gate and object/external
metrics, so a Pods-metric HPA starts at 1."""

# --------------------------------------------------------------------------------------------
# KEDA ScaledObject with a Prometheus trigger (the HPA above does the 1 <-> N scaling)
# --------------------------------------------------------------------------------------------
KEDA_POLLING_INTERVAL_S = 30.0
"""``pollingInterval`` default (``defaultPollingInterval = 30``): how often KEDA checks the
trigger for activation (0 <-> 1)."""

KEDA_COOLDOWN_PERIOD_S = 300.0
"""``cooldownPeriod`` default (``defaultCooldownPeriod = 5 * 60``): time since the trigger was
last active before scaling to ``minReplicaCount`` 0."""

KEDA_INITIAL_COOLDOWN_PERIOD_S = 0.0
"""``initialCooldownPeriod`` default (``defaultInitialCooldownPeriod = 0``): grace after the
ScaledObject is created before it may first scale to zero."""

KEDA_MIN_REPLICA_COUNT = 0
"""``minReplicaCount`` default: KEDA scales to zero unless told otherwise."""

KEDA_MAX_REPLICA_COUNT = 100
"""``maxReplicaCount`` default (``defaultHPAMaxReplicas = 100``)."""

KEDA_ACTIVATION_THRESHOLD = 0.0
"""Prometheus trigger ``activationThreshold`` default: active while the value is > 0."""

KEDA_FALLBACK_BEHAVIOR_STATIC = "static"
"""``fallback.behavior`` default: report ``fallback.replicas`` after ``failureThreshold`` errors."""
KEDA_FALLBACK_BEHAVIOR_CURRENT = "currentReplicas"
"""``fallback.behavior``: keep the current replica count."""
KEDA_FALLBACK_BEHAVIOR_CURRENT_IF_HIGHER = "currentReplicasIfHigher"
"""``fallback.behavior``: max(current, fallback.replicas)."""
KEDA_FALLBACK_BEHAVIOR_CURRENT_IF_LOWER = "currentReplicasIfLower"
"""``fallback.behavior``: min(current, fallback.replicas)."""

# --------------------------------------------------------------------------------------------
# Knative Serving KPA (concurrency metric)
# --------------------------------------------------------------------------------------------
KNATIVE_TICK_S = 2.0
"""``tickInterval`` in ``pkg/autoscaler/scaling/multiscaler.go``: the decider runs every 2 s."""

KNATIVE_BUCKET_S = 1.0
"""``config.BucketSize``: metric buckets of 1 s, filled by a scrape every
``scrapeTickInterval = time.Second`` (``pkg/autoscaler/metrics/collector.go``)."""

KNATIVE_STABLE_WINDOW_S = 60.0
"""``stable-window`` default: averaging window in stable mode."""

KNATIVE_PANIC_WINDOW_PERCENTAGE = 10.0
"""``panic-window-percentage`` default: panic window = 10 % of the stable window (6 s)."""

KNATIVE_PANIC_THRESHOLD_PERCENTAGE = 200.0
"""``panic-threshold-percentage`` default: panic when the panic-window demand needs >= 2x
the ready pods."""

KNATIVE_CONTAINER_CONCURRENCY_TARGET_DEFAULT = 100.0
"""``container-concurrency-target-default``: per-pod concurrency target for revisions with
unlimited ``containerConcurrency``."""

KNATIVE_TARGET_UTILIZATION = 0.7
"""``container-concurrency-target-percentage`` default "70": the autoscaler aims at 70 % of the
per-pod target (``defaultTargetUtilization = 0.7``)."""

KNATIVE_TARGET_MIN = 0.01
"""``autoscaling.TargetMin``: floor of the effective per-pod target value."""

KNATIVE_MAX_SCALE_UP_RATE = 1000.0
"""``max-scale-up-rate`` default: at most 1000x the ready pods per decision."""

KNATIVE_MAX_SCALE_DOWN_RATE = 2.0
"""``max-scale-down-rate`` default: at most halve the ready pods per decision."""

KNATIVE_ENABLE_SCALE_TO_ZERO = True
"""``enable-scale-to-zero`` default."""

KNATIVE_SCALE_TO_ZERO_GRACE_PERIOD_S = 30.0
"""``scale-to-zero-grace-period`` default: an inactive revision keeps its last pod 30 s."""

KNATIVE_SCALE_TO_ZERO_POD_RETENTION_S = 0.0
"""``scale-to-zero-pod-retention-period`` default."""

KNATIVE_INITIAL_SCALE = 1
"""``initial-scale`` default: a new revision starts with one pod (``allow-zero-initial-scale``
is false by default)."""

KNATIVE_ACTIVATION_TIMEOUT_S = 600.0 + 30.0
"""``ProgressDeadlineDefault = 600 s`` (``pkg/deployment/config.go``) plus
``activationTimeoutBuffer = 30 s`` (``kpa/scaler.go``): an activating revision that never gets
a ready pod may be scaled to zero after this long."""

KNATIVE_ROUND_DIGITS = 6
"""``precision = 6`` in ``aggregation/bucketing.go``: window averages are rounded to 6 digits."""

# --------------------------------------------------------------------------------------------
# AIBrix PodAutoscaler (KPA and APA strategies), v0.7.0
# --------------------------------------------------------------------------------------------
AIBRIX_RESYNC_S = 10.0
"""``DefaultResyncInterval = 10 * time.Second``: every PodAutoscaler is reconciled each 10 s."""

AIBRIX_WINDOW_GRANULARITY_S = 1.0
"""``metrics.NewMetricsClient(time.Second)``: 1-s buckets in the metric time windows."""

AIBRIX_STABLE_WINDOW_S = 180.0
"""``DefaultStableWindowDuration`` / ``observeWindowSeconds`` default: 180 s."""

AIBRIX_PANIC_WINDOW_S = 60.0
"""``DefaultPanicWindowDuration`` / ``panicWindowSeconds`` default: 60 s (KPA only)."""

AIBRIX_PANIC_THRESHOLD = 2.0
"""``PanicThreshold`` default in ``NewBaseScalingContext``: KPA panics when
panic-window value / stable-window value > 2."""

AIBRIX_UP_FLUCTUATION_TOLERANCE = 0.1
"""``UpFluctuationTolerance`` default (annotation ``autoscaling.aibrix.ai/scale-up-tolerance``)."""

AIBRIX_DOWN_FLUCTUATION_TOLERANCE = 0.1
"""``DownFluctuationTolerance`` default (``autoscaling.aibrix.ai/scale-down-tolerance``)."""

AIBRIX_MAX_SCALE_UP_RATE = 2.0
"""``MaxScaleUpRate`` default: at most double the current replicas per decision."""

AIBRIX_MAX_SCALE_DOWN_RATE = 2.0
"""``MaxScaleDownRate`` default: at most halve the current replicas per decision."""

AIBRIX_SCALE_UP_COOLDOWN_S = 0.0
"""``ScaleUpCooldownWindow`` default: no scale-up stabilisation."""

AIBRIX_SCALE_DOWN_COOLDOWN_S = 300.0
"""``ScaleDownCooldownWindow`` default: 5-minute scale-down stabilisation window."""

AIBRIX_ACTIVATION_SCALE = 1
"""KPA ``ActivationScale`` (no effect at 1; the base scaling context leaves it unset)."""

AIBRIX_TARGET_KV_CACHE_USAGE = 0.5
"""``targetValue: '0.5'`` for ``targetMetric: gpu_cache_usage_perc`` in AIBrix's KPA and APA
samples (``samples/autoscaling/{kpa,apa}.yaml``), the metric its docs use for vLLM."""

# --------------------------------------------------------------------------------------------
# Dynamo SLA planner (ai-dynamo/dynamo components/planner, ``PlannerDefaults``)
# --------------------------------------------------------------------------------------------
DYNAMO_ADJUSTMENT_INTERVAL_S = 180.0
"""``adjustment_interval = 180``: the planner observes, predicts and resizes every 180 s."""

DYNAMO_MIN_ENDPOINT = 1
"""``min_endpoint = 1``: at least one prefill and one decode worker."""

DYNAMO_TTFT_S = 0.5
"""``ttft = 0.5`` s: the planner's default TTFT target (the bench passes the workload's SLO)."""

DYNAMO_ITL_S = 0.05
"""``itl = 0.05`` s: the planner's default inter-token-latency target."""

DYNAMO_FORECASTER = "holt_winters"
"""Dynamo's default ``load_predictor`` is ``arima``; tidal's predictors have no ARIMA, and
Holt-Winters (damped-trend exponential smoothing, an ARIMA-equivalent family) is the closest."""

DYNAMO_FORECAST_HISTORY_CELLS = 512
"""History kept per forecast signal (tidal's): 25.6 h of 180-s cells, more than one day so the
daily season can be learned, far less than the predictors' one-week default."""

# Dynamo's pre-deployment profiler (ai-dynamo/dynamo ``benchmarks/profiler``: ``profile_sla.py``,
# ``utils/profile_prefill.py``, ``utils/profile_decode.py``, ``utils/profiler_argparse.py``,
# ``utils/defaults.py``; docs "Pre-Deployment Profiling" / "SLA-Driven Profiling")
DYNAMO_PREFILL_INTERPOLATION_GRANULARITY = 16
"""``--prefill-interpolation-granularity`` default: prefill TTFT is measured at ISLs from 100 to
``max_context_length - 512`` in ``(max_context_length - 100) // 16`` steps."""

DYNAMO_DECODE_INTERPOLATION_GRANULARITY = 6
"""``--decode-interpolation-granularity`` default: decode ITL is measured at 6 steps of ISL and,
for each ISL, at concurrencies from 1 to the most requests the KV cache holds, in 6 steps."""

DYNAMO_PROFILE_MIN_ISL_TOKENS = 100
"""First ISL of both sweeps (``range(100, ...)`` in ``profile_prefill.py``/``profile_decode.py``)."""

DYNAMO_PROFILE_CONTEXT_RESERVE_TOKENS = 512
"""``max_context_length -= 512`` in the prefill sweep: room for the chat template and system
prompt."""

DYNAMO_PROFILE_DECODE_OSL_TOKENS = 500
"""``osl = 500`` in the decode sweep: long enough for a stable ITL, short enough to keep its
variance low; the context of a decode point is ``isl + osl / 2``."""

DYNAMO_PROFILE_PREFILL_OSL_TOKENS = 5
"""``AIPERF_PREFILL_BENCHMARK_OSL = 5``: the prefill sweep's requests ask for 5 tokens (only
the first one's latency is used)."""

DYNAMO_DECODE_MAX_CONCURRENCY = 2000
"""``DECODE_MAX_CONCURRENCY = 2000``: cap on the decode sweep's concurrency."""

# --------------------------------------------------------------------------------------------
# HeteroScale (Li et al., "Taming the Chaos: Coordinated Autoscaling for Heterogeneous and
# Disaggregated LLM Inference", arXiv:2508.19559, ByteDance 2025)
# --------------------------------------------------------------------------------------------
HETEROSCALE_PERIOD_S = 15.0
"""tidal's choice: the control period is not stated in the parts of the paper available; the
Kubernetes HPA sync period, the controller HeteroScale's proportional policy generalises."""

HETEROSCALE_TOLERANCE = 0.1
"""tidal's choice: the HPA tolerance, since the paper's TPS policy is proportional control like
the HPA's and gives no dead band of its own in the parts available."""
