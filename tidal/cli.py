"""The ``tidal`` command line: thin wrappers that parse flags and call into the package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
import yaml

app = typer.Typer(no_args_is_help=True, add_completion=False, help="SLO-driven autoscaling for LLM serving on Kubernetes.")

DEFAULT_CRD_DIR = Path("crds")
DEFAULT_REFERENCE = Path("docs/reference.md")
DEFAULT_CHART_CRD_DIR = Path("charts/tidal/crds")


@app.command()
def crds(
    output_dir: Path = typer.Option(DEFAULT_CRD_DIR, "--output-dir", "-o", help="Where to write the CRD YAML files."),
    reference: Optional[Path] = typer.Option(DEFAULT_REFERENCE, help="Where to write the resource reference (markdown)."),
    chart_dir: Optional[Path] = typer.Option(
        None, help="Also keep a copy of the CRDs here (the Helm chart's crds/); defaults to "
        f"{DEFAULT_CHART_CRD_DIR} when that chart exists. Pass '' to skip.",
    ),
    check: bool = typer.Option(False, "--check", help="Do not write; exit 1 naming each stale file."),
) -> None:
    """Generate CRDs (and the resource reference) from the API models."""
    from tidal.api.crdgen import stale_crds, write_crds
    from tidal.api.reference import render_reference

    if chart_dir is None and DEFAULT_CHART_CRD_DIR.parent.is_dir() and output_dir == DEFAULT_CRD_DIR:
        chart_dir = DEFAULT_CHART_CRD_DIR
    crd_dirs = [output_dir] + ([chart_dir] if chart_dir and str(chart_dir) not in ("", ".") else [])
    if check:
        problems = [p for d in crd_dirs for p in stale_crds(d)]
        if reference is not None and (not reference.exists() or reference.read_text() != render_reference()):
            problems.append(f"{reference}: differs from the models")
        for problem in problems:
            typer.echo(f"stale: {problem}")
        if problems:
            typer.echo("Run `make crds` (or `tidal crds`) and commit the result.")
            raise typer.Exit(1)
        typer.echo(f"up to date: {output_dir}" + (f", {reference}" if reference else ""))
        return
    for directory in crd_dirs:
        for path in write_crds(directory):
            typer.echo(f"wrote {path}")
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(render_reference())
        typer.echo(f"wrote {reference}")


STDIN = "-"
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
"""Files a directory argument of ``tidal validate`` contributes (kubectl apply -f DIR reads the same)."""


def _manifest_files(argument: Path) -> list[Path]:
    """A file as given; a directory as every manifest file below it, sorted (hidden ones skipped)."""
    if not argument.is_dir():
        return [argument]
    return sorted(p for p in argument.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(argument).parts))


def _documents(text: str) -> list[object]:
    """The YAML (or JSON) documents in ``text``, with ``kind: List`` objects unpacked as kubectl does."""
    out: list[object] = []
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(doc["items"])
        elif doc is not None:
            out.append(doc)
    return out


@app.command()
def validate(files: list[Path] = typer.Argument(
        ..., help="YAML/JSON files with tidal resources (multi-document allowed), directories (every "
        ".yaml/.yml/.json file below them) or - for standard input.")) -> None:
    """Validate tidal resources offline, as strictly as the API server (CRD schema, CEL rules, names).

    Objects of other API groups (Namespaces, Secrets, other operators' kinds) are skipped with a note,
    so a whole GitOps directory can be checked."""
    from tidal.api.validation import InvalidResource, is_tidal_object, parse_resource

    failed = checked = 0
    sources: list[tuple[str, Path | None]] = []
    for argument in files:
        if str(argument) == STDIN:
            sources.append(("<stdin>", None))
        elif argument.is_dir():
            found = _manifest_files(argument)
            if not found:
                typer.echo(f"{argument}: no {'/'.join(MANIFEST_SUFFIXES)} files")
            sources.extend((str(path), path) for path in found)
        else:
            sources.append((str(argument), argument))
    for label, path in sources:
        try:
            documents = _documents(sys.stdin.read() if path is None else path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            typer.echo(f"{label}: cannot read: {exc}")
            failed += 1
            continue
        for doc in documents:
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            name = meta.get("name", "") if isinstance(meta, dict) else ""
            kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
            if isinstance(doc, dict) and isinstance(doc.get("apiVersion"), str) and not is_tidal_object(doc):
                typer.echo(f"{label}: {doc['apiVersion']} {kind}/{name}: skipped (not a tidal.dev resource)")
                continue
            checked += 1
            try:
                parse_resource(doc, strict=True)
                typer.echo(f"{label}: {kind}/{name}: valid")
            except InvalidResource as exc:
                failed += 1
                typer.echo(f"{label}: {kind}/{name}: INVALID")
                for error in exc.errors:
                    typer.echo(f"  - {error}")
    typer.echo(f"{checked} tidal resource(s) checked, {failed} invalid")
    if failed:
        raise typer.Exit(1)


from tidal.operator.commands import explain, run  # noqa: E402  (registered after the core commands)
from tidal.sim.command import simulate  # noqa: E402

app.command()(run)
app.command()(explain)

app.command()(simulate)
from tidal.sim.functions_command import simulate_functions  # noqa: E402

app.command("simulate-functions")(simulate_functions)
from tidal.bench.command import bench  # noqa: E402

app.command()(bench)
from tidal.activator.command import activator  # noqa: E402

app.command()(activator)


def main() -> None:  # pragma: no cover - console-script shim
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
