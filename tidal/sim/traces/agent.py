"""Synthetic multi-turn agent workload: sessions of LLM calls separated by tool pauses.

None of the public traces in ``../shared`` records tool-call pauses, so the
KV-TTL work needs a model. The model and every default are stated here; the
defaults are **assumptions**, chosen to sit inside the ranges reported for
agent workloads, not fits to a trace:

- Continuum (Li et al., arXiv:2511.02230) reports tool calls in SWE-bench and
  BFCL agents lasting "milliseconds to tens of seconds", and notes human
  replies in multi-turn chat are longer than most tool calls. The default tool
  mix spans that range (median 50 ms to 20 s).
- The Mooncake FAST'25 "tool and agent" trace (README in ``../shared``)
  averages 8,596 input and 182 output tokens per request; the default token
  parameters give a similar output mean (lognormal median 150, sigma 0.7 ->
  mean 191) and a mean prompt of the same order (checked in the tests).

Model, per session:

1. Sessions start as a Poisson process with rate ``session_rate_rps``.
2. The number of turns is geometric on {1, 2, ...} with mean ``mean_turns``,
   capped at ``max_turns``.
3. Turn 0's prompt is a system prompt shared by all sessions
   (``system_prompt_tokens``: agent instructions and tool schemas) plus a user
   task. Each later turn's prompt is the previous prompt plus the previous
   response plus the tool's result, so a session's context only grows and
   every turn's prompt extends the one before. A session ends early rather
   than exceed ``max_context_tokens``.
4. Between turns a tool is chosen from ``tools`` by weight; its pause is
   lognormal with the tool's median and sigma.
5. Open-loop timing: turn ``k`` arrives ``assumed_ttft_s + output_tokens *
   assumed_tpot_s + pause`` after turn ``k - 1`` (an assumed response time,
   since a trace cannot know the simulated one); ``pause_s`` and ``tool`` are
   recorded on each request so a closed-loop simulator can re-time turns.

Prefix blocks (``hash_ids``, 512 tokens as in Mooncake): a block that is full
in some turn's prompt has content fixed by the session's history, so it keeps
its id in every later turn of the session; the partially filled last block
gets a fresh id each turn. Full blocks of the shared system prompt have the
same ids in every session. A prefix cache therefore sees exactly the reuse a
real agent's growing context offers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tidal.sim.traces.records import KV_BLOCK_TOKENS, LLMRequest


@dataclass(frozen=True)
class ToolPause:
    """A tool (or the user) an agent waits on between turns: lognormal pause."""

    name: str
    weight: float
    median_s: float
    sigma: float

    def __post_init__(self) -> None:
        if not (self.weight > 0 and self.median_s > 0 and self.sigma >= 0):
            raise ValueError(f"tool {self.name!r} needs weight > 0, median_s > 0, sigma >= 0")


DEFAULT_TOOLS: tuple[ToolPause, ...] = (
    # Assumptions within Continuum's "milliseconds to tens of seconds" range.
    ToolPause("file_read", weight=0.4, median_s=0.05, sigma=1.0),  # ls, cat, grep
    ToolPause("web_api", weight=0.2, median_s=1.0, sigma=0.6),  # search / HTTP API call
    ToolPause("code_exec", weight=0.3, median_s=3.0, sigma=1.2),  # run tests, build
    ToolPause("human", weight=0.1, median_s=20.0, sigma=1.0),  # user reply in a chat agent
)


@dataclass(frozen=True)
class Lognormal:
    """A lognormal token count: ``median * exp(sigma * N(0, 1))``, rounded, at least 1."""

    median: float
    sigma: float

    def sample(self, rng: np.random.Generator) -> int:
        return max(1, round(self.median * math.exp(self.sigma * rng.standard_normal())))


@dataclass(frozen=True)
class AgentModel:
    """Parameters of the synthetic agent workload; every default is an assumption (see module)."""

    session_rate_rps: float = 0.5
    mean_turns: float = 8.0
    max_turns: int = 50
    system_prompt_tokens: int = 2048
    user_task_tokens: Lognormal = Lognormal(median=400, sigma=0.8)
    output_tokens: Lognormal = Lognormal(median=150, sigma=0.7)
    tool_result_tokens: Lognormal = Lognormal(median=600, sigma=1.0)
    max_context_tokens: int = 131_072  # a 128k-context model
    tools: tuple[ToolPause, ...] = field(default=DEFAULT_TOOLS)
    assumed_ttft_s: float = 0.5
    assumed_tpot_s: float = 0.03

    def __post_init__(self) -> None:
        if not self.session_rate_rps > 0:
            raise ValueError("session_rate_rps must be > 0")
        if not (self.mean_turns >= 1 and self.max_turns >= 1):
            raise ValueError("mean_turns and max_turns must be >= 1")
        if not self.tools:
            raise ValueError("at least one tool is needed to draw pauses from")
        if self.system_prompt_tokens < 0 or self.max_context_tokens < 1:
            raise ValueError("system_prompt_tokens must be >= 0 and max_context_tokens >= 1")


DEFAULT_AGENT_MODEL = AgentModel()


def synthetic_agent_sessions(
    *, seed: int, sessions: int, model: AgentModel = DEFAULT_AGENT_MODEL
) -> list[LLMRequest]:
    """``sessions`` agent sessions as requests sorted by arrival (reproducible for a seed)."""
    if sessions < 0:
        raise ValueError(f"sessions must be >= 0, got {sessions}")
    rng = np.random.default_rng(seed)
    blocks = _BlockIds(model.system_prompt_tokens // KV_BLOCK_TOKENS)
    weights = np.array([t.weight for t in model.tools])
    weights = weights / weights.sum()
    requests: list[LLMRequest] = []
    start_s = 0.0
    for session in range(sessions):
        start_s += rng.exponential(1.0 / model.session_rate_rps)
        requests.extend(_session(session, start_s, rng, model, blocks, weights))
    requests.sort(key=lambda r: (r.arrival_s, r.session_id, r.turn))
    return [_with_id(r, i) for i, r in enumerate(requests)]


def _session(
    session: int,
    start_s: float,
    rng: np.random.Generator,
    model: AgentModel,
    blocks: _BlockIds,
    tool_weights: np.ndarray,
) -> list[LLMRequest]:
    turns = min(model.max_turns, int(rng.geometric(1.0 / model.mean_turns)))
    stable = list(blocks.shared_prefix)
    prompt = model.system_prompt_tokens + model.user_task_tokens.sample(rng)
    arrival_s, pause_s, tool = start_s, 0.0, None
    out: list[LLMRequest] = []
    for turn in range(turns):
        if prompt > model.max_context_tokens:
            break
        output = model.output_tokens.sample(rng)
        out.append(
            LLMRequest(
                arrival_s=arrival_s,
                prompt_tokens=prompt,
                output_tokens=output,
                hash_ids=blocks.for_prompt(prompt, stable),
                session_id=session,
                turn=turn,
                pause_s=pause_s,
                tool=tool,
            )
        )
        chosen = model.tools[int(rng.choice(len(model.tools), p=tool_weights))]
        tool = chosen.name
        pause_s = chosen.median_s * math.exp(chosen.sigma * rng.standard_normal())
        response_s = model.assumed_ttft_s + output * model.assumed_tpot_s
        arrival_s += response_s + pause_s
        prompt += output + model.tool_result_tokens.sample(rng)
    return out


class _BlockIds:
    """Hands out prefix-block ids; ids ``0..shared_blocks-1`` are the shared system prompt."""

    def __init__(self, shared_blocks: int) -> None:
        self.shared_prefix = tuple(range(shared_blocks))
        self._next = shared_blocks

    def fresh(self) -> int:
        self._next += 1
        return self._next - 1

    def for_prompt(self, prompt_tokens: int, stable: list[int]) -> tuple[int, ...]:
        """Ids for a prompt that extends the session's history; grows ``stable`` in place."""
        full = prompt_tokens // KV_BLOCK_TOKENS
        while len(stable) < full:
            stable.append(self.fresh())
        tail = (self.fresh(),) if prompt_tokens % KV_BLOCK_TOKENS else ()
        return tuple(stable[:full]) + tail


def _with_id(request: LLMRequest, request_id: int) -> LLMRequest:
    return LLMRequest(
        arrival_s=request.arrival_s,
        prompt_tokens=request.prompt_tokens,
        output_tokens=request.output_tokens,
        hash_ids=request.hash_ids,
        session_id=request.session_id,
        turn=request.turn,
        request_id=request_id,
        pause_s=request.pause_s,
        tool=request.tool,
    )


def session_pauses(requests: Sequence[LLMRequest]) -> dict[str, np.ndarray]:
    """Recorded pauses per tool (turns > 0), e.g. to fit or check a pause predictor."""
    by_tool: dict[str, list[float]] = {}
    for r in requests:
        if r.turn > 0 and r.tool is not None:
            by_tool.setdefault(r.tool, []).append(r.pause_s)
    return {tool: np.array(pauses) for tool, pauses in by_tool.items()}
