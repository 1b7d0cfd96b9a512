"""`fervideo annotate`: a copy of a video with each face's box, track and expression drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fervideo.cli import command
from fervideo.cli.analyze import (
    DEFAULT_DETECTOR,
    DEFAULT_RUNTIME,
    DEFAULTS,
    DetectorOption,
    EveryFrameOption,
    FpsOption,
    MinFaceOption,
    MinScoreOption,
    ModelOption,
    QuietOption,
    RuntimeOption,
)
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
    fps: FpsOption = DEFAULTS.fps,
    every_frame: EveryFrameOption = False,
    model: ModelOption = str(DEFAULTS.model),
    detector: DetectorOption = DEFAULT_DETECTOR,
    runtime: RuntimeOption = DEFAULT_RUNTIME,
    min_face: MinFaceOption = DEFAULTS.min_face,
    min_score: MinScoreOption = DEFAULTS.min_score,
    quiet: QuietOption = False,
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

        config = AnalyzeConfig(
            model=model,
            detector=detector.value,
            fps=None if every_frame else fps,
            runtime=runtime.value,
            min_face=min_face,
            min_score=min_score,
        )
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
