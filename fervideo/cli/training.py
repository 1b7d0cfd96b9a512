"""`fervideo train`, `evaluate` and `ensemble`: rebuild, judge and combine the expression
models. `fervideo.training` (Keras) is imported inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fervideo.cli import command
from fervideo.cli.analyze import TTA
from fervideo.quiet import native_stderr_silenced, quiet_native_logs


@command()
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
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run folder. [default: <model> in your models folder, $FERVIDEO_HOME/models "
            "(~/.fervideo/models), so that the finished model is found by name]"
        ),
    ] = None,
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
    class_balance: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Weight each class's loss by (its images)^-B: 0 leaves it as it is, 1 gives every "
            "class the same total weight. [default: the model's recipe]",
        ),
    ] = None,
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Distil from this model (a bundled name or .keras file): the student also learns "
            "the teacher's probabilities of each augmented batch."
        ),
    ] = None,
    distill_weight: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Share of the teacher's term in the loss. [default: 0.5]"),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(min=1.0, help="Distillation temperature. [default: 2]")
    ] = None,
) -> None:
    """Train an emotion model on FER2013: checkpoints every epoch, curves, confusion
    matrices, metrics and a model card in the run folder.

    Options left out take the model's bundled recipe (fervideo/training/recipes.py). On a 2-core CPU
    with AMX an epoch of resvgg took 1.4-2.9 minutes, one of custom_cnn 3.7-5.9, one of ResNet-50
    4.8-6.5; on AVX2-only ones, ResNet-50 took 7.5-22 in float32.
    """
    import logging
    from dataclasses import replace

    quiet_native_logs()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fervideo.catalog import user_models_dir
    from fervideo.config import TrainConfig

    with native_stderr_silenced():  # TensorFlow's start-up lines ignore every log level
        from fervideo.training.fit import train as fit
        from fervideo.training.recipes import RECIPES

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
        "class_balance": class_balance,
        "teacher": teacher,
        "distill_weight": distill_weight,
        "temperature": temperature,
    }
    config = replace(
        base,
        architecture=model,
        data=data,
        out=out or user_models_dir() / model,
        resume=resume,
        **{k: v for k, v in given.items() if v is not None},
    )
    path = fit(
        config,
        time_budget_s=time_budget * 60 if time_budget else None,
        replan_epochs=epochs if resume else None,
    )
    typer.echo(f"model: {path}\ncard: {path.parent / 'README.md'}")


@command()
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
    quiet_native_logs()
    from fervideo.core import EMOTIONS

    with native_stderr_silenced():
        from fervideo.training.evaluate import evaluate as run_evaluation

    metrics = run_evaluation(model, data, split, tta.value, out)
    typer.echo(
        f"{split}: {metrics.images} images, TTA {metrics.tta}\n"
        f"accuracy {metrics.accuracy:.2%}  loss {metrics.loss:.4f}  macro-F1 {metrics.macro_f1:.3f}"
    )
    typer.echo(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name in EMOTIONS:
        c = metrics.per_class[name]
        typer.echo(f"{name:<10}{c['precision']:>10.1%}{c['recall']:>10.1%}{c['f1']:>10.3f}{c['support']:>10}")


@command()
def ensemble(
    members: Annotated[
        list[str], typer.Argument(help="Two or more model names or .keras files.", show_default=False)
    ],
    out: Annotated[Path, typer.Option(help="Folder for the packed model, its metadata and card.")],
    name: Annotated[
        str | None, typer.Option(help="The ensemble's name. [default: the --out folder's name]")
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="FER2013 to score the ensemble on (the Kaggle CSV or image folder).")
    ] = None,
    split: Annotated[str, typer.Option(help="Split to score it on, with --data.")] = "PublicTest",
    link: Annotated[
        bool,
        typer.Option(
            help="Name the members (models found by name) instead of copying their weights: the "
            "ensemble then stores no weights of its own."
        ),
    ] = False,
) -> None:
    """Combine trained models into one model that averages their probabilities; analyze and
    evaluate then run it like any other model (each member costs one forward pass)."""
    quiet_native_logs()
    with native_stderr_silenced():
        from fervideo.training.ensemble import build_ensemble

    path = build_ensemble(members, out, name or out.name, data, split, link=link)
    typer.echo(f"model: {path}\ncard: {path.parent / 'README.md'}")
