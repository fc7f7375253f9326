"""Placement over accelerator classes: which classes a workload prefers, and how replicas split.

Pure. The decision core (tidal/core/placement.py) orders classes from :func:`preference_order`;
:func:`place` is the count-only split the operator's reconcile sizes a new workload's children with
(the core's ``place_pool`` reduces to it when every class counts the same).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from tidal.policies.interface import AcceleratorProfile

STRATEGY_FASTEST = "fastest"


def preference_order(allowed: Sequence[str], accelerators: Mapping[str, AcceleratorProfile],
                     strategy: str) -> list[str]:
    """Allowed classes that exist, in the order their datasheets alone give, most preferred first.

    ``cheapest`` and ``pack``: ascending ``hourlyCost``; ``fastest``: descending ``peakTflops``. Ties
    keep the spec's order. The core (tidal/core/placement.py ``class_preference``) drops the classes
    that cannot meet the SLO and re-ranks ``cheapest``/``pack`` by cost per goodput, with this order
    breaking ties; ``pack`` places like ``cheapest`` (tidal sets no node affinity; packing replicas
    onto nodes is the scheduler's, docs/placement.md).
    """
    present = [(i, n) for i, n in enumerate(allowed) if n in accelerators]
    if strategy == STRATEGY_FASTEST:
        present.sort(key=lambda item: (-accelerators[item[1]].peak_tflops, item[0]))
    else:
        present.sort(key=lambda item: (accelerators[item[1]].hourly_cost, item[0]))
    return [n for _, n in present]


def place(desired: int, current: Mapping[str, int], preference: Sequence[str]) -> dict[str, int]:
    """Split ``desired`` replicas over the classes in ``preference``, moving as few as possible.

    Replicas stay where they run (a move is a cold start); new replicas go to the most preferred
    class, and removals take from the least preferred first. Only classes in ``preference`` appear
    in the result: a class that was deleted cannot be rendered, so its Deployment is left as is.
    """
    if desired < 0:
        raise ValueError(f"desired replicas must be >= 0, got {desired}")
    if not preference:
        return {}
    out = {acc: max(0, int(current.get(acc, 0))) for acc in preference}
    have = sum(out.values())
    if desired >= have:
        out[preference[0]] += desired - have
    else:
        surplus = have - desired
        for acc in reversed(preference):
            take = min(surplus, out[acc])
            out[acc] -= take
            surplus -= take
            if surplus == 0:
                break
    return out
