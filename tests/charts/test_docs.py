"""The installation docs describe what the chart really has: every values key, every metric of the
contract the dashboard uses, every `tidal run` flag the chart passes."""

from __future__ import annotations

import re

import yaml

from tests.charts.chart_support import CHART_DIR, REPO_ROOT, one, render
from tests.charts.test_dashboard_and_peering import CONTRACT_METRICS

CONFIGURATION = (REPO_ROOT / "docs" / "configuration.md").read_text()


def leaf_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in {"resources", "labels"}:
            keys += leaf_keys(value, path + ".")
        else:
            keys.append(path)
    return keys


def test_every_value_is_documented():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    missing = []
    for key in leaf_keys(values):
        head, _, last = key.rpartition(".")
        # Rows may group siblings: `probes.startup.*` or `serviceAccount.create` / `.name`.
        if f"`{key}`" in CONFIGURATION or f"`{head}.*`" in CONFIGURATION or f"`.{last}`" in CONFIGURATION:
            continue
        missing.append(key)
    assert not missing, f"docs/configuration.md does not mention: {missing}"


def test_every_contract_metric_is_documented():
    documented = set(re.findall(r"^\| `(tidal_[a-z_]+)` \|", CONFIGURATION, flags=re.M))
    assert documented == CONTRACT_METRICS


def test_every_flag_the_chart_passes_is_documented():
    objects = render(CHART_DIR / "ci" / "namespaced-values.yaml", sets=("peering.enabled=false",))
    flags = {a.split("=")[0] for a in one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
             if a.startswith("--")}
    flags |= {"--peering"}
    for flag in flags:
        assert f"`{flag}" in CONFIGURATION, f"{flag} is not in docs/configuration.md"


def test_reliability_fault_table_names_tests_that_exist():
    """docs/reliability.md: every row names the test that checks it; each must exist."""
    text = (REPO_ROOT / "docs" / "reliability.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "tests/" in line]
    assert len(rows) >= 10
    for ref in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", text):
        path, test = ref
        assert (REPO_ROOT / path).is_file(), path
        if test:
            assert f"def {test}(" in (REPO_ROOT / path).read_text(), f"{path}::{test}"
