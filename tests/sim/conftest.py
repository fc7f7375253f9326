"""Helpers shared by the simulator tests: synthetic requests and a recording listener."""

from __future__ import annotations

import pytest

from tidal.sim.traces import LLMRequest


def make_requests(n: int, *, gap_s: float = 0.5, prompt: int = 600, output: int = 80,
                  start_s: float = 0.0) -> list[LLMRequest]:
    return [LLMRequest(arrival_s=start_s + i * gap_s, prompt_tokens=prompt + (i * 37) % 400,
                       output_tokens=output + (i * 13) % 60, request_id=i) for i in range(n)]


class Recorder:
    """Engine listener that keeps everything it is told."""

    def __init__(self) -> None:
        self.first: list = []
        self.finished: list = []
        self.prefill_done: list = []
        self.prompt_tokens = 0
        self.output_tokens = 0

    def on_first_token(self, seq, now_s):
        self.first.append((seq, now_s))

    def on_finish(self, seq, now_s):
        self.finished.append((seq, now_s))

    def on_prefill_done(self, seq, now_s):
        self.prefill_done.append((seq, now_s))

    def on_tokens(self, prompt_tokens, output_tokens, now_s):
        self.prompt_tokens += prompt_tokens
        self.output_tokens += output_tokens


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()
