"""`fervideo report`: the HTML report of an output folder, and its audience tables."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from fervideo.cli import command
from fervideo.config import GROUPINGS, ReportConfig

DEFAULTS = ReportConfig()

#: How videos are grouped into audiences, as in `fervideo.report.audience`.
Grouping = Enum("Grouping", {rule: rule for rule in GROUPINGS}, type=str)
DEFAULT_GROUPING = Grouping(DEFAULTS.groups)


@command()
def report(
    out_dir: Annotated[
        Path, typer.Argument(help="Output folder of `fervideo analyze`.", show_default=False, file_okay=False)
    ],
    html: Annotated[
        Path | None,
        typer.Option(
            help="HTML file to write; its charts go to <name>_files/ beside it.",
            show_default="OUT_DIR/report.html",
        ),
    ] = None,
    groups: Annotated[
        Grouping,
        typer.Option(
            help="Audience view, one group per folder of recordings: auto (when the videos form a folder "
            "of folders, each with 2+ videos), folders (always), none."
        ),
    ] = DEFAULT_GROUPING,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Write a self-contained HTML report (works offline) of every video in OUT_DIR.

    It shows, per video, the share of faces showing each expression second by second, faces on
    screen, key moments with the faces, the longest tracks, the opening and the ending; an index
    comparing the videos; and, for folders of recordings of viewers, the audience view, also
    written as tables to OUT_DIR/audience/<group>.parquet.
    """
    from tqdm import tqdm

    from fervideo.quiet import quiet_native_logs
    from fervideo.report import write_report

    quiet_native_logs()
    config = ReportConfig(groups=groups.value)
    bars: list[tqdm] = []  # made at the first video, so that an error comes alone

    def on_progress(done: int, total: int) -> None:
        if not bars:
            bars.append(
                tqdm(total=total, unit="video", desc="report", disable=quiet, leave=False, dynamic_ncols=True)
            )
        bars[0].update(done - bars[0].n)

    try:
        page = write_report(out_dir, html, config, on_progress)
    finally:
        for bar in bars:
            bar.close()
    if not quiet:
        typer.echo(f"report: {page} (charts in {page.parent / (page.stem + '_files')}/)")
