"""The serverless cold-start model reproduces the bounds the Huawei study publishes."""

from __future__ import annotations

import numpy as np
import pytest

from tidal.sim.serverless.coldstart import (COMPONENTS, HUAWEI_R1, HUAWEI_R2, fixed_cold_start,
                                            parse_cold_start)


def _samples(model, n=20_000):
    rng = np.random.default_rng(0)
    return np.array([model.sample(rng) for _ in range(n)])


def test_region1_up_to_about_7s_dominated_by_dependencies_and_scheduling() -> None:
    parts = _samples(HUAWEI_R1)
    total = parts.sum(axis=1)
    assert 5.0 <= np.quantile(total, 0.99) <= 9.0
    share = parts.mean(axis=0) / total.mean()
    dep, sched = COMPONENTS.index("dependency_deployment_s"), COMPONENTS.index("scheduling_s")
    assert share[dep] + share[sched] > 0.8


def test_region2_up_to_about_3s_dominated_by_pod_allocation() -> None:
    parts = _samples(HUAWEI_R2)
    total = parts.sum(axis=1)
    assert 2.0 <= np.quantile(total, 0.99) <= 3.5
    share = parts.mean(axis=0) / total.mean()
    assert share.argmax() == COMPONENTS.index("pod_allocation_s") and share.max() > 0.5


def test_components_are_non_negative_and_seeded() -> None:
    a, b = _samples(HUAWEI_R1, 500), _samples(HUAWEI_R1, 500)
    assert (a >= 0).all() and np.array_equal(a, b)


def test_parse() -> None:
    assert parse_cold_start("huawei-r2") is HUAWEI_R2
    assert sum(parse_cold_start("fixed:1.5").sample(np.random.default_rng(0))) == 1.5
    with pytest.raises(ValueError, match="huawei-r1"):
        parse_cold_start("lambda")
    with pytest.raises(ValueError):
        fixed_cold_start(-1.0)
