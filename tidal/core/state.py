"""The decision core's memory for one ModelDeployment: predictors and the rule's window.

The live form holds predictor objects (learning in place is what keeps a tick cheap: the ``auto``
forecaster's serialised form is ~88 KB). :meth:`CoreState.to_parts` / :meth:`CoreState.from_parts`
convert to and from the JSON-friendly parts the operator persists in ``<name>-tidal-state``
(tidal/controllers/workload_state.py), so a restarted operator resumes with what it had learnt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidal.policies.defaults import MAX_COUNTED_STARTS
from tidal.predictors.classical import HoltWintersForecaster, SeasonalNaiveForecaster
from tidal.predictors.coldstart import ColdStartPredictor
from tidal.predictors.load import LoadForecaster
from tidal.predictors.pauses import SessionPausePredictor

PREDICTOR_NAMES = {
    "auto": "auto", "torch": "torch", "holt-winters": "holt_winters", "seasonal-naive": "seasonal_naive", "none": None,
}
"""``spec.autoscaling.predictor`` (CRD spelling) -> tidal.predictors name; ``none``: no forecast."""
CLASSICAL = {"holt_winters": HoltWintersForecaster, "seasonal_naive": SeasonalNaiveForecaster}
"""Built directly, without loading tidal.predictors' factory. No predictor imports torch when serving
(the torch prior runs in numpy, tidal/predictors/prior.py); torch, ~180 MB of RSS, is for training."""


def make_forecaster(name: str, step_s: float) -> LoadForecaster:
    if name in CLASSICAL:
        return CLASSICAL[name](step_s)  # type: ignore[return-value]
    from tidal.predictors import make_load_forecaster

    return make_load_forecaster(name, step_s)


def forecaster_from_state(state: dict[str, Any]) -> LoadForecaster:
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind in CLASSICAL:
        return CLASSICAL[kind].from_state(state)  # type: ignore[return-value]
    from tidal.predictors import load_forecaster_from_state

    return load_forecaster_from_state(state)


@dataclass(frozen=True)
class ForecastView:
    """A forecast a decision used: median and 80 % band of the entry request rate at ``horizon_s``."""

    rps: float
    lower_rps: float
    upper_rps: float
    horizon_s: float


@dataclass
class CoreState:
    """What :func:`tidal.core.modeldeployment.decide_workload` remembers between calls.

    The call consumes the state it is given (its predictors learn in place) and returns the state to
    pass next time; a caller that needs to branch deep-copies first.
    """

    forecaster: LoadForecaster | None = None
    cold_start: ColdStartPredictor = field(default_factory=ColdStartPredictor)
    counted_starts: list[str] = field(default_factory=list)
    """Uids of replica starts already learnt (oldest first, bounded)."""
    recommendations: dict[str, list[list[float]]] = field(default_factory=dict)
    """Per pool, the rule's (time, replicas) recommendations inside the scale-down window."""
    idle_since_s: float | None = None
    """Since when the workload has had no requests (``scaleToZero``); ``None`` while it is busy."""
    parked: bool = False
    """Scaled to zero for idleness (``scaleToZero``) and not yet woken by demand."""
    planner: dict[str, Any] = field(default_factory=dict)
    """The SLO planner's memory besides its window: the request mix and the per-pool profile
    corrections it learnt (tidal/policies/planner.py), JSON-friendly."""
    baseline: dict[str, Any] = field(default_factory=dict)
    """``{policy: {pool: state}}`` of an ``hpa`` or ``kpa`` policy (tidal/core/policies.py)."""
    forecast_cache: tuple[Any, Any] | None = field(default=None, compare=False)
    """(grid cell, valid cells, horizon) and the forecast made at the first tick of that cell, reused for
    the cell's later ticks. Persisted: a restarted core must reuse it too, or it would forecast from a
    cell holding more samples than the live core did and decide differently."""
    kv_pauses: SessionPausePredictor | None = None
    """Session pauses learnt from the engines' KV-block residency histograms (``kvCache.ttl: auto``,
    tidal/predictors/kv_residency.py): reuse gaps as ended pauses, idle-before-evict times as
    right-censored ones stored beside them. ``None`` until a histogram increment was learnt."""
    # Caches of pure results, rebuilt after a restart (not persisted).
    cold_start_version: int = field(default=0, compare=False)
    cold_start_cache: tuple[Any, float] | None = field(default=None, compare=False)
    kv_pauses_version: int = field(default=0, compare=False)
    kv_ttl_cache: tuple[Any, float | None] | None = field(default=None, compare=False)

    def count_start(self, uid: str) -> None:
        self.counted_starts.append(uid)
        del self.counted_starts[:-MAX_COUNTED_STARTS]

    def ensure_forecaster(self, predictor: str, step_s: float) -> LoadForecaster | None:
        """The forecaster the spec asks for; rebuilt (history lost) when the kind or step changed."""
        wanted = PREDICTOR_NAMES.get(predictor, "auto")
        if wanted is None:
            self.forecaster = None
            return None
        f = self.forecaster
        if f is None or getattr(f, "name", None) != wanted or abs(f.step_s - step_s) > 1e-9:
            self.forecaster = make_forecaster(wanted, step_s)
            self.forecast_cache = None
        return self.forecaster

    def to_parts(self) -> dict[str, Any]:
        """JSON-friendly parts: ``forecaster``, ``coldStart``, ``countedPods``, ``policy``."""
        return {
            "forecaster": self.forecaster.to_state() if self.forecaster is not None else None,
            "coldStart": self.cold_start.to_state(),
            "countedPods": list(self.counted_starts),
            "policy": {"recommendations": {p: [list(r) for r in w] for p, w in self.recommendations.items()},
                       "forecast": _cache_to_dict(self.forecast_cache),
                       "idleSinceS": self.idle_since_s, "parked": self.parked,
                       "planner": self.planner, "baseline": self.baseline,
                       "kvPauses": self.kv_pauses.to_state() if self.kv_pauses is not None else None},
        }

    @classmethod
    def from_parts(cls, forecaster: Any = None, cold_start: Any = None, counted_pods: Any = None,
                   policy: Any = None) -> tuple["CoreState", list[str]]:
        """Rebuild from stored parts; a part that cannot be read is re-learnt, and named in the
        returned problems (the shell logs them)."""
        state, problems = cls(), []
        if forecaster:
            try:
                state.forecaster = forecaster_from_state(forecaster)
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"forecaster state unreadable ({exc}); re-learning")
        if cold_start:
            try:
                state.cold_start = ColdStartPredictor.from_state(cold_start)
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"cold-start state unreadable ({exc}); re-learning")
        state.counted_starts = [str(u) for u in counted_pods or []][-MAX_COUNTED_STARTS:]
        recs = (policy or {}).get("recommendations") if isinstance(policy, dict) else None
        if isinstance(recs, dict):
            try:
                state.recommendations = {str(p): [[float(t), float(r)] for t, r in w] for p, w in recs.items()}
            except (TypeError, ValueError) as exc:
                problems.append(f"scale-down window unreadable ({exc}); starting a new one")
        if isinstance(policy, dict):
            idle = policy.get("idleSinceS")
            state.idle_since_s = float(idle) if isinstance(idle, (int, float)) else None
            state.parked = policy.get("parked") is True
            for name in ("planner", "baseline"):
                part = policy.get(name)
                if isinstance(part, dict):
                    setattr(state, name, part)
                elif part is not None:
                    problems.append(f"{name} state unreadable (not an object); re-learning")
        kv = policy.get("kvPauses") if isinstance(policy, dict) else None
        if kv is not None:
            try:
                state.kv_pauses = SessionPausePredictor.from_state(kv)
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"KV session-pause state unreadable ({exc}); re-learning")
        cached = policy.get("forecast") if isinstance(policy, dict) else None
        if isinstance(cached, dict):
            state.forecast_cache = _cache_from_dict(cached)
        return state, problems


def _cache_to_dict(cache: tuple[Any, Any] | None) -> dict[str, Any] | None:
    if cache is None:
        return None
    (cell, valid, horizon), view = cache
    return {"cell": cell, "valid": valid, "horizonS": horizon,
            "view": [view.rps, view.lower_rps, view.upper_rps, view.horizon_s]}


def _cache_from_dict(d: dict[str, Any]) -> tuple[Any, Any] | None:
    try:
        rps, lower, upper, horizon = (float(x) for x in d["view"])
        return (d["cell"], d["valid"], float(d["horizonS"])), ForecastView(rps, lower, upper, horizon)
    except (KeyError, TypeError, ValueError):
        return None  # recomputed on the next tick
