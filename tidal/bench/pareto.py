"""Pareto fronts of (idle memory, cold-start fraction) points and whether one front lies below another.

Used by bench/keepalive_pareto.py; pure. A point is a mapping with at least ``idle_gb_s`` and
``cold_start_ratio`` (lower is better for both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Point = Mapping[str, Any]


def front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both idle GB-s and cold-start fraction, by idle memory."""
    ordered = sorted(points, key=lambda p: (p["idle_gb_s"], p["cold_start_ratio"]))
    out: list[Point] = []
    for p in ordered:
        if not out or p["cold_start_ratio"] < out[-1]["cold_start_ratio"]:
            out.append(p)
    return out


def below_at_budgets(candidate: Sequence[Point], reference_front: Sequence[Point]) -> list[dict[str, Any]]:
    """For each point of ``reference_front``: the candidate with the fewest cold starts within that
    point's idle memory, and whether it has strictly fewer cold starts than the point."""
    rows = []
    for ref in reference_front:
        within = [c for c in candidate if c["idle_gb_s"] <= ref["idle_gb_s"]]
        best = min(within, key=lambda c: c["cold_start_ratio"]) if within else None
        rows.append({"reference": ref.get("name"), "budget_idle_gb_s": ref["idle_gb_s"],
                     "reference_cold_start_ratio": ref["cold_start_ratio"],
                     "candidate": best.get("name") if best else None,
                     "candidate_cold_start_ratio": best["cold_start_ratio"] if best else None,
                     "below": best is not None and best["cold_start_ratio"] < ref["cold_start_ratio"]})
    return rows
