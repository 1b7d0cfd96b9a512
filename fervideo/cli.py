"""The `fervideo` command: a thin shell over the Python API.

Heavy modules (OpenCV, TensorFlow, Arrow) are imported inside the commands, so that
`fervideo --help` is instant. Library errors (`FervideoError`) become one line and exit 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fervideo import __version__
from fervideo.config import DEFAULT_OUT, AnalyzeConfig
from fervideo.core import FervideoError
from fervideo.tta import TTA_MODES

if TYPE_CHECKING:
    from fervideo.pipeline import VideoResult

DEFAULTS = AnalyzeConfig()

app = typer.Typer(
    help="Facial expressions in videos: detect faces, classify expressions, write Parquet tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


class Detector(str, Enum):
    """Face detector back ends (the names of `fervideo.detectors.DETECTORS`)."""

    yunet = "yunet"
    retinaface = "retinaface"


DEFAULT_DETECTOR = Detector(DEFAULTS.detector)


#: Test-time augmentation modes, as in `fervideo.tta`.
TTA = Enum("TTA", {mode: mode for mode in TTA_MODES}, type=str)


DEFAULT_TTA = TTA(DEFAULTS.tta)


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


@app.command()
def analyze(
    inputs: Annotated[
        list[Path], typer.Argument(help="Video or image files, or folders of them.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder of the Parquet tables.")
    ] = DEFAULT_OUT,
    fps: Annotated[
        float, typer.Option(min=0.001, help="Frames analysed per second of video.")
    ] = DEFAULTS.fps,
    every_frame: Annotated[bool, typer.Option(help="Analyse every frame (ignores --fps).")] = False,
    model: Annotated[
        str, typer.Option(help="Bundled model name (see `fervideo models`), 'default', or a .keras file.")
    ] = str(DEFAULTS.model),
    detector: Annotated[Detector, typer.Option(help="Face detector.")] = DEFAULT_DETECTOR,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Face crops per classifier call.")
    ] = DEFAULTS.batch_size,
    tta: Annotated[
        TTA,
        typer.Option(help="Test-time augmentation: flip (2x classifier time) or crops (10x)."),
    ] = DEFAULT_TTA,
    overwrite: Annotated[bool, typer.Option(help="Redo videos already finished in --out.")] = False,
    retinaface_weights: Annotated[
        Path | None,
        typer.Option(
            help="retinaface.onnx for --detector retinaface "
            "(default: .deepface/weights/retinaface.onnx under $DEEPFACE_HOME, else under ~)."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Find faces and classify their expressions; write the tables under --out.

    Tables: faces (per face per frame), timeline (per second), tracks (per person), summary.

    Videos finished by an earlier run with the same settings are skipped; one finished with
    other settings (model, detector, fps, TTA) fails until you pass --overwrite or choose
    another --out. Exits with 1 if any input failed.
    """
    config = AnalyzeConfig(
        model=model,
        detector=detector.value,
        fps=None if every_frame else fps,
        batch_size=batch_size,
        tta=tta.value,
        retinaface_weights=retinaface_weights,
    )
    _quiet_native_logs()
    from tqdm import tqdm

    from fervideo import pipeline

    paths = pipeline.expand_inputs(inputs)
    overall = tqdm(total=len(paths), unit="video", desc="overall", disable=quiet, dynamic_ncols=True)
    bars: dict[Path, tqdm] = {}

    def on_progress(path: Path, done: int, total: int) -> None:
        if path not in bars:
            bars[path] = tqdm(
                total=total, unit="frame", desc=path.name, leave=False, disable=quiet, dynamic_ncols=True
            )
        bar = bars[path]
        bar.total = max(total, done)  # the last call gives the true count
        bar.update(done - bar.n)

    def on_result(result: VideoResult) -> None:
        if result.path in bars:
            bars.pop(result.path).close()
        overall.update()
        if result.status == "failed":
            tqdm.write(f"error: {result.message}", file=sys.stderr)
        elif not quiet:
            tqdm.write(_describe(result))

    try:
        with _native_stderr_silenced():  # TensorFlow's start-up chatter ignores every log level
            analyzer = pipeline.Analyzer(config)
        results = pipeline.analyze_many(
            paths, out, overwrite=overwrite, on_progress=on_progress, on_result=on_result, analyzer=analyzer
        )
    except FervideoError as err:
        overall.close()
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    overall.close()
    failed = sum(r.status == "failed" for r in results)
    if not quiet:
        counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped")}
        typer.echo(
            f"{len(results)} input(s): {counts['done']} analysed, {counts['skipped']} already done, "
            f"{failed} failed; tables in {out}/"
        )
    raise typer.Exit(code=1 if failed else 0)


def _describe(result: VideoResult) -> str:
    if result.status == "skipped":
        return f"{result.path}: already analysed, skipped (--overwrite to redo)"
    return (
        f"{result.path}: {result.frames_analysed} frames analysed, {result.faces} faces, "
        f"{result.tracks} tracks (video id {result.video})"
    )


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a while; Python exceptions still propagate."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quiet_native_logs() -> None:
    """Keep FFmpeg's and TensorFlow's own stderr chatter out of the command's output; the
    command reports every problem itself. Must run before OpenCV or TensorFlow load."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's logs after start-up


# ---------------------------------------------------------------------------------------------
# Training side: `train`, `evaluate`, `ensemble` and `models`. Their modules are imported inside the
# command bodies, so that `fervideo --help` stays instant.
# ---------------------------------------------------------------------------------------------


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Architecture: custom_cnn, resnet, resnet_imagenet or resvgg.")],
    data: Annotated[
        Path, typer.Option(help="FER2013: the Kaggle fer2013.csv or the folder with train/ and test/.")
    ],
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Passes over the training split (study: 150); with --resume, the run's new length "
            "(extends a finished run). [default: the model's recipe]",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Images per step. [default: the model's recipe]")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run folder. [default: runs/<model>]")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in --out.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Peak learning rate.")] = None,
    weight_decay: Annotated[float | None, typer.Option(min=0.0, help="Decoupled weight decay.")] = None,
    label_smoothing: Annotated[float | None, typer.Option(min=0.0, max=0.5, help="Label smoothing.")] = None,
    mixed_precision: Annotated[
        bool | None,
        typer.Option(
            help="Train in bfloat16. Left out: only where the hardware computes it natively (a recent "
            "GPU, or a CPU with AVX512-BF16 or AMX); emulated, it is several times slower than float32."
        ),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(min=0.0, max=0.5, help="Validate on this share of Training instead of PublicTest."),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(min=1.0, help="Minutes: cut the epochs to what fits, judged on the second epoch."),
    ] = None,
    imagenet_weights: Annotated[
        Path | None, typer.Option(help="ResNet-50 ImageNet no-top weights .h5 for resnet_imagenet.")
    ] = None,
    recalibrate_bn: Annotated[
        bool | None,
        typer.Option(
            help="After the last epoch, re-estimate the batch-normalisation statistics on the "
            "un-augmented training images (with --resume, also for a finished run). "
            "[default: the model's recipe]"
        ),
    ] = None,
) -> None:
    """Train an emotion model on FER2013: checkpoints every epoch, curves, confusion
    matrices, metrics and a model card in the run folder.

    Options left out take the model's bundled recipe (training/recipes.py). On a 2-core CPU
    with AMX an epoch of resvgg took 1.4-2.9 minutes, one of custom_cnn 3.7-5.9, one of ResNet-50
    4.8-6.5; on AVX2-only ones, ResNet-50 took 7.5-22 in float32.
    """
    import logging
    from dataclasses import replace

    _quiet_native_logs()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fervideo.config import TrainConfig
    from training.fit import train as fit
    from training.recipes import RECIPES

    base = RECIPES.get(model, TrainConfig(architecture=model))
    given = {
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "learning_rate": lr,
        "weight_decay": weight_decay,
        "label_smoothing": label_smoothing,
        "mixed_precision": mixed_precision,
        "holdout": holdout,
        "imagenet_weights": imagenet_weights,
        "recalibrate_bn": recalibrate_bn,
    }
    config = replace(
        base,
        architecture=model,
        data=data,
        out=out or Path("runs") / model,
        resume=resume,
        **{k: v for k, v in given.items() if v is not None},
    )
    try:
        path = fit(
            config,
            time_budget_s=time_budget * 60 if time_budget else None,
            replan_epochs=epochs if resume else None,
        )
    except FervideoError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"model: {path}\ncard: {path.parent / 'README.md'}")


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="Bundled model name, 'default', or a .keras file.")] = "default",
    data: Annotated[
        Path, typer.Option(help="FER2013: the Kaggle fer2013.csv or the folder with train/ and test/.")
    ] = Path("fer2013"),
    split: Annotated[
        str, typer.Option(help="Training, PublicTest, PrivateTest, val or test.")
    ] = "PublicTest",
    tta: Annotated[
        TTA, typer.Option(help="Test-time augmentation: flip (2 views) or crops (10).")
    ] = TTA.none,
    out: Annotated[Path | None, typer.Option(help="Also write metrics JSON and confusion PNG here.")] = None,
) -> None:
    """Accuracy, loss, per-class precision/recall and macro-F1 of a model on a split."""
    _quiet_native_logs()
    from fervideo.core import EMOTIONS
    from training.evaluate import evaluate as run_evaluation

    try:
        metrics = run_evaluation(model, data, split, tta.value, out)
    except FervideoError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(
        f"{split}: {metrics.images} images, TTA {metrics.tta}\n"
        f"accuracy {metrics.accuracy:.2%}  loss {metrics.loss:.4f}  macro-F1 {metrics.macro_f1:.3f}"
    )
    typer.echo(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name in EMOTIONS:
        c = metrics.per_class[name]
        typer.echo(f"{name:<10}{c['precision']:>10.1%}{c['recall']:>10.1%}{c['f1']:>10.3f}{c['support']:>10}")


@app.command()
def ensemble(
    members: Annotated[
        list[str], typer.Argument(help="Two or more bundled model names or .keras files.", show_default=False)
    ],
    out: Annotated[Path, typer.Option(help="Folder for the packed model, its metadata and card.")],
    name: Annotated[
        str | None, typer.Option(help="The ensemble's name. [default: the --out folder's name]")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="FER2013 to score the ensemble on (the Kaggle CSV or image folder).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score it on, with --data.")] = "PublicTest",
) -> None:
    """Pack trained models into one model that averages their probabilities; analyze and
    evaluate then run it like any other model (each member costs one forward pass)."""
    _quiet_native_logs()
    from training.ensemble import build_ensemble

    try:
        path = build_ensemble(members, out, name or out.name, data, split)
    except FervideoError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"model: {path}\ncard: {path.parent / 'README.md'}")


@app.command()
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


def main() -> None:
    """Console-script entry point."""
    app()
