"""Duration and quantity grammar: the parser and the schema pattern accept exactly the same strings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.api.types import DURATION_PATTERN, QUANTITY_PATTERN, parse_duration_s, parse_quantity_bytes


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5s", 1.5)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,size", [("80Gi", 80 * 2**30), ("512Mi", 512 * 2**20), ("1G", 1e9), ("100", 100), ("1.5Ki", 1536)])
def test_quantities(text: str, size: float) -> None:
    assert parse_quantity_bytes(text) == size


@pytest.mark.parametrize("text", ["", "5", "1d", "-1s", "s", "1 s", "five minutes"])
def test_bad_durations_name_the_grammar(text: str) -> None:
    with pytest.raises(ValueError, match="ms, s, m or h"):
        parse_duration_s(text)


@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"])), min_size=1, max_size=4))
def test_duration_parts_add_up(parts) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    scale = {"ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    assert re.fullmatch(DURATION_PATTERN, text)
    assert parse_duration_s(text) == pytest.approx(sum(n * scale[u] for n, u in parts))


@given(st.text(max_size=12))
def test_parser_and_pattern_agree(text: str) -> None:
    for pattern, parse in ((DURATION_PATTERN, parse_duration_s), (QUANTITY_PATTERN, parse_quantity_bytes)):
        if re.fullmatch(pattern, text):
            assert parse(text) >= 0
        else:
            with pytest.raises(ValueError):
                parse(text)
