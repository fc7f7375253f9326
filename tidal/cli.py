"""The ``tidal`` command line: thin wrappers that parse flags and call into the package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False, help="SLO-driven autoscaling for LLM serving on Kubernetes.")
console = Console()

DEFAULT_CRD_DIR = Path("crds")
DEFAULT_REFERENCE = Path("docs/reference.md")


@app.command()
def crds(
    output_dir: Path = typer.Option(DEFAULT_CRD_DIR, "--output-dir", "-o", help="Where to write the CRD YAML files."),
    reference: Optional[Path] = typer.Option(DEFAULT_REFERENCE, help="Where to write the resource reference (markdown)."),
    check: bool = typer.Option(False, "--check", help="Do not write; exit 1 naming each stale file."),
) -> None:
    """Generate CRDs (and the resource reference) from the API models."""
    from tidal.api.crdgen import stale_crds, write_crds
    from tidal.api.reference import render_reference

    if check:
        problems = stale_crds(output_dir)
        if reference is not None and (not reference.exists() or reference.read_text() != render_reference()):
            problems.append(f"{reference}: differs from the models")
        for problem in problems:
            console.print(f"[red]stale[/red] {problem}")
        if problems:
            console.print("Run `make crds` (or `tidal crds`) and commit the result.")
            raise typer.Exit(1)
        console.print(f"[green]up to date[/green]: {output_dir}" + (f", {reference}" if reference else ""))
        return
    for path in write_crds(output_dir):
        console.print(f"wrote {path}")
    if reference is not None:
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_text(render_reference())
        console.print(f"wrote {reference}")


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="YAML files with tidal resources (multi-document allowed).")) -> None:
    """Validate tidal resources offline, with the same rules the API server enforces."""
    from tidal.api.validation import InvalidResource, parse_resource

    table = Table("file", "kind", "name", "result")
    failed = 0
    for path in files:
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except (OSError, yaml.YAMLError) as exc:
            table.add_row(str(path), "-", "-", f"[red]{exc}[/red]")
            failed += 1
            continue
        for doc in documents:
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            name = meta.get("name", "") if isinstance(meta, dict) else ""
            kind = doc.get("kind", "?") if isinstance(doc, dict) else "?"
            try:
                parse_resource(doc)
                table.add_row(str(path), str(kind), str(name), "[green]valid[/green]")
            except InvalidResource as exc:
                failed += 1
                table.add_row(str(path), str(kind), str(name), "[red]" + "\n".join(map(str, exc.errors)) + "[/red]")
    console.print(table)
    if failed:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console-script shim
    app(sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
