"""What an engine or function sample must be before it may move replicas: one check for every kind.

An autoscaler that scales down on garbage drops users' requests, so every per-pod sample the
Prometheus adapter reads passes :func:`check_sample` first. A sample that is not finite, negative,
above the plausible bound of its metric, or stale (no sample inside the metrics window) is
rejected *for that pod*, with a :class:`PodRejection` naming the pod, the field and the problem;
the pod's other fields and the other pods are still used. :func:`unobserved_pods` then says which
Ready pods did not report a usable in-flight count: a pool with any is *partially observed*, and
the decision core may scale it up on the pods that report but never down
(tidal/policies/guards.py).

The bounds are deliberately loose: they only catch values no engine can produce (a counter
wrapped to 1e300, a gauge written by a bug), never a real overload.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Collection, Iterable, Mapping

MAX_PER_POD: Mapping[str, float] = {
    "running_requests": 65_536.0,
    "waiting_requests": 1_000_000.0,
    "kv_cache_usage_ratio": 1.0,
    "request_rate_rps": 100_000.0,
    "prompt_tokens_rps": 100_000_000.0,
    "output_tokens_rps": 10_000_000.0,
}
"""Largest plausible value of each per-pod metric.

- ``running_requests`` 65,536: vLLM's ``--max-num-seqs`` defaults to 256-1,024 and SGLang's
  ``--max-running-requests`` is of the same order; 2^16 is far above any batch an engine runs.
- ``waiting_requests`` 1,000,000: an engine's queue is bounded only by memory; a million
  queued requests is already an outage, more is a broken gauge.
- ``kv_cache_usage_ratio`` 1.0: vLLM's ``kv_cache_usage_perc`` and SGLang's ``token_usage`` are
  fractions of the KV pool (1.0 = full), despite vLLM's name.
- ``request_rate_rps`` 100,000 per pod: LLM replicas serve tens to hundreds of requests per
  second; HTTP functions a few thousand.
- ``prompt_tokens_rps`` 1e8 and ``output_tokens_rps`` 1e7 per pod: an 8xH100 replica prefills on
  the order of 1e5-1e6 tokens/s and decodes ~1e4-1e5 tokens/s; two orders of margin.
"""

IN_FLIGHT_FIELDS = ("running_requests", "waiting_requests")
"""The fields the replica rules scale on: a Ready pod without both is unobserved."""


class SampleProblem(str, enum.Enum):
    """Why one pod's sample was not used. Values are short words for condition messages."""

    NOT_FINITE = "not finite"
    NEGATIVE = "negative"
    IMPLAUSIBLE = "implausible"
    STALE = "stale"
    NOT_REPORTING = "not reporting"


@dataclass(frozen=True)
class PodRejection:
    """One pod's field that was not used, and why."""

    pod: str
    field: str
    problem: SampleProblem
    value: float | None = None
    detail: str = ""

    def describe(self) -> str:
        shown = "" if self.value is None else f" = {self.value:g}"
        extra = f" ({self.detail})" if self.detail else ""
        return f"pod {self.pod or '<no pod label>'}: {self.field}{shown} {self.problem.value}{extra}"


def check_sample(field: str, value: float) -> tuple[SampleProblem, str] | None:
    """The problem with one per-pod sample of ``field``, or None when it is usable."""
    if not math.isfinite(value):
        return SampleProblem.NOT_FINITE, ""
    if value < 0:
        return SampleProblem.NEGATIVE, "counts, rates and ratios cannot be negative"
    bound = MAX_PER_POD.get(field)
    if bound is not None and value > bound:
        return SampleProblem.IMPLAUSIBLE, f"above the plausible bound {bound:g} per pod"
    return None


def stale_rejection(pod: str, field: str, value: float, window_s: float) -> PodRejection:
    """A pod whose latest sample is older than the metrics window (scrapes stopped or lag)."""
    return PodRejection(pod, field, SampleProblem.STALE, value,
                        f"no sample in the last {window_s:g}s; Prometheus still returns an older one")


def unobserved_pods(ready_pods: Collection[str], reported: Mapping[str, Mapping[str, float | None]],
                    rejected: Iterable[PodRejection]) -> tuple[PodRejection, ...]:
    """Ready pods without a usable in-flight count: neither reporting nor already rejected for it.

    ``reported`` is pod -> field -> accepted value. A pod rejected for an in-flight field is
    already named by its rejection; the others get ``NOT_REPORTING`` (scrape failing, series
    dropped, relabelling that lost the pod label).
    """
    named = {(r.pod, r.field) for r in rejected}
    missing = []
    for pod in sorted(ready_pods):
        for field in IN_FLIGHT_FIELDS:
            if (pod, field) in named:
                continue
            if reported.get(pod, {}).get(field) is None:
                missing.append(PodRejection(pod, field, SampleProblem.NOT_REPORTING, None,
                                            "Ready but no series; is its scrape failing?"))
    return tuple(missing)


def unobserved_count(ready_pods: Collection[str], rejections: Iterable[PodRejection]) -> int:
    """How many Ready pods lack a usable in-flight count (the pool's partial-observation size)."""
    ready = set(ready_pods)
    return len({r.pod for r in rejections if r.pod in ready and r.field in IN_FLIGHT_FIELDS})
