"""One training run: data, model, schedule, checkpoints that resume, and every output.

A run folder holds, while training: `checkpoint.keras` (model + optimizer, rewritten
atomically after every epoch), `state.json` and `history.csv`; when done: `model.keras`
(float32, inference only), `metadata.json`, `metrics_<split>.json`, `curves.png`,
`confusion_<split>.png` and the model card `README.md`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from fervideo.catalog import METADATA_FILE, MODEL_FILE
from fervideo.classify import ExpressionClassifier
from fervideo.config import CROP_SIZE, TrainConfig
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.training import architectures
from fervideo.training.atomic import save_model_atomically, write_text_atomically
from fervideo.training.augment import augmentation
from fervideo.training.batchnorm import nested_layers, recalibrate_batchnorm
from fervideo.training.callbacks import Checkpoint, Schedule, TimeBudget, restore_augment_streams
from fervideo.training.card import write_card
from fervideo.training.data import Split, available_splits, load_split
from fervideo.training.distill import DistillationLoss, accuracy_metric, load_teacher
from fervideo.training.evaluate import evaluate_split, write_metrics
from fervideo.training.metadata import run_metadata
from fervideo.training.plots import plot_history
from fervideo.training.precision import policy_name, resolve_mixed_precision
from fervideo.training.state import RunState

log = logging.getLogger(__name__)


def train(config: TrainConfig, time_budget_s: float | None = None, replan_epochs: int | None = None) -> Path:
    """Train `config.architecture` on FER2013 and write every output into `config.out`.

    With `time_budget_s`, the number of epochs is cut (never raised) to what fits in the
    budget at the speed measured in the second epoch; the schedule is planned on that.
    With `replan_epochs` and `config.resume`, the resumed run gets that many epochs in all:
    a finished run is extended, and the cosine resumes from where the new length puts it.
    With `config.teacher`, the student learns from the teacher's probabilities too
    (`fervideo.training.distill`); a resumed run keeps its teacher.
    Returns the path of the final `model.keras`.
    """
    config = dataclasses.replace(config, mixed_precision=resolve_mixed_precision(config.mixed_precision))
    out = Path(config.out)
    state_path, checkpoint = out / "state.json", out / "checkpoint.keras"
    if checkpoint.exists() and not config.resume:
        raise FervideoError(
            f"{out} already holds a training run: pass --resume to continue it or choose another --out."
        )
    state = RunState.read(state_path) if config.resume else RunState()
    if state.architecture not in ("", config.architecture):
        raise FervideoError(
            f"{out} holds a {state.architecture} run, not {config.architecture}: resume it with "
            f"--model {state.architecture} or choose another --out."
        )
    config = _with_saved_teacher(config, state)
    policy = policy_name(config.mixed_precision)
    teacher, teacher_record = load_teacher(str(config.teacher), policy) if config.teacher else (None, None)
    if teacher_record and state.teacher and state.teacher["sha256"] != teacher_record["sha256"]:
        raise FervideoError(
            f"{out} was distilled from {state.teacher['path']}, not {config.teacher}: resume it "
            "with its own teacher or choose another --out."
        )
    out.mkdir(parents=True, exist_ok=True)

    train_data, val_data = _load_data(config)
    mean, std = float(train_data.x.mean()), float(train_data.x.std())
    # a resumed run shuffles afresh rather than replaying the shuffles of the run's first epochs
    keras.utils.set_random_seed(config.seed + state.epochs_done)
    state.epochs_total = state.epochs_total or config.epochs
    state.architecture = config.architecture
    if teacher_record:
        state.teacher = {**teacher_record, "weight": config.distill_weight, "temperature": config.temperature}
    if replan_epochs is not None and config.resume and replan_epochs != state.epochs_total:
        if replan_epochs < state.epochs_done:
            raise FervideoError(
                f"{out} has already trained {state.epochs_done} epochs: --epochs must be at least that."
            )
        state.replanned.append((state.epochs_done, state.epochs_total, replan_epochs))
        state.epochs_total = replan_epochs

    keras.mixed_precision.set_dtype_policy(policy)
    try:
        if checkpoint.exists():
            log.info("resuming %s after epoch %d of %d", out, state.epochs_done, state.epochs_total)
            train_model = _training_model(config, mean, std, pretrained=False, teacher=teacher)
            saved_policy = _load_checkpoint(train_model, checkpoint)
            if not state.precision:  # a state file from before precision was recorded
                state.precision.append((0, saved_policy))
            restore_augment_streams(train_model, state.augment_streams)
            _forget_epochs_after(out / "history.csv", state.epochs_done)
        else:
            train_model = _training_model(config, mean, std, pretrained=True, teacher=teacher)
        if not state.precision or state.precision[-1][1] != policy:
            state.precision.append((state.epochs_done, policy))
        callbacks = [
            Schedule(config, state),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=state.epochs_done > 0),
            *([TimeBudget(state, time_budget_s, config.warmup_epochs)] if time_budget_s else []),
            Checkpoint(checkpoint, state, state_path),
        ]
        if state.epochs_done < state.epochs_total:
            train_model.fit(
                train_data.x.astype(np.float32),
                _one_hot(train_data.y),
                validation_data=(val_data.x.astype(np.float32), _one_hot(val_data.y)) if val_data else None,
                batch_size=config.batch_size,
                epochs=state.epochs_total,
                initial_epoch=state.epochs_done,
                shuffle=True,
                class_weight=class_weights(train_data.y, config.class_balance),
                callbacks=callbacks,
                verbose=2,
            )
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    state.write(state_path)  # a re-plan that left no epoch to train is kept too

    model = _inference_model(config, train_model, mean, std)
    if config.recalibrate_bn:
        count = recalibrate_batchnorm(model, train_data.x, config.batch_size, config.seed)
        log.info("re-estimated %d batch-normalisation layers' statistics on %s", count, train_data.name)
    model_path = out / MODEL_FILE
    save_model_atomically(model, model_path)
    _finish(config, model, model_path, train_data, val_data, mean, std, state)
    return model_path


def _with_saved_teacher(config: TrainConfig, state: RunState) -> TrainConfig:
    """A resumed distillation run takes its teacher and settings from its state unless given."""
    if not state.teacher or config.teacher is not None:
        return config
    return dataclasses.replace(
        config,
        teacher=state.teacher["path"],
        distill_weight=state.teacher["weight"],
        temperature=state.teacher["temperature"],
    )


def class_weights(labels: np.ndarray, balance: float) -> dict[int, float] | None:
    """Per-class loss weights proportional to (images of the class)^-balance, scaled so that
    the average weight over the training images is 1; None when `balance` is 0.

    `balance` 1 gives every class the same total weight (disgust, with 436 of 28,709 Training
    images, then weighs 16x an image of the average class); 0.5 is halfway, in log terms.
    """
    if not balance:
        return None
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(np.float64)
    weights = np.where(counts > 0, np.maximum(counts, 1) ** -balance, 0.0)
    weights *= len(labels) / float((weights * counts).sum())
    return {i: float(w) for i, w in enumerate(weights)}


def _load_data(config: TrainConfig) -> tuple[Split, Split | None]:
    train_data = load_split(config.data, "Training")
    if config.holdout:
        rng = np.random.default_rng(config.seed)
        val_mask = np.zeros(len(train_data), bool)
        for label in range(len(EMOTIONS)):  # stratified: the same share of every class
            members = np.flatnonzero(train_data.y == label)
            val_mask[rng.choice(members, round(len(members) * config.holdout), replace=False)] = True
        return (
            train_data.subset(~val_mask, "Training"),
            train_data.subset(val_mask, "holdout"),
        )
    present = available_splits(config.data)
    for split in ("val", "PublicTest"):
        if split in present:
            return train_data, load_split(config.data, split)
    log.warning("no validation split in %s: training without validation curves", config.data)
    return train_data, None


def _forget_epochs_after(history: Path, epochs_done: int) -> None:
    """Drop history rows of epochs the checkpoint does not hold (a kill can land between the
    history line and the checkpoint), so the resumed run does not log them twice."""
    if history.is_file():
        rows = pd.read_csv(history)
        rows[rows["epoch"] < epochs_done].to_csv(history, index=False)


def _one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(len(EMOTIONS), dtype=np.float32)[y]


def _architecture_options(config: TrainConfig) -> dict:
    if config.architecture == "resnet_imagenet":
        return {"weights": config.imagenet_weights}
    return {}


def _network(config: TrainConfig, mean: float, std: float, pretrained: bool) -> keras.Model:
    """The architecture alone. Without `pretrained`, resnet_imagenet is built from resnet's
    layers without fetching ImageNet weights: its weights then come from a checkpoint."""
    if config.architecture == "resnet_imagenet" and not pretrained:
        model = architectures.build("resnet", mean, std)
        model.name = config.architecture
        return model
    return architectures.build(config.architecture, mean, std, **_architecture_options(config))


def _training_model(
    config: TrainConfig, mean: float, std: float, pretrained: bool, teacher: keras.Model | None = None
) -> keras.Model:
    """Augmentation, the network and its optimizer, in the current global dtype policy; with a
    teacher, its probabilities of the same augmented batch are output beside the student's."""
    core = _network(config, mean, std, pretrained)
    inputs = keras.Input((CROP_SIZE, CROP_SIZE, 1), name="pixels")
    augmented = augmentation(config.augment, config.seed)(inputs)
    outputs = core(augmented)
    if teacher is None:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        metric: str | keras.metrics.Metric = "accuracy"
    else:
        outputs = keras.layers.Concatenate(name="student_and_teacher", dtype="float32")(
            [outputs, teacher(augmented, training=False)]
        )
        loss = DistillationLoss(config.distill_weight, config.temperature, config.label_smoothing)
        metric = accuracy_metric()
    model = keras.Model(inputs, outputs, name="train_" + config.architecture)
    model.compile(
        optimizer=keras.optimizers.SGD(
            config.learning_rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        ),
        loss=loss,
        metrics=[metric],
    )
    return model


def _inference_model(config: TrainConfig, train_model: keras.Model, mean: float, std: float) -> keras.Model:
    """The trained network alone, rebuilt in float32 (also after bfloat16 training)."""
    trained = train_model.get_layer(config.architecture)
    model = _network(config, mean, std, pretrained=False)
    model.set_weights([np.asarray(w, np.float32) for w in trained.get_weights()])
    return model


def _finish(
    config: TrainConfig,
    model: keras.Model,
    model_path: Path,
    train_data: Split,
    val_data: Split | None,
    mean: float,
    std: float,
    state: RunState,
) -> None:
    out = model_path.parent
    history = pd.read_csv(out / "history.csv")
    plot_history(history, out / "curves.png", title=f"{config.architecture} on FER2013")
    metrics = None
    if val_data is not None:  # scored from the saved file, exactly as users will run it
        # TensorFlow is loaded already; a converted copy of every run would only fill the cache
        metrics = evaluate_split(ExpressionClassifier(model_path, runtime="keras"), val_data)
        write_metrics(metrics, out, title=f"{config.architecture} on {val_data.name}")
    metadata = run_metadata(config, model, train_data, val_data, mean, std, state, metrics, state.teacher)
    write_text_atomically(out / METADATA_FILE, json.dumps(metadata, indent=2))
    write_card(out)


def _load_checkpoint(train_model: keras.Model, checkpoint: Path) -> str:
    """Copy a checkpoint's weights and optimizer state into `train_model`, a freshly built
    twin, and return the dtype policy the checkpoint trained in.

    Copying into a new build rather than training the loaded model lets a run change precision
    when it resumes (bfloat16 is several times slower than float32 on CPUs without native
    support for it); the variables themselves are float32 in either policy.
    """
    saved = keras.saving.load_model(checkpoint)
    if len(saved.weights) != len(train_model.weights):
        raise FervideoError(f"{checkpoint} does not hold this architecture: it cannot be resumed.")
    train_model.set_weights(saved.get_weights())
    train_model.optimizer.build(train_model.trainable_variables)
    if len(saved.optimizer.variables) != len(train_model.optimizer.variables):
        raise FervideoError(f"{checkpoint} holds another optimizer: it cannot be resumed.")
    for target, source in zip(train_model.optimizer.variables, saved.optimizer.variables, strict=True):
        target.assign(source)
    return next(nested_layers(saved, keras.layers.Conv2D)).dtype_policy.name
