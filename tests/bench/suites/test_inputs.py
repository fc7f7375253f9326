"""The suites' inputs are checked before anything runs, and a missing one is named with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.bench.suites import SUITE_INPUTS, SUITE_NAMES, SUITES, SuiteInputError, check_inputs


def test_every_suite_has_a_runner_and_names_its_inputs() -> None:
    assert set(SUITE_NAMES) == {"policies", *SUITES}
    assert set(SUITE_INPUTS) <= set(SUITES)


def test_missing_inputs_are_named_with_their_paths(tmp_path: Path) -> None:
    with pytest.raises(SuiteInputError) as caught:
        check_inputs(["kv-ttl", "fair-share"], tmp_path)
    text = str(caught.value)
    assert str(tmp_path / "mooncake-synthetic") in text and "servegen/m-mid" in text
    assert "laid out like ../shared/traces" in text


def test_present_inputs_pass(tmp_path: Path) -> None:
    for path in SUITE_INPUTS["placement"]:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    check_inputs(["placement", "policies"], tmp_path)


def test_suites_without_inputs_need_no_folder(tmp_path: Path) -> None:
    check_inputs(["policies"], tmp_path / "absent")
