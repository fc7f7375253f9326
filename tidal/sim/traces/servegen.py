"""ServeGen (Alibaba Model Studio) per-client rate windows, and arrivals sampled from them.

Format: one headerless CSV per client (``chunk-N-trace.csv``), one row per
10-minute window: ``window_start_s, rate_req_per_s, cv_of_interarrival,
iat_distribution (Gamma, Weibull or empty), param1, param2``. Source: ServeGen
(arXiv:2505.09999), Apache-2.0.

Parameter mapping, checked on all 146,480 non-empty windows of ``m-small`` and
``m-mid`` (tests/sim/traces/test_traces_servegen.py repeats the check):

- ``param1`` is the shape and ``param2`` the scale in seconds, as in
  ``numpy``/``scipy`` (``Gamma(shape, scale)``, ``Weibull(shape) * scale``).
- Gamma: ``1 / sqrt(param1)`` equals the recorded cv in every window and
  ``param1 * param2`` equals ``1 / rate`` (median ratio 0.9997; 5-95% within
  0.997-1.0001 for windows with over 1,000 requests), i.e. a moment fit.
- Weibull: the fit does not reproduce the recorded moments exactly (median
  ``mean * rate`` 1.22, median cv ratio 0.79; the fitted tail differs from the
  sample moments on these very bursty windows, shape 0.15-2.7).
- ``rate * 600`` is an integer in every window: the count of requests the
  client sent in that window.

Sampling (``sample_servegen_requests``) keeps the recorded count and the
recorded burstiness:

- ``arrivals="exact-count"`` (default): a window with ``n`` recorded requests
  gets exactly ``n`` arrivals. Draw ``n + 1`` gaps from the window's law
  (shape ``param1``), and place arrival ``j`` at ``start + D * S_j / S_{n+1}``
  where ``S_j`` is the sum of the first ``j`` gaps: a renewal process with that
  inter-arrival law conditioned on having ``n`` points in the window, so every
  arrival lies inside its window and the window rate is reproduced exactly.
  Where the law is empty the gaps are exponential (Poisson arrivals).
- ``arrivals="renewal"``: an unconditioned renewal process restarted at each
  window start, with gaps of shape ``param1`` and the scale set so the mean gap
  is ``1 / rate`` (for Gamma that is ``param2``); the count is then random.
  Poisson where the law is empty and the rate is positive.

A non-integer ``rate * duration`` (a hand-made file) is rounded stochastically,
which keeps the expected count exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from tidal.sim.traces.errors import TraceFormatError
from tidal.sim.traces.parsing import csv_rows, finite_float, nonnegative_float
from tidal.sim.traces.records import LLMRequest, RateWindow
from tidal.sim.traces.tokens import TokenSampler, azure_conv_token_sampler

SERVEGEN_COLUMNS = (
    "window_start_s",
    "rate_req_per_s",
    "cv_of_interarrival",
    "iat_distribution",
    "param1",
    "param2",
)
SERVEGEN_WINDOW_S = 600.0
"""Window length; the ServeGen release's trace files hold one row per 10 minutes."""

DEFAULT_MAX_REQUESTS = 5_000_000
"""Refuse to build more request objects than this (about 1 GB); pass a larger limit explicitly."""

ArrivalMode = Literal["exact-count", "renewal"]


def load_servegen_client(path: str | Path) -> list[RateWindow]:
    """Read one ServeGen client trace. Window starts must strictly increase."""
    path = Path(path)
    windows: list[RateWindow] = []
    previous_start: float | None = None
    for line, fields in csv_rows(path, SERVEGEN_COLUMNS, header=False):
        start_s = nonnegative_float(fields[0], path, line, "window_start_s")
        if previous_start is not None and start_s <= previous_start:
            raise TraceFormatError(
                path,
                line,
                "window_start_s",
                f"a window start after the previous one ({previous_start:g})",
                fields[0],
            )
        previous_start = start_s
        rate_rps = nonnegative_float(fields[1], path, line, "rate_req_per_s")
        cv = nonnegative_float(fields[2], path, line, "cv_of_interarrival")
        distribution = fields[3].strip()
        param1 = finite_float(fields[4], path, line, "param1")
        param2 = finite_float(fields[5], path, line, "param2")
        if distribution not in ("Gamma", "Weibull", ""):
            raise TraceFormatError(
                path, line, "iat_distribution", "Gamma, Weibull or empty", fields[3]
            )
        if distribution:
            for column, value, text in (
                ("param1", param1, fields[4]),
                ("param2", param2, fields[5]),
            ):
                if value <= 0:
                    raise TraceFormatError(
                        path, line, column, f"a positive {distribution} parameter", text
                    )
        windows.append(
            RateWindow(
                start_s=start_s,
                rate_rps=rate_rps,
                cv=cv,
                distribution=distribution or None,  # type: ignore[arg-type]
                param1=param1,
                param2=param2,
            )
        )
    if not windows:
        raise TraceFormatError(path, None, None, "at least one window row")
    return _with_durations(windows)


def _with_durations(windows: list[RateWindow]) -> list[RateWindow]:
    """A window lasts until the next one starts; the last lasts the standard 10 minutes."""
    out = []
    for index, window in enumerate(windows):
        end = windows[index + 1].start_s if index + 1 < len(windows) else None
        duration = SERVEGEN_WINDOW_S if end is None else end - window.start_s
        out.append(
            RateWindow(
                window.start_s,
                window.rate_rps,
                window.cv,
                window.distribution,
                window.param1,
                window.param2,
                duration_s=duration,
            )
        )
    return out


def sample_servegen_requests(
    windows: Sequence[RateWindow],
    *,
    seed: int,
    token_sampler: TokenSampler | None = None,
    arrivals: ArrivalMode = "exact-count",
    start_s: float = 0.0,
    duration_s: float | None = None,
    max_requests: int = DEFAULT_MAX_REQUESTS,
) -> list[LLMRequest]:
    """Sample requests for the windows overlapping ``[start_s, start_s + duration_s)``.

    Arrivals are re-based so ``start_s`` is time 0. Each window draws from its
    own generator seeded by ``(seed, window start)``, so a window's arrivals do
    not depend on which other windows are sampled. ``token_sampler`` defaults
    to pairs from the bundled Azure conv excerpt (see ``tokens.py``).
    """
    if arrivals not in ("exact-count", "renewal"):
        raise ValueError(f"arrivals must be 'exact-count' or 'renewal', got {arrivals!r}")
    end_s = math.inf if duration_s is None else start_s + duration_s
    chosen = [w for w in windows if w.start_s < end_s and w.start_s + w.duration_s > start_s]
    expected = sum(w.rate_rps * w.duration_s for w in chosen)
    if expected > max_requests:
        raise ValueError(
            f"the selected ServeGen windows hold about {expected:,.0f} requests, over "
            f"max_requests={max_requests:,}; choose a shorter duration_s or raise max_requests"
        )
    sampler = token_sampler if token_sampler is not None else azure_conv_token_sampler()
    times: list[np.ndarray] = []
    prompts: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    for window in chosen:
        rng = np.random.default_rng((seed, int(window.start_s)))
        window_times = (
            exact_count_arrivals(window, rng)
            if arrivals == "exact-count"
            else renewal_arrivals(window, rng)
        )
        keep = (window_times >= start_s) & (window_times < end_s)
        window_times = window_times[keep]
        window_prompts, window_outputs = sampler(rng, len(window_times))
        times.append(window_times)
        prompts.append(np.asarray(window_prompts, dtype=np.int64))
        outputs.append(np.asarray(window_outputs, dtype=np.int64))
    if not times:
        return []
    all_times = np.concatenate(times) - start_s
    all_prompts = np.concatenate(prompts)
    all_outputs = np.concatenate(outputs)
    order = np.argsort(all_times, kind="stable")
    return [
        LLMRequest(arrival_s=t, prompt_tokens=p, output_tokens=o, request_id=i)
        for i, (t, p, o) in enumerate(
            zip(
                all_times[order].tolist(),
                all_prompts[order].tolist(),
                all_outputs[order].tolist(),
                strict=True,
            )
        )
    ]


def window_request_count(window: RateWindow, rng: np.random.Generator) -> int:
    """The window's recorded count; a fractional count is rounded stochastically."""
    expected = window.rate_rps * window.duration_s
    whole = math.floor(expected)
    fraction = expected - whole
    if fraction < 1e-6 or fraction > 1 - 1e-6:  # float noise on an integer count
        return round(expected)
    return whole + int(rng.random() < fraction)


def exact_count_arrivals(window: RateWindow, rng: np.random.Generator) -> np.ndarray:
    """Exactly the window's count of arrivals, spaced by gaps of the window's law (sorted)."""
    count = window_request_count(window, rng)
    if count == 0:
        return np.empty(0)
    gaps = _unit_gaps(window, rng, count + 1)
    cumulative = np.cumsum(gaps)
    total = cumulative[-1]
    if not total > 0:  # every gap underflowed to 0 (shape << 1): one burst mid-window
        return np.full(count, window.start_s + window.duration_s / 2)
    fractions = cumulative[:-1] / total
    arrivals = window.start_s + window.duration_s * fractions
    # With shape << 1 the closing gap can underflow to 0, putting the last
    # arrivals exactly on the window end; keep them just inside their window.
    last_inside = np.nextafter(window.start_s + window.duration_s, -math.inf)
    return np.minimum(arrivals, last_inside)


def renewal_arrivals(window: RateWindow, rng: np.random.Generator) -> np.ndarray:
    """A renewal process with mean gap ``1 / rate`` started at the window start (sorted)."""
    if window.rate_rps <= 0:
        return np.empty(0)
    mean_gap_s = 1.0 / window.rate_rps
    end_s = window.start_s + window.duration_s
    batch = max(16, int(window.rate_rps * window.duration_s * 1.2) + 16)
    chunks: list[np.ndarray] = []
    clock = window.start_s
    while clock < end_s:
        gaps = _unit_gaps(window, rng, batch) * (mean_gap_s / _unit_mean(window))
        arrivals = clock + np.cumsum(gaps)
        chunks.append(arrivals)
        clock = float(arrivals[-1])
    times = np.concatenate(chunks)
    return times[times < end_s]


def _unit_gaps(window: RateWindow, rng: np.random.Generator, count: int) -> np.ndarray:
    """Gaps with the window's shape and scale 1 (exponential where the law is empty)."""
    if window.distribution == "Gamma":
        return rng.gamma(window.param1, 1.0, size=count)
    if window.distribution == "Weibull":
        return rng.weibull(window.param1, size=count)
    return rng.exponential(1.0, size=count)


def _unit_mean(window: RateWindow) -> float:
    """Mean of ``_unit_gaps`` for the window's law."""
    if window.distribution == "Gamma":
        return window.param1
    if window.distribution == "Weibull":
        return math.gamma(1.0 + 1.0 / window.param1)
    return 1.0


def moments_of_fit(window: RateWindow) -> tuple[float, float]:
    """Mean gap (s) and cv implied by ``(param1, param2)`` read as (shape, scale).

    Used to check the parameter mapping against the recorded rate and cv.
    """
    shape, scale = window.param1, window.param2
    if window.distribution == "Gamma":
        return shape * scale, 1.0 / math.sqrt(shape)
    if window.distribution == "Weibull":
        first = math.gamma(1.0 + 1.0 / shape)
        second = math.gamma(1.0 + 2.0 / shape)
        return scale * first, math.sqrt(second / first**2 - 1.0)
    raise ValueError("a window without an inter-arrival law has no fitted moments")
