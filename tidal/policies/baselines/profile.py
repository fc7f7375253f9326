"""Pre-deployment performance profile of one model on one accelerator, for profile-driven baselines.

The Dynamo SLA planner sizes pools from profiling runs made before deployment
(``profile_sla.py`` in ai-dynamo/dynamo: TTFT and prefill throughput against input length,
ITL and decode throughput against load and context length); HeteroScale takes its per-instance
TPS target and P/D ratio from the same kind of measurement. A profile is data handed to the
policy's constructor -- whoever builds it (a profiling run, or a perturbed copy to show online
correction) -- so the policies never read the simulator's own performance model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check_axis(name: str, axis: tuple[float, ...]) -> None:
    if len(axis) < 1 or any(b <= a for a, b in zip(axis, axis[1:])):
        raise ValueError(f"{name} must be a non-empty strictly increasing sequence, got {axis}")


@dataclass(frozen=True)
class PrefillProfile:
    """At each input length: TTFT of a lone request and prompt tokens/s one replica sustains."""

    isl_tokens: tuple[float, ...]
    ttft_s: tuple[float, ...]
    throughput_tokens_per_s: tuple[float, ...]

    def __post_init__(self) -> None:
        _check_axis("isl_tokens", self.isl_tokens)
        n = len(self.isl_tokens)
        if len(self.ttft_s) != n or len(self.throughput_tokens_per_s) != n:
            raise ValueError("ttft_s and throughput_tokens_per_s need one value per isl_tokens")
        if min(self.ttft_s) <= 0 or min(self.throughput_tokens_per_s) <= 0:
            raise ValueError("ttft_s and throughput_tokens_per_s must be > 0")

    def ttft_at(self, isl_tokens: float) -> float:
        return float(np.interp(isl_tokens, self.isl_tokens, self.ttft_s))

    def throughput_at(self, isl_tokens: float) -> float:
        return float(np.interp(isl_tokens, self.isl_tokens, self.throughput_tokens_per_s))


@dataclass(frozen=True)
class DecodeProfile:
    """On a (context length x concurrency) grid: ITL and output tokens/s of one replica.

    ``itl_s[i][j]`` and ``throughput_tokens_per_s[i][j]`` are measured at
    ``context_tokens[i]`` and ``concurrency[j]``.
    """

    context_tokens: tuple[float, ...]
    concurrency: tuple[float, ...]
    itl_s: tuple[tuple[float, ...], ...]
    throughput_tokens_per_s: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        _check_axis("context_tokens", self.context_tokens)
        _check_axis("concurrency", self.concurrency)
        shape = (len(self.context_tokens), len(self.concurrency))
        for name, grid in (("itl_s", self.itl_s),
                           ("throughput_tokens_per_s", self.throughput_tokens_per_s)):
            if np.asarray(grid, dtype=float).shape != shape:
                raise ValueError(f"{name} must have shape {shape} (context x concurrency)")
            if np.min(np.asarray(grid, dtype=float)) <= 0:
                raise ValueError(f"{name} must be > 0")

    def _row_at(self, grid: tuple[tuple[float, ...], ...], context: float) -> np.ndarray:
        g = np.asarray(grid, dtype=float)
        return np.array([np.interp(context, self.context_tokens, g[:, j])
                         for j in range(g.shape[1])])

    def itl_at(self, concurrency: float, context: float) -> float:
        return float(np.interp(concurrency, self.concurrency, self._row_at(self.itl_s, context)))

    def best_throughput(self, itl_target_s: float, context: float) -> float:
        """Highest tokens/s of one replica whose ITL meets ``itl_target_s`` at ``context``.

        Like Dynamo's ``find_best_throughput_per_gpu``; when no load meets the target the
        lightest load's throughput is returned (the planner then asks for the most replicas).
        """
        itl = self._row_at(self.itl_s, context)
        thpt = self._row_at(self.throughput_tokens_per_s, context)
        ok = itl <= itl_target_s
        return float(thpt[ok].max()) if ok.any() else float(thpt[0])


@dataclass(frozen=True)
class PerformanceProfile:
    prefill: PrefillProfile
    decode: DecodeProfile
