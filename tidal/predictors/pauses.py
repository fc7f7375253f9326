"""Session-pause predictor: how long until a session's next turn arrives.

The KV-TTL policy keeps a session's KV cache for a time T when the expected
re-prefill work saved outweighs the memory held; it needs ``P(pause <= T)``
and pause quantiles. Pauses span from sub-second tool calls to hours, so they
are kept in a log-spaced histogram per category (a tool name or request class)
and overall. Histograms decay exponentially in time so the distribution
follows changing behaviour. A category with little data is shrunk towards the
overall distribution, which in turn is shrunk towards a broad prior.

A pause is known only when it ends, so a learner fed pauses as they end sees
the short ones first: a minute into a workload every pause it knows is shorter
than a minute, while the sessions still away are the long ones. Callers that
know which turns are still waiting pass how long each has waited
(``waiting_s``); the distribution is then the Kaplan-Meier estimate over the
histogram's bins, with every waiting turn a right-censored pause (longer than
its wait). Without waits it is the plain normalised histogram.

A learner that sees pauses only in aggregate (the operator reading vLLM's KV-block residency
histograms, tidal/predictors/kv_residency.py) stores its right-censored pauses beside the ended
ones (:meth:`SessionPausePredictor.observe_censored`), decayed alike; the overall distribution
counts them as waiting turns. Weights may be fractional (a histogram increment read over a window
longer than the tick is counted in proportion).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tidal.predictors._state import STATE_VERSION, check_kind, decode_array, encode_array

MIN_PAUSE_S = 0.1
MAX_PAUSE_S = 86_400.0
N_BINS = 96  # about 7 bins per factor of 10 between 0.1 s and a day
HALF_LIFE_S = 6 * 3600.0  # default decay: behaviour from six hours ago counts half
SHRINK_WEIGHT = 5.0  # pseudo-observations pulling a category towards the overall shape
MAX_CATEGORIES = 256
# Prior shape: log-normal with a median of 30 s and a p90 of 10 min. An
# assumption (no public trace records agent pauses, see the traces README):
# human think time between chat turns is tens of seconds, tool calls seconds to
# minutes. Its weight is small, so a few real pauses override it.
PRIOR_MEDIAN_S = 30.0
PRIOR_P90_S = 600.0
PRIOR_WEIGHT = 2.0

_EDGES = np.geomspace(MIN_PAUSE_S, MAX_PAUSE_S, N_BINS + 1)
_LOG_EDGES = np.log(_EDGES)


def _prior_hist() -> np.ndarray:
    from tidal.predictors.quantiles import norm_cdf

    sigma = math.log(PRIOR_P90_S / PRIOR_MEDIAN_S) / 1.2815515655446004
    cdf = norm_cdf((_LOG_EDGES - math.log(PRIOR_MEDIAN_S)) / sigma)
    h = np.diff(cdf)
    h[0] += cdf[0]
    h[-1] += 1 - cdf[-1]
    return h / h.sum()


def _bin(x_s: float) -> int:
    return int(np.clip(np.searchsorted(_EDGES, max(x_s, MIN_PAUSE_S), side="right") - 1, 0, N_BINS - 1))


def _wait_counts(waiting_s: Sequence[float]) -> np.ndarray:
    """Waiting turns per bin (the bin their wait so far falls in)."""
    counts = np.zeros(N_BINS)
    if len(waiting_s):
        waits = np.maximum(np.asarray(waiting_s, dtype=float), MIN_PAUSE_S)
        if not np.all(np.isfinite(waits)):
            raise ValueError("waiting_s: every wait must be a finite number of seconds")
        index = np.clip(np.searchsorted(_EDGES, waits, side="right") - 1, 0, N_BINS - 1)
        np.add.at(counts, index, 1.0)
    return counts


def kaplan_meier(pauses: np.ndarray, waiting: np.ndarray) -> np.ndarray:
    """Bin probabilities from ``pauses`` (weight of pauses that ended, per bin) and ``waiting``
    (turns per bin still waiting after a wait in that bin: right-censored).

    Per bin: hazard = pauses ended in it / weight still at risk at its start (every pause and wait
    in it or later; a wait counts as at risk through its own bin, so its bin's hazard is, if
    anything, understated). Mass that is still waiting past the last bin's events lands in the
    last bin (longer than any TTL). With no waits this is ``pauses / pauses.sum()``."""
    at_risk = np.cumsum((pauses + waiting)[::-1])[::-1]
    hazard = np.divide(pauses, at_risk, out=np.zeros(N_BINS), where=at_risk > 0)
    survival = np.concatenate([[1.0], np.cumprod(1.0 - hazard)])
    p = survival[:-1] * hazard
    p[-1] += survival[-1]
    return p / p.sum()


class _Hist:
    def __init__(self) -> None:
        self.w = np.zeros(N_BINS)
        self.t_s: float | None = None  # time the weights are decayed to

    def decay_to(self, now_s: float, half_life_s: float) -> None:
        if self.t_s is not None and now_s > self.t_s:
            self.w *= 0.5 ** ((now_s - self.t_s) / half_life_s)
        self.t_s = now_s if self.t_s is None else max(self.t_s, now_s)


class SessionPausePredictor:
    """Exponentially decayed pause distribution, per category and overall."""

    kind = "session_pause"

    def __init__(self, half_life_s: float = HALF_LIFE_S) -> None:
        if not (math.isfinite(half_life_s) and half_life_s > 0):
            raise ValueError(f"half_life_s: must be > 0 seconds, got {half_life_s!r}")
        self.half_life_s = float(half_life_s)
        self._all = _Hist()
        self._censored = _Hist()
        self._cat: dict[str, _Hist] = {}

    def observe(self, now_s: float, pause_s: float, category: str | None = None, weight: float = 1.0) -> None:
        """Record a pause of ``pause_s`` that ended at ``now_s`` (``weight`` pauses of that length)."""
        if not (math.isfinite(pause_s) and pause_s >= 0):
            raise ValueError(f"pause_s: must be finite and >= 0, got {pause_s!r}")
        if not math.isfinite(now_s):
            raise ValueError(f"now_s: must be a finite time, got {now_s!r}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight: must be finite and >= 0, got {weight!r}")
        b = _bin(pause_s)
        self._censored.decay_to(now_s, self.half_life_s)  # both stores stay on one time scale
        targets = [self._all]
        if category is not None:
            if category not in self._cat:
                self._cat[category] = _Hist()
                if len(self._cat) > MAX_CATEGORIES:
                    stale = min(self._cat, key=lambda c: self._cat[c].t_s or -math.inf)
                    del self._cat[stale]
            targets.append(self._cat[category])
        for h in targets:
            h.decay_to(now_s, self.half_life_s)
            h.w[b] += weight

    def observe_censored(self, now_s: float, waited_s: float, weight: float = 1.0) -> None:
        """Record, at ``now_s``, ``weight`` pauses known only to be longer than ``waited_s``
        (right-censored; no category). They stay in the overall distribution as waiting turns,
        decayed like ended pauses."""
        if not (math.isfinite(waited_s) and waited_s >= 0):
            raise ValueError(f"waited_s: must be finite and >= 0, got {waited_s!r}")
        if not math.isfinite(now_s):
            raise ValueError(f"now_s: must be a finite time, got {now_s!r}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight: must be finite and >= 0, got {weight!r}")
        self._all.decay_to(now_s, self.half_life_s)
        self._censored.decay_to(now_s, self.half_life_s)
        self._censored.w[_bin(waited_s)] += weight

    def ended_weight(self) -> float:
        """Pauses learnt as ended, overall (decayed; the prior not counted)."""
        return float(self._all.w.sum())

    def censored_weight(self) -> float:
        """Right-censored pauses stored (decayed)."""
        return float(self._censored.w.sum())

    def distribution(self, category: str | None = None, waiting_s: Sequence[float] = ()) -> np.ndarray:
        """Bin probabilities: category shrunk to overall, overall shrunk to the prior.

        ``waiting_s``: how long each turn of ``category`` (every turn when None) that is still
        waiting for its next turn has waited; they enter as right-censored pauses
        (:func:`kaplan_meier`) of the category's histogram, or of the overall one when the
        category has none."""
        waiting = _wait_counts(waiting_s)
        overall_w = self._all.w + PRIOR_WEIGHT * _prior_hist()
        h = self._cat.get(category) if category is not None else None
        if h is None:
            return kaplan_meier(overall_w, waiting + self._censored.w)
        overall = overall_w / overall_w.sum()
        return kaplan_meier(h.w + SHRINK_WEIGHT * overall, waiting)

    def cdf(self, x_s: float, category: str | None = None) -> float:
        """P(pause <= x_s), log-linear inside a bin."""
        if x_s < MIN_PAUSE_S:
            return 0.0
        p = self.distribution(category)
        c = np.concatenate([[0.0], np.cumsum(p)])
        return float(min(1.0, np.interp(math.log(min(x_s, MAX_PAUSE_S)), _LOG_EDGES, c)))

    def cdf_function(self, category: str | None = None,
                     waiting_s: Sequence[float] = ()) -> Callable[[float], float]:
        """``cdf`` for one category, with the distribution computed once (for callers that
        evaluate it at many points, as the KV-TTL policy does); ``waiting_s`` as in
        :meth:`distribution`."""
        c = np.concatenate([[0.0], np.cumsum(self.distribution(category, waiting_s))])

        def cdf(x_s: float) -> float:
            if x_s < MIN_PAUSE_S:
                return 0.0
            return float(min(1.0, np.interp(math.log(min(x_s, MAX_PAUSE_S)), _LOG_EDGES, c)))

        return cdf

    def categories(self) -> tuple[str, ...]:
        """Categories with a histogram of their own."""
        return tuple(self._cat)

    def quantile(self, q: float, category: str | None = None) -> float:
        if not 0 < q < 1:
            raise ValueError(f"q: must lie strictly between 0 and 1, got {q!r}")
        p = self.distribution(category)
        c = np.concatenate([[0.0], np.cumsum(p)])
        # np.interp needs increasing x: drop flat stretches of the CDF.
        keep = np.concatenate([[True], np.diff(c) > 0])
        return float(np.exp(np.interp(q, c[keep], _LOG_EDGES[keep])))

    def quantiles(self, qs: tuple[float, ...], category: str | None = None) -> tuple[float, ...]:
        return tuple(self.quantile(q, category) for q in qs)

    def to_state(self) -> dict[str, Any]:
        def h2s(h: _Hist) -> dict[str, Any]:
            return {"t_s": h.t_s, "w": encode_array(h.w)}

        return {
            "version": STATE_VERSION,
            "kind": self.kind,
            "half_life_s": self.half_life_s,
            "all": h2s(self._all),
            "censored": h2s(self._censored),
            "categories": {k: h2s(v) for k, v in self._cat.items()},
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> "SessionPausePredictor":
        check_kind(s, cls.kind)
        p = cls(s["half_life_s"])

        def s2h(d: dict[str, Any]) -> _Hist:
            h = _Hist()
            h.t_s = d["t_s"]
            h.w = decode_array(d["w"])
            if h.w.shape != (N_BINS,):
                raise ValueError(f"session-pause state: histogram has {h.w.shape} bins, expected {N_BINS}")
            return h

        p._all = s2h(s["all"])
        if "censored" in s:  # absent in states written before censored pauses were stored
            p._censored = s2h(s["censored"])
        p._cat = {k: s2h(v) for k, v in s["categories"].items()}
        return p
