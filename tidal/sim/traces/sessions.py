"""Sessions recovered from prefix-block hashes (the Mooncake trace records no session ids).

Mooncake's ``hash_ids`` give one id per 512-token prompt block, equal ids meaning an identical
prefix (Mooncake FAST'25 trace README). A later request whose prompt starts with *all* the full
blocks of an earlier request's prompt re-reads that request's whole context: it is that request's
next turn (the synthetic trace "preserves the order within multi-turn conversations", README).
:func:`link_prefix_sessions` links each request to the latest earlier request with the longest
such full-block prefix, and gives every request a session: the first request of a chain is its
root, a request with no earlier prefix starts its own (a one-turn session, whose KV a TTL policy
may still pin without knowing no turn follows, as it would in production).

``pause_s`` is the gap between the parent's arrival and the turn's arrival: the response time is
not in the trace, so this is an upper bound of the client-side pause. ``tool`` stays None (the
trace has no request categories).
"""

from __future__ import annotations

from collections.abc import Sequence

from tidal.sim.traces.records import KV_BLOCK_TOKENS, LLMRequest


def parent_requests(requests: Sequence[LLMRequest], block_tokens: int = KV_BLOCK_TOKENS) -> dict[int, int]:
    """``{index: parent index}``: the latest earlier request whose full prompt blocks are a prefix
    of this one's (the longest such prefix wins). ``requests`` sorted by arrival."""
    latest: dict[tuple[int, ...], int] = {}
    parents: dict[int, int] = {}
    for j, r in enumerate(requests):
        ids = r.hash_ids
        for k in range(min(r.prompt_tokens // block_tokens, len(ids)), 0, -1):
            i = latest.get(ids[:k])
            if i is not None:
                parents[j] = i
                break
        full = min(r.prompt_tokens // block_tokens, len(ids))
        if full:
            latest[ids[:full]] = j
    return parents


def link_prefix_sessions(requests: Sequence[LLMRequest],
                         block_tokens: int = KV_BLOCK_TOKENS) -> list[LLMRequest]:
    """``requests`` with ``session_id`` (the chain's root index), ``turn`` (depth in the chain) and
    ``pause_s`` (arrival gap to the parent) set from prefix links; ``request_id`` is the index."""
    parents = parent_requests(requests, block_tokens)
    session: list[int] = []
    turn: list[int] = []
    out: list[LLMRequest] = []
    for j, r in enumerate(requests):
        i = parents.get(j)
        session.append(session[i] if i is not None else j)
        turn.append(turn[i] + 1 if i is not None else 0)
        pause = r.arrival_s - requests[i].arrival_s if i is not None else 0.0
        out.append(LLMRequest(arrival_s=r.arrival_s, prompt_tokens=r.prompt_tokens,
                              output_tokens=r.output_tokens, hash_ids=r.hash_ids,
                              session_id=session[j], turn=turn[j], request_id=j, pause_s=pause,
                              tool=None))
    return out
