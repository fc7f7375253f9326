"""Which accelerator classes can serve a ModelDeployment at all: placement never picks a class whose
performance profile cannot meet the SLO.

A class is left out of the preference order when, on the profile built from the CRs (the model's
size, the class's datasheet; tidal/policies/profile.py) with each pool's ``gpusPerReplica``, the
weights leave no KV cache or a lone request of the current mix already misses a target
(tidal/policies/capacity.py ``idle_violation``): more replicas of it would not help. When no allowed
class passes, the order is kept as it is (something must be tried) and every class is reported.
Pure; both shells call it through the core (the simulator shell also to choose what it simulates).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from tidal.api.modeldeployment import ModelDeployment
from tidal.controllers.modeldeployment import pools_of
from tidal.core.state import CoreState
from tidal.policies.capacity import RequestMix, idle_violation, slo_targets
from tidal.policies.interface import POOL_UNIFIED, AcceleratorProfile, Reason
from tidal.policies.planner import DEFAULT_MIX
from tidal.policies.profile import build_profile, model_shape

REASON_CLASS_CANNOT_MEET_SLO = "accelerator-cannot-meet-slo"


def planner_mix(state: CoreState | None) -> RequestMix:
    """The request mix the SLO planner last measured (its state), else its default mix."""
    mix = (state.planner.get("mix") if state is not None else None) or ()
    try:
        return RequestMix(float(mix[0]), float(mix[1]))
    except (IndexError, TypeError, ValueError):
        return DEFAULT_MIX


def feasible_preference(md: ModelDeployment, accelerators: Mapping[str, AcceleratorProfile],
                        preference: Sequence[str], mix: RequestMix) -> tuple[list[str], list[Reason]]:
    """``preference`` without the classes that cannot meet ``spec.slo`` for ``mix``, and why each left."""
    slo = slo_targets(md.spec.slo)
    shape = model_shape(md.spec.model)
    kept, reasons = [], []
    for name in preference:
        why = []
        for pool, spec in pools_of(md).items():
            role = pool if pool in ("unified", "prefill", "decode") else POOL_UNIFIED
            limit = idle_violation(role, build_profile(shape, accelerators[name], spec.gpus_per_replica), mix, slo)
            if limit is not None:
                why.append(f"pool {pool} on {spec.gpus_per_replica} GPU(s): {limit}")
        if why:
            reasons.append(Reason(REASON_CLASS_CANNOT_MEET_SLO,
                                  f"AcceleratorClass {name!r} cannot meet spec.slo for a mean request of "
                                  f"{mix.prompt_tokens:.0f} in / {mix.output_tokens:.0f} out tokens even idle ("
                                  + "; ".join(why) + "): not placed there"))
        else:
            kept.append(name)
    if not kept:
        return list(preference), reasons
    return kept, reasons
