"""The fair-share grant as a cap on a workload's replicas.

A FairSharePolicy grants each workload of a tenant at most so many GPUs
(tidal/controllers/fairsharepolicy.py); the core never asks for more. When the pools want more
GPUs than granted, every pool keeps its ``minReplicas`` and the rest of the grant is shared in
proportion to what each pool asked above it, one replica at a time to the pool furthest below its
share (so a disaggregated workload keeps its prefill/decode ratio as closely as integers allow, and
a larger grant never gives any pool fewer replicas). Never below ``minReplicas``: a floor the user set is not the fair share's to take, and the FairSharePolicy
accounts for it as demand. Pure.
"""

from __future__ import annotations

import math
from typing import Mapping

from tidal.policies.interface import Reason

REASON_GRANT = "fair-share-cap"


def cap_to_grant(desired: Mapping[str, int], gpus_per_replica: Mapping[str, int], floors: Mapping[str, int],
                 grant_gpus: int | None) -> tuple[dict[str, int], Reason | None]:
    """``desired`` cut to fit ``grant_gpus`` (``None``: no FairSharePolicy governs the workload)."""
    want = dict(desired)
    asked = sum(n * gpus_per_replica[p] for p, n in want.items())
    if grant_gpus is None or asked <= grant_gpus:
        return want, None
    capped = {p: min(floors[p], n) for p, n in want.items()}
    used = sum(n * gpus_per_replica[p] for p, n in capped.items())
    extra = {p: max(n - floors[p], 0) for p, n in want.items()}
    # One replica at a time to the pool furthest below its share of what it asked (ties: the larger
    # ask, then the name), stopping at the first that does not fit: the allocation for a grant is a
    # prefix of the allocation for any larger grant, so more GPUs never give any pool fewer replicas.
    while True:
        open_pools = [p for p in want if capped[p] < want[p]]
        if not open_pools:
            break
        p = min(open_pools, key=lambda q: ((capped[q] - floors[q]) / extra[q], -extra[q], q))
        if used + gpus_per_replica[p] > grant_gpus:
            break
        capped[p] += 1
        used += gpus_per_replica[p]
    split = ", ".join(f"{p} {want[p]} -> {n}" for p, n in capped.items())
    floor_note = "; minReplicas keeps it above the grant" if used > grant_gpus else ""
    return capped, Reason(REASON_GRANT, f"wants {asked} GPU(s), the FairSharePolicy grants {grant_gpus}: "
                                        f"{split}{floor_note}")
