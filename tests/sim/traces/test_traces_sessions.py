"""Sessions recovered from prefix hashes: a turn continues the latest request whose full blocks it starts with."""

from __future__ import annotations

from tidal.sim.traces.records import LLMRequest
from tidal.sim.traces.sessions import link_prefix_sessions, parent_requests


def _req(t: float, tokens: int, ids: tuple[int, ...]) -> LLMRequest:
    return LLMRequest(arrival_s=t, prompt_tokens=tokens, output_tokens=10, hash_ids=ids)


def test_a_turn_continues_the_latest_request_whose_full_blocks_it_starts_with() -> None:
    reqs = [
        _req(0.0, 1100, (1, 2, 3)),         # full blocks (1, 2), partial 3
        _req(5.0, 600, (9, 10)),            # unrelated
        _req(9.0, 1700, (1, 2, 4, 5)),      # continues request 0
        _req(20.0, 2100, (1, 2, 4, 5, 6)),  # continues request 2 (longest prefix)
        _req(25.0, 1000, (1, 7)),           # shares block 1 only: not all of anyone's full blocks
    ]
    assert parent_requests(reqs) == {2: 0, 3: 2}
    linked = link_prefix_sessions(reqs)
    assert [(r.session_id, r.turn) for r in linked] == [(0, 0), (1, 0), (0, 1), (0, 2), (4, 0)]
    assert linked[3].pause_s == 11.0 and linked[0].pause_s == 0.0
    assert [r.request_id for r in linked] == [0, 1, 2, 3, 4]
    assert all(r.tool is None for r in linked)
