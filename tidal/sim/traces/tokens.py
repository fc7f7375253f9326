"""Token-length models for workloads whose source records no token counts (ServeGen).

The ServeGen release in ``../shared`` carries per-window rates and
inter-arrival laws but not the per-client length distributions
(``chunk-N-dataset.json`` was not included), so prompt and output lengths must
be modelled. The default model resamples whole (prompt, output) pairs from a
recorded trace, which keeps the joint shape (heavy tails, correlation between
prompt and output length) that a pair of independent parametric fits loses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tidal.sim.traces.records import LLMRequest


class TokenSampler(Protocol):
    """Draws ``count`` (prompt_tokens, output_tokens) pairs as two int arrays."""

    def __call__(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class EmpiricalTokenSampler:
    """Resample (prompt, output) pairs uniformly, with replacement, from a recorded trace."""

    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    @classmethod
    def from_requests(cls, requests: Sequence[LLMRequest]) -> EmpiricalTokenSampler:
        if not requests:
            raise ValueError("an empirical token sampler needs at least one recorded request")
        prompts = np.fromiter((r.prompt_tokens for r in requests), dtype=np.int64)
        outputs = np.fromiter((r.output_tokens for r in requests), dtype=np.int64)
        return cls(prompts, outputs)

    def __call__(self, rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        picks = rng.integers(0, len(self.prompt_tokens), size=count)
        return self.prompt_tokens[picks], self.output_tokens[picks]


def azure_conv_token_sampler() -> EmpiricalTokenSampler:
    """Pairs from the bundled Azure LLM 2023 ``conv`` excerpt (5,078 requests, CC-BY-4.0).

    Chosen as the default for ServeGen because it is a production
    conversational-LLM workload like ServeGen's language clients and it ships
    with the package, so the ServeGen replay needs no second shared file.
    Excerpt medians: 988 prompt and 95 output tokens (the full hour: 1,020 and
    129); see docs/traces.md.
    """
    from tidal.sim.traces.registry import load_demo_trace

    return EmpiricalTokenSampler.from_requests(load_demo_trace())
