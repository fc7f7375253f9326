"""The galloping search finds the threshold of any monotone predicate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidal.bench.search import fewest_meeting


@given(lo=st.integers(0, 5), span=st.integers(0, 40), threshold=st.integers(-5, 60),
       guess=st.integers(-10, 70))
def test_fewest_meeting_returns_the_threshold_or_none(lo: int, span: int, threshold: int,
                                                      guess: int) -> None:
    hi = lo + span
    calls: list[int] = []

    def meets(n: int) -> bool:
        assert lo <= n <= hi
        calls.append(n)
        return n >= threshold

    answer = fewest_meeting(meets, lo, hi, guess)
    if threshold > hi:
        assert answer is None
    else:
        assert answer == max(threshold, lo)
    assert len(calls) <= 2 * (span + 1).bit_length() + 2
