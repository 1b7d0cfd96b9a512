"""The `fervideo` command: a thin shell over the Python API.

Each command lives in its own module here and registers itself on `app` through `command`,
which also turns a `FervideoError` into one `error:` line and exit code 1, and a bad setting
(`fervideo.errors.SettingError`) into one line and exit code 2, as for any other bad option.
The library's warnings (a model run by TensorFlow because ONNX Runtime cannot, a video left out
of a report) reach the user as one `warning:` line each.
Heavy modules (OpenCV, TensorFlow, Arrow) are imported inside the command bodies, so that
`fervideo --help` is instant.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from fervideo import __version__
from fervideo.errors import FervideoError, SettingError

app = typer.Typer(
    help="Facial expressions in videos: detect faces, classify expressions, write Parquet tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

Command = TypeVar("Command", bound=Callable[..., None])


def command(**options: object) -> Callable[[Command], Command]:
    """`app.command(**options)`, with the one error handler every command shares."""

    def register(function: Command) -> Command:
        @functools.wraps(function)
        def run(*args: object, **kwargs: object) -> None:
            try:
                function(*args, **kwargs)
            except SettingError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(code=2) from None
            except FervideoError as err:
                typer.echo(f"error: {err}", err=True)
                raise typer.Exit(code=1) from None

        app.command(**options)(run)
        return function

    return register


class _WarningLines(logging.Handler):
    """Writes each warning of the `fervideo` loggers as one `warning: ...` line on stderr, above
    any progress bar. Left out: `fervideo.pipeline`'s, which `analyze` prints with each video's
    result, and `fervideo.training`'s, which `train` shows through its own log lines."""

    shown_elsewhere = ("fervideo.pipeline", "fervideo.training")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(self.shown_elsewhere):
            return
        from tqdm import tqdm

        tqdm.write(f"warning: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    library = logging.getLogger("fervideo")
    if not any(isinstance(handler, _WarningLines) for handler in library.handlers):
        library.addHandler(_WarningLines())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fervideo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Facial expressions in videos: detect faces, classify expressions, write Parquet tables."""
    _show_warnings()


def main() -> None:
    """Console-script entry point."""
    app()


# The commands register themselves on `app` when imported.
from fervideo.cli import analyze, annotate, models, report, training  # noqa: E402, F401
