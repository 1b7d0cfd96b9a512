"""`fervideo annotate`: a copy of a video with each face's box, track and expression drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fervideo.cli import command
from fervideo.cli.analyze import DEFAULT_DETECTOR, DEFAULTS, Detector
from fervideo.config import AnalyzeConfig
from fervideo.quiet import native_stderr_silenced, quiet_native_logs


@command()
def annotate(
    video: Annotated[Path, typer.Argument(help="The video to annotate.", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="MP4 file to write.", show_default="<VIDEO name>-annotated.mp4 in this folder"
        ),
    ] = None,
    tables: Annotated[
        Path | None,
        typer.Option(
            help="Output folder of `fervideo analyze` holding the video's tables; without it the "
            "video is analysed now (with the options below)."
        ),
    ] = None,
    fps: Annotated[
        float, typer.Option(min=0.001, help="Frames analysed per second of video.")
    ] = DEFAULTS.fps,
    every_frame: Annotated[bool, typer.Option(help="Analyse every frame (ignores --fps).")] = False,
    model: Annotated[
        str, typer.Option(help="Bundled model name (see `fervideo models`), 'default', or a .keras file.")
    ] = str(DEFAULTS.model),
    detector: Annotated[Detector, typer.Option(help="Face detector.")] = DEFAULT_DETECTOR,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Draw each face's box, track id and top expression (with its probability) on every frame
    of VIDEO, at its frame rate, keeping its audio.

    Faces found on a sampled frame stay drawn until the next sampled frame.
    """
    quiet_native_logs()
    from tqdm import tqdm

    from fervideo.annotation import annotate as annotate_video

    out = out or Path(f"{video.stem}-annotated.mp4")
    analyzer = None
    if tables is None:
        from fervideo.pipeline import Analyzer

        config = AnalyzeConfig(model=model, detector=detector.value, fps=None if every_frame else fps)
        with native_stderr_silenced():  # TensorFlow's start-up chatter ignores every log level
            analyzer = Analyzer(config)
    bars: dict[str, tqdm] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            for bar in bars.values():
                bar.close()
            bars[stage] = tqdm(
                total=total, unit="frame", desc=stage, disable=quiet, leave=False, dynamic_ncols=True
            )
        bar = bars[stage]
        bar.total = max(total, done)
        bar.update(done - bar.n)

    try:
        annotate_video(video, out, tables, analyzer=analyzer, on_progress=on_progress)
    finally:
        for bar in bars.values():
            bar.close()
    if not quiet:
        typer.echo(f"annotated video: {out}")
