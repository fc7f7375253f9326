"""Placement over accelerator classes: preference by strategy, and splits that move as little as possible."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidal.policies.interface import AcceleratorProfile
from tidal.policies.placement import place, preference_order

CLASSES = ("a", "b", "c")


@given(st.integers(0, 200), st.dictionaries(st.sampled_from(CLASSES), st.integers(0, 50)),
       st.permutations(CLASSES))
def test_place_keeps_the_total_and_moves_as_little_as_possible(desired: int, current: dict[str, int],
                                                               order: list[str]) -> None:
    out = place(desired, current, order)
    assert sum(out.values()) == desired and all(n >= 0 for n in out.values())
    have = sum(current.get(c, 0) for c in order)
    if desired >= have:  # growing never moves a running replica
        assert all(out[c] >= current.get(c, 0) for c in order)
        assert all(out[c] == current.get(c, 0) for c in order[1:])
    else:  # shrinking never adds anywhere, and empties the least preferred first
        assert all(out[c] <= current.get(c, 0) for c in order)
        touched = [i for i, c in enumerate(order) if out[c] < current.get(c, 0)]
        if touched:
            first = min(touched)
            assert all(out[c] == 0 for c in order[first + 1:])


def _acc(name: str, cost: float, tflops: float) -> AcceleratorProfile:
    return AcceleratorProfile(name, hourly_cost=cost, peak_tflops=tflops, memory_bandwidth_gbps=1000,
                              memory_bytes=80e9)


def test_preference_order_follows_the_strategy() -> None:
    accs = {"a": _acc("a", 1.0, 100), "b": _acc("b", 3.0, 900)}
    assert preference_order(["b", "a"], accs, "cheapest") == ["a", "b"]
    assert preference_order(["a", "b"], accs, "fastest") == ["b", "a"]
    assert preference_order(["b", "a"], {"b": accs["b"]}, "pack") == ["b"]
