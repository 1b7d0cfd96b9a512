"""`fervideo models`: the models `--model` can name."""

from __future__ import annotations

import typer

from fervideo.cli import command


@command()
def models() -> None:
    """List the models --model can name: yours (trained with `fervideo train`), installed
    model packages, and the bundled ones, with architecture, size and recorded accuracy."""
    from fervideo.catalog import list_models, models_dir, user_models_dir
    from fervideo.config import DEFAULT_MODEL

    found = list_models()
    if not found:
        typer.echo(f"no models found (looked in {user_models_dir()} and {models_dir()})")
        raise typer.Exit(code=1)
    names = [info.name + (" (default)" if info.name == DEFAULT_MODEL else "") for info in found]
    width = max(map(len, names)) + 2
    header = f"{'architecture':<16}{'parameters':>12}{'size MB':>9}{'accuracy':>10}  {'split':<12}source"
    typer.echo(f"{'name':<{width}}{header}")
    for name, info in zip(names, found, strict=True):
        meta, metrics = info.metadata, info.metadata.get("metrics") or {}
        accuracy = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "-"
        size = 0.0 if info.linked_members else info.path.stat().st_size / 1e6  # a linked one has no weights
        typer.echo(
            f"{name:<{width}}{meta.get('architecture', '?'):<16}{meta.get('parameters', 0):>12,}"
            f"{size:>9.1f}{accuracy:>10}  {metrics.get('split', '-'):<12}{info.source}"
        )
