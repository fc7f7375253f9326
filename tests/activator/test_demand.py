"""The demand annotation: encoding, tolerance of foreign values, merging replicas."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tidal.activator.demand import (
    ANNOTATION_PREFIX,
    DemandReport,
    annotation_key,
    held_now,
    new_arrivals,
)


@given(st.lists(st.floats(0, 2e9), max_size=64), st.integers(0, 10_000), st.floats(0, 2e9))
def test_report_round_trips(arrivals: list[float], held: int, sent: float) -> None:
    report = DemandReport(tuple(sorted(arrivals)), held, sent)
    back = DemandReport.from_json(report.to_json())
    assert back is not None and back.held == held
    assert back.arrivals_s == tuple(sorted(round(t, 6) for t in arrivals))


def test_garbage_is_no_report() -> None:
    for text in ("", "{", "[]", '{"arrivals": "x"}', '{"arrivals": [1], "held": -1}',
                 '{"arrivals": [NaN]}', "null"):
        assert DemandReport.from_json(text) is None


def test_replicas_merge_and_the_cursor_skips_used_arrivals() -> None:
    annotations = {
        annotation_key("activator-abc"): DemandReport((10.0, 12.0), 2, 12.1).to_json(),
        annotation_key("activator-def"): DemandReport((11.0,), 1, 11.5).to_json(),
        "kopf.zalando.org/last-handled-configuration": "{}",
        ANNOTATION_PREFIX + "broken": "not json",
    }
    assert new_arrivals(annotations, None) == (10.0, 11.0, 12.0)
    assert new_arrivals(annotations, 10.0) == (11.0, 12.0)
    assert new_arrivals(annotations, 12.0) == ()
    assert held_now(annotations) == 3
    assert held_now(annotations, newer_than_s=12.0) == 2
    assert new_arrivals(None, None) == ()


def test_annotation_key_is_a_valid_key_for_long_pod_names() -> None:
    key = annotation_key("x" * 80 + "-7d9f8b6c5d-abcde")
    name = key[len(ANNOTATION_PREFIX):]
    assert len(name) <= 63 and name.endswith("-7d9f8b6c5d-abcde")
