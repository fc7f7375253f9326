"""``tidal validate``: the same verdict as the API server (CRD schema + CEL + name rules) for every
case of the bad-input table, stdin and directories, and other API groups skipped with a note."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.api.test_bad_input import BASE, CASES, Case, build
from tidal.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _validate(*args: str, input: str | None = None) -> tuple[int, str]:  # noqa: A002 - CliRunner's name
    result = CliRunner().invoke(app, ["validate", *args], input=input)
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_every_bad_input_case_is_invalid(c: Case, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(build(c)))
    code, out = _validate(str(path))
    assert code == 1, out
    assert "INVALID" in out and f"- {c.path}:" in out if c.path else "INVALID" in out, out


@pytest.mark.parametrize("base", sorted(BASE))
def test_valid_bases_pass(base: str, tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(BASE[base]()))
    code, out = _validate(str(path))
    assert code == 0 and ": valid" in out, out


def test_stdin() -> None:
    good = yaml.safe_dump(BASE["mdep"]())
    assert _validate("-", input=good)[0] == 0
    bad = good.replace("maxReplicas: 8", "maxReplicas: '8'")
    assert bad != good
    code, out = _validate("-", input=bad)
    assert code == 1 and "<stdin>: ModelDeployment/" in out and "spec.pools.unified.maxReplicas" in out, out


def test_directory_with_foreign_kinds_is_checked_like_a_gitops_repo(tmp_path: Path) -> None:
    (tmp_path / "apps" / "team-a").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "junk.yaml").write_text(": not yaml [")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    other = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "x"}}
    (tmp_path / "apps" / "team-a" / "all.yaml").write_text(
        yaml.safe_dump_all([namespace, BASE["mdep"](), other]))
    (tmp_path / "apps" / "fn.yml").write_text(yaml.safe_dump(BASE["sfn"]()))
    (tmp_path / "README.md").write_text("# not a manifest\n")
    code, out = _validate(str(tmp_path))
    assert code == 0, out
    assert "v1 Namespace/team-a: skipped (not a tidal.dev resource)" in out
    assert "serving.knative.dev/v1 Service/x: skipped" in out
    assert "2 tidal resource(s) checked, 0 invalid" in out

    # A tidal-group object of an unknown kind, or one without apiVersion, is still judged.
    (tmp_path / "apps" / "typo.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "tidal.dev/v1alpha1", "kind": "ModelDeploymnet", "metadata": {"name": "x"}}))
    code, out = _validate(str(tmp_path))
    assert code == 1 and "unknown kind 'ModelDeploymnet'" in out, out


def test_every_shipped_example_is_valid() -> None:
    code, out = _validate(str(EXAMPLES))
    assert code == 0, out
