"""Pareto fronts and the below-at-every-budget check of the keep-alive sweep."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidal.bench.pareto import below_at_budgets, front


def _p(name: str, idle: float, cold: float) -> dict:
    return {"name": name, "idle_gb_s": idle, "cold_start_ratio": cold}


def test_front_drops_dominated_points() -> None:
    pts = [_p("a", 1, 0.05), _p("b", 2, 0.06), _p("c", 3, 0.01), _p("d", 0.5, 0.2)]
    assert [p["name"] for p in front(pts)] == ["d", "a", "c"]


def test_below_needs_fewer_cold_starts_within_each_budget() -> None:
    ref = [_p("h1", 1, 0.05), _p("h2", 3, 0.01)]
    rows = below_at_budgets([_p("t1", 0.8, 0.04), _p("t2", 2.5, 0.012)], ref)
    assert [r["below"] for r in rows] == [True, False]
    assert rows[1]["candidate"] == "t2"
    assert below_at_budgets([_p("t", 5, 0.0)], ref)[0]["candidate"] is None


points = st.lists(st.tuples(st.floats(0, 1e6), st.floats(0, 1)), min_size=1, max_size=20)


@given(points)
def test_every_point_is_dominated_by_or_on_the_front(raw: list[tuple[float, float]]) -> None:
    pts = [_p(str(i), a, b) for i, (a, b) in enumerate(raw)]
    f = front(pts)
    assert all(x["cold_start_ratio"] > y["cold_start_ratio"] for x, y in zip(f, f[1:]))
    for p in pts:
        assert any(q["idle_gb_s"] <= p["idle_gb_s"] and q["cold_start_ratio"] <= p["cold_start_ratio"] for q in f)
