"""The records every trace loader produces: the simulator's view of a workload.

Loaders of different trace families differ in what the source records (exact
timestamps, per-window rates, per-minute counts); they all end in these few
immutable records so the simulator never needs to know where a workload came
from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KV_BLOCK_TOKENS = 512
"""Tokens per prefix-cache block in ``LLMRequest.hash_ids``.

Source: the Mooncake trace release (FAST'25), whose ``hash_ids`` are "remapped
prefix block hashes" with "block size 512 tokens". The synthetic agent workload
uses the same block size so both feed the same prefix-cache model.
"""

IatDistribution = Literal["Gamma", "Weibull"]


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """One LLM call.

    ``hash_ids`` holds one id per ``KV_BLOCK_TOKENS``-token prefix block of the
    prompt; equal ids at equal positions mean the KV for that block can be
    reused. Traces that carry no prefix information leave it empty.

    For multi-turn sessions (``session_id`` set, ``turn`` > 0), ``pause_s`` is
    the client-side pause (tool call or user think time) between the end of the
    previous turn's response and this request, and ``tool`` names what caused
    it. ``arrival_s`` is the open-loop arrival; a closed-loop simulator can
    instead release turn ``k`` ``pause_s`` after turn ``k - 1`` completes.
    """

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()
    session_id: int | None = None
    turn: int = 0
    request_id: int = 0
    pause_s: float = 0.0
    tool: str | None = None


@dataclass(frozen=True)
class FunctionSpec:
    """One serverless function of the Azure Functions trace.

    Percentile keys are ``"p<q>"`` with ``q`` in percent (``"p0"``, ``"p50"``,
    ``"p100"``...), exactly the percentiles the source file records.
    """

    function_id: str
    duration_percentiles_ms: dict[str, float]
    memory_percentiles_mb: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class FunctionInvocation:
    """One invocation of a serverless function, with its sampled run time."""

    arrival_s: float
    function_id: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One window of a ServeGen client trace: a rate and an inter-arrival law.

    ``distribution`` is ``None`` where the source leaves it empty; the window's
    arrivals are then Poisson at ``rate_rps``. ``param1`` is the distribution's
    shape and ``param2`` its scale (in seconds); see ``servegen.py`` for how
    this mapping was checked against ``rate_rps`` and ``cv``.
    """

    start_s: float
    rate_rps: float
    cv: float
    distribution: IatDistribution | None
    param1: float
    param2: float
    duration_s: float = 600.0

    @property
    def expected_requests(self) -> int:
        """Requests the window held in production (``rate_rps * duration_s``, an integer there)."""
        return round(self.rate_rps * self.duration_s)
