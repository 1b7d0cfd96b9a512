"""`fervideo analyze`: the tables of every input, with a line per input and progress bars."""

from __future__ import annotations

import sys
from contextlib import closing
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fervideo.cli import command
from fervideo.config import DEFAULT_OUT, ENGINES, RUNTIMES, TTA_MODES, AnalyzeConfig, RayConfig
from fervideo.errors import SettingError
from fervideo.quiet import native_stderr_silenced, quiet_native_logs

if TYPE_CHECKING:
    from fervideo.pipeline import VideoResult

DEFAULTS = AnalyzeConfig()
RAY_PANEL = "Ray engine (with --engine ray)"


class Detector(str, Enum):
    """Face detector back ends (the names of `fervideo.detect.DETECTORS`)."""

    yunet = "yunet"
    retinaface = "retinaface"


DEFAULT_DETECTOR = Detector(DEFAULTS.detector)

#: Test-time augmentation modes, as in `fervideo.tta`.
TTA = Enum("TTA", {mode: mode for mode in TTA_MODES}, type=str)
DEFAULT_TTA = TTA(DEFAULTS.tta)

#: What runs the model, as in `fervideo.classify.ExpressionClassifier`.
Runtime = Enum("Runtime", {name: name for name in RUNTIMES}, type=str)
DEFAULT_RUNTIME = Runtime(DEFAULTS.runtime)

#: Where the videos are analysed, as in `fervideo.pipeline.analyze_many`.
Engine = Enum("Engine", {name: name for name in ENGINES}, type=str)

# Options `fervideo annotate` shares, for the videos it analyses itself.
FpsOption = Annotated[float, typer.Option(min=0.001, help="Frames analysed per second of video.")]
EveryFrameOption = Annotated[bool, typer.Option(help="Analyse every frame (ignores --fps).")]
ModelOption = Annotated[
    str, typer.Option(help="Bundled model name (see `fervideo models`), 'default', or a .keras file.")
]
DetectorOption = Annotated[Detector, typer.Option(help="Face detector.")]
RuntimeOption = Annotated[
    Runtime,
    typer.Option(
        help="What runs the model: onnx (ONNX Runtime on the CPU; each model is converted once, "
        "in seconds, and cached), keras (TensorFlow, on a GPU when it sees one), or auto "
        "(keras when an NVIDIA GPU is visible, else onnx)."
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")]
MinFaceOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Smallest face to find, in pixels of the video: frames are shrunk for detection "
        "until such a face is the detector's smallest reliable one; smaller faces may be missed.",
    ),
]
MinScoreOption = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="Detector confidence (0-1) below which a face is dropped; lower finds more faces, "
        "and more things that are not faces.",
    ),
]


@command()
def analyze(
    inputs: Annotated[
        list[Path],
        # readable=False: an unreadable input is reported by the pipeline, and never stops the others
        typer.Argument(help="Video or image files, or folders of them.", show_default=False, readable=False),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder of the Parquet tables.")
    ] = DEFAULT_OUT,
    fps: FpsOption = DEFAULTS.fps,
    every_frame: EveryFrameOption = False,
    model: ModelOption = str(DEFAULTS.model),
    detector: DetectorOption = DEFAULT_DETECTOR,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Face crops per classifier call.")
    ] = DEFAULTS.batch_size,
    tta: Annotated[
        TTA,
        typer.Option(help="Test-time augmentation: flip (2x classifier time) or crops (10x)."),
    ] = DEFAULT_TTA,
    runtime: RuntimeOption = DEFAULT_RUNTIME,
    overwrite: Annotated[bool, typer.Option(help="Redo videos already finished in --out.")] = False,
    retinaface_weights: Annotated[
        Path | None,
        typer.Option(
            help="retinaface.onnx for --detector retinaface "
            "(default: .deepface/weights/retinaface.onnx under $DEEPFACE_HOME, else under ~)."
        ),
    ] = None,
    min_face: MinFaceOption = DEFAULTS.min_face,
    min_score: MinScoreOption = DEFAULTS.min_score,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes analysing several inputs at once, one video each (default: one per core).",
            show_default=False,
        ),
    ] = DEFAULTS.workers,
    quiet: QuietOption = False,
    engine: Annotated[
        Engine, typer.Option(help="Where to analyse: this process, or the actors of a Ray cluster.")
    ] = Engine.local,
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address, HEAD:6379 (default: $RAY_ADDRESS, a cluster `ray start` began "
            "on this machine, else a local Ray instance for this run).",
            rich_help_panel=RAY_PANEL,
        ),
    ] = None,
    retries: Annotated[
        int,
        typer.Option(
            min=0, help="Times a video is retried after its worker died.", rich_help_panel=RAY_PANEL
        ),
    ] = DEFAULTS.ray.retries,
    classify_actors: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Classifier actors that take the face crops of every video actor (default: one per "
            "--classify-gpus of the cluster's GPUs, none without GPUs; 0: video actors classify).",
            show_default=False,
            rich_help_panel=RAY_PANEL,
        ),
    ] = DEFAULTS.ray.classify_actors,
    classify_gpus: Annotated[
        float,
        typer.Option(
            min=0,
            help="GPUs per classifier actor: a fraction shares a GPU, 0 runs them on CPUs.",
            rich_help_panel=RAY_PANEL,
        ),
    ] = DEFAULTS.ray.classify_gpus,
) -> None:
    """Find faces and classify their expressions; write the tables under --out.

    Tables: faces (per face per frame), timeline (per second), tracks (per person), summary.

    Videos finished by an earlier run with the same settings are skipped; one finished with
    other settings (model, detector, fps, TTA) fails until you pass --overwrite or choose
    another --out. Exits with 1 if any input failed.

    With --engine ray, whole videos go to the actors of a Ray cluster; the inputs and --out
    must then be on a file system every node sees, at the same paths.
    """
    if address is not None and engine != Engine.ray:
        raise SettingError("--address is for --engine ray.")
    config = AnalyzeConfig(
        model=model,
        detector=detector.value,
        fps=None if every_frame else fps,
        batch_size=batch_size,
        tta=tta.value,
        runtime=runtime.value,
        min_face=min_face,
        min_score=min_score,
        retinaface_weights=retinaface_weights,
        workers=workers,
        ray=RayConfig(retries=retries, classify_actors=classify_actors, classify_gpus=classify_gpus),
    )
    quiet_native_logs()
    from tqdm import tqdm

    from fervideo import pipeline
    from fervideo.classify import will_convert

    paths = pipeline.expand_inputs(inputs)
    overall = tqdm(total=len(paths), unit="video", desc="overall", disable=quiet, dynamic_ncols=True)
    bars: dict[Path, tqdm] = {}
    # a bar per video only in a terminal: in a log file, several workers' bars interleave with
    # the result lines (tqdm moves the cursor up to redraw them)
    video_bars = not quiet and sys.stderr.isatty()

    def on_progress(path: Path, done: int, total: int) -> None:
        if path not in bars:
            bars[path] = tqdm(total=total, unit="frame", desc=path.name, leave=False, dynamic_ncols=True)
        bar = bars[path]
        bar.total = max(total, done)  # the last call gives the true count
        bar.update(done - bar.n)

    def on_result(result: VideoResult) -> None:
        if result.path in bars:
            bars.pop(result.path).close()
        overall.update()
        if result.status == "failed":
            tqdm.write(f"error: {result.message}", file=sys.stderr)
            return
        if not quiet:
            tqdm.write(_describe(result))
        if result.message:  # a video analysed only in part
            tqdm.write(f"warning: {result.message}", file=sys.stderr)

    with closing(overall):
        analyzer = None
        if engine == Engine.local and not quiet and paths and will_convert(config.model, config.runtime):
            tqdm.write("preparing the model for ONNX Runtime (once per model: some seconds)", file=sys.stderr)
        # the Ray engine loads the models on its actors, worker processes on their own
        if engine == Engine.local and pipeline.local_workers(config, len(paths)) == 1:
            with native_stderr_silenced():  # TensorFlow's start-up chatter ignores every log level
                analyzer = pipeline.Analyzer(config)
        results = pipeline.analyze_many(
            paths,
            out,
            config=config,
            overwrite=overwrite,
            on_progress=on_progress if video_bars else None,
            on_result=on_result,
            analyzer=analyzer,
            engine=engine.value,
            address=address,
        )
    failed = sum(r.status == "failed" for r in results)
    if not quiet:
        typer.echo(summary_line(results, out))
    raise typer.Exit(code=1 if failed else 0)


def summary_line(results: list[VideoResult], out: Path) -> str:
    """The last line of a run: how many inputs were analysed, skipped, incomplete, failed."""
    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    failed = sum(r.status == "failed" for r in results)
    incomplete = sum(r.status == "done" and not r.complete for r in results)
    partly = f" ({incomplete} of them incomplete)" if incomplete else ""
    return (
        f"{plural(len(results), 'input')}: {done} analysed{partly}, {skipped} already done, "
        f"{failed} failed; tables in {out}/"
    )


def _describe(result: VideoResult) -> str:
    if result.status == "skipped":
        return f"{result.path}: already analysed, skipped (--overwrite to redo)"
    return (
        f"{result.path}: {plural(result.frames_analysed, 'frame')} analysed, {plural(result.faces, 'face')}, "
        f"{plural(result.tracks, 'track')} (video id {result.video})"
    )


def plural(count: int, noun: str) -> str:
    """'1 frame', '2 frames'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
