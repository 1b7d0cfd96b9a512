"""`fervideo models`: the models `--model` can name."""

from __future__ import annotations

import typer

from fervideo.cli import command


@command()
def models() -> None:
    """List the bundled models with their architecture, size and recorded accuracy."""
    from fervideo.catalog import list_models
    from fervideo.config import DEFAULT_MODEL

    found = list_models()
    if not found:
        typer.echo("no bundled models found (looked in the package and the repository's models/)")
        raise typer.Exit(code=1)
    names = [info.name + (" (default)" if info.name == DEFAULT_MODEL else "") for info in found]
    width = max(map(len, names)) + 2
    header = f"{'architecture':<16}{'parameters':>12}{'size MB':>9}{'accuracy':>10}  split"
    typer.echo(f"{'name':<{width}}{header}")
    for name, info in zip(names, found, strict=True):
        meta, metrics = info.metadata, info.metadata.get("metrics") or {}
        accuracy = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "-"
        typer.echo(
            f"{name:<{width}}{meta.get('architecture', '?'):<16}{meta.get('parameters', 0):>12,}"
            f"{info.path.stat().st_size / 1e6:>9.1f}{accuracy:>10}  {metrics.get('split', '-')}"
        )
