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
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from fervideo import __version__
from fervideo.catalog import METADATA_FILE, MODEL_FILE
from fervideo.classify import ExpressionClassifier
from fervideo.config import CROP_SIZE, TrainConfig
from fervideo.core import EMOTIONS, FervideoError
from training import architectures
from training.atomic import save_model_atomically, write_text_atomically
from training.augment import augmentation
from training.batchnorm import nested_layers, recalibrate_batchnorm
from training.card import write_card
from training.data import Split, available_splits, load_split
from training.evaluate import evaluate_split, write_metrics
from training.plots import plot_history
from training.precision import policy_name, resolve_mixed_precision

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunState:
    """What survives an interruption besides the checkpoint: progress and the plan."""

    epochs_done: int = 0
    epochs_total: int = 0
    train_seconds: float = 0.0
    architecture: str = ""
    # (epoch, planned total, new total) each time a resumed run was given another length
    replanned: list[tuple[int, int, int]] = dataclasses.field(default_factory=list)
    # augmentation layer -> its random generator's [seed, counter]: Keras does not save these,
    # and a resumed run that restarted them would replay its first epochs' augmentations
    augment_streams: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    # (first epoch, Keras dtype policy) each time the run's precision was set or changed: a run
    # started in bfloat16 may be resumed in float32 on a machine without native bfloat16
    precision: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> RunState:
        if not path.is_file():
            return cls()
        known = {field.name for field in dataclasses.fields(cls)}
        saved = json.loads(path.read_text())
        state = cls(**{k: v for k, v in saved.items() if k in known})
        state.replanned = [tuple(entry) for entry in state.replanned]  # JSON gives lists
        state.precision = [tuple(entry) for entry in state.precision]
        return state

    def write(self, path: Path) -> None:
        write_text_atomically(path, json.dumps(dataclasses.asdict(self)))


def train(config: TrainConfig, time_budget_s: float | None = None, replan_epochs: int | None = None) -> Path:
    """Train `config.architecture` on FER2013 and write every output into `config.out`.

    With `time_budget_s`, the number of epochs is cut (never raised) to what fits in the
    budget at the speed measured in the second epoch; the schedule is planned on that.
    With `replan_epochs` and `config.resume`, the resumed run gets that many epochs in all:
    a finished run is extended, and the cosine resumes from where the new length puts it.
    Returns the path of the final `model.keras`.
    """
    config = dataclasses.replace(config, mixed_precision=resolve_mixed_precision(config.mixed_precision))
    out = Path(config.out)
    state_path, checkpoint = out / "state.json", out / "checkpoint.keras"
    if checkpoint.exists() and not config.resume:
        raise FervideoError(
            f"{out} already holds a training run: pass --resume to continue it or choose another --out."
        )
    out.mkdir(parents=True, exist_ok=True)

    train_data, val_data = _load_data(config)
    mean, std = float(train_data.x.mean()), float(train_data.x.std())
    state = RunState.read(state_path) if config.resume else RunState()
    if state.architecture not in ("", config.architecture):
        raise FervideoError(
            f"{out} holds a {state.architecture} run, not {config.architecture}: resume it with "
            f"--model {state.architecture} or choose another --out."
        )
    # a resumed run shuffles afresh rather than replaying the shuffles of the run's first epochs
    keras.utils.set_random_seed(config.seed + state.epochs_done)
    state.epochs_total = state.epochs_total or config.epochs
    state.architecture = config.architecture
    if replan_epochs is not None and config.resume and replan_epochs != state.epochs_total:
        if replan_epochs < state.epochs_done:
            raise FervideoError(
                f"{out} has already trained {state.epochs_done} epochs: --epochs must be at least that."
            )
        state.replanned.append((state.epochs_done, state.epochs_total, replan_epochs))
        state.epochs_total = replan_epochs

    policy = policy_name(config.mixed_precision)
    keras.mixed_precision.set_dtype_policy(policy)
    try:
        if checkpoint.exists():
            log.info("resuming %s after epoch %d of %d", out, state.epochs_done, state.epochs_total)
            train_model = _training_model(config, mean, std, pretrained=False)
            saved_policy = _load_checkpoint(train_model, checkpoint)
            if not state.precision:  # a state file from before precision was recorded
                state.precision.append((0, saved_policy))
            _restore_augment_streams(train_model, state.augment_streams)
            _forget_epochs_after(out / "history.csv", state.epochs_done)
        else:
            train_model = _training_model(config, mean, std, pretrained=True)
        if not state.precision or state.precision[-1][1] != policy:
            state.precision.append((state.epochs_done, policy))
        callbacks = [
            _Schedule(config, state),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=state.epochs_done > 0),
            *([_TimeBudget(state, time_budget_s, config.warmup_epochs)] if time_budget_s else []),
            _Checkpoint(checkpoint, state, state_path),
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


def _training_model(config: TrainConfig, mean: float, std: float, pretrained: bool) -> keras.Model:
    """Augmentation, the network and its optimizer, in the current global dtype policy."""
    core = _network(config, mean, std, pretrained)
    inputs = keras.Input((CROP_SIZE, CROP_SIZE, 1), name="pixels")
    outputs = core(augmentation(config.augment, config.seed)(inputs))
    model = keras.Model(inputs, outputs, name="train_" + config.architecture)
    model.compile(
        optimizer=keras.optimizers.SGD(
            config.learning_rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay
        ),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
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
        metrics = evaluate_split(ExpressionClassifier(model_path), val_data)
        write_metrics(metrics, out, title=f"{config.architecture} on {val_data.name}")
    metadata = {
        "name": config.architecture,
        "architecture": config.architecture,
        "classes": list(EMOTIONS),
        "input": {
            "shape": [CROP_SIZE, CROP_SIZE, 1],
            "pixels": "grayscale 0-255, float32",
            "normalisation": "inside the model: (pixel - mean) / std",
        },
        "normalisation": {"mean": mean, "std": std},
        "parameters": model.count_params(),
        "data": {
            "source": str(config.data),
            "train_split": train_data.name,
            "train_images": len(train_data),
            "validation_split": val_data.name if val_data else None,
            "validation_images": len(val_data) if val_data else 0,
        },
        "recipe": {
            **_jsonable(dataclasses.asdict(config)),
            "epochs": state.epochs_done,
            "replanned": state.replanned,
            "precision_segments": state.precision,
            "optimizer": "SGD, Nesterov momentum 0.9, decoupled weight decay",
            "schedule": f"linear warm-up {config.warmup_epochs} epoch(s), then cosine to 0"
            + "".join(
                f"; after epoch {at}, re-planned from {planned} to {total} epochs"
                for at, planned, total in state.replanned
            ),
            "loss": "categorical cross-entropy",
        },
        "training": {
            "seconds": round(state.train_seconds, 1),
            "backend": keras.backend.backend(),
            "device": _device_name(),
            "host": platform.machine(),
        },
        "metrics": None if metrics is None else metrics.summary(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fervideo_version": __version__,
        "keras_version": keras.__version__,
    }
    write_text_atomically(out / METADATA_FILE, json.dumps(metadata, indent=2))
    write_card(out)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return str(value) if isinstance(value, Path) else value


def _device_name() -> str:
    if keras.backend.backend() == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)"
    return keras.backend.backend()


class _Schedule(keras.callbacks.Callback):
    """Per-epoch learning rate: linear warm-up, then cosine decay to 0 at `epochs_total`."""

    def __init__(self, config: TrainConfig, state: RunState):
        super().__init__()
        self.config, self.state = config, state

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        warmup, total = self.config.warmup_epochs, self.state.epochs_total
        if epoch < warmup:
            factor = (epoch + 1) / (warmup + 1)
        else:
            factor = 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(total - warmup, 1)))
        self.model.optimizer.learning_rate.assign(self.config.learning_rate * factor)


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


def _augment_generators(model: keras.Model) -> dict[str, keras.random.SeedGenerator]:
    return {layer.name: layer.generator for layer in model.get_layer("augment").layers}


def _restore_augment_streams(model: keras.Model, streams: dict[str, list[int]]) -> None:
    for name, generator in _augment_generators(model).items():
        if name in streams:
            generator.state.assign(np.asarray(streams[name], generator.state.dtype))
        else:
            log.warning("no saved random stream for augmentation %s: it restarts from its seed", name)


class _Checkpoint(keras.callbacks.Callback):
    """After every epoch: the whole training model (with optimizer state) and the run state
    (with the augmentation streams' positions), atomically; so a killed run resumes at the
    last finished epoch."""

    def __init__(self, path: Path, state: RunState, state_path: Path):
        super().__init__()
        self.path, self.state, self.state_path = path, state, state_path

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.state.epochs_done = epoch + 1
        self.state.train_seconds += time.perf_counter() - self.started
        self.state.augment_streams = {
            name: np.asarray(generator.state.value).tolist()
            for name, generator in _augment_generators(self.model).items()
        }
        save_model_atomically(self.model, self.path)
        self.state.write(self.state_path)


class _TimeBudget(keras.callbacks.Callback):
    """Cuts `epochs_total` to what fits in the budget, judged on the speed of the second epoch
    this process runs (the first includes compilation).

    A cut after epochs whose learning rate depended on the old length (a resumed run past its
    warm-up) is recorded as a re-plan, so the card's reproduce command has it; the epochs up to
    the end of warm-up (the first the cosine starts at 1 whatever the length) need no record.
    """

    def __init__(self, state: RunState, budget_s: float, warmup_epochs: int):
        super().__init__()
        self.state, self.budget_s, self.warmup_epochs = state, budget_s, warmup_epochs

    def on_train_begin(self, logs=None) -> None:
        self.epochs_run = 0

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.epochs_run += 1
        if self.epochs_run == 2:  # this process's first epoch includes compilation
            per_epoch = time.perf_counter() - self.started
            # train_seconds lacks this epoch here: the checkpoint callback runs after us
            left_s = self.budget_s - self.state.train_seconds - per_epoch
            fits = max(epoch + 1 + int(left_s / per_epoch), epoch + 1)
            if fits < self.state.epochs_total:
                log.warning(
                    "time budget: %.1f s an epoch, training %d epochs instead of %d",
                    per_epoch,
                    fits,
                    self.state.epochs_total,
                )
                if epoch > self.warmup_epochs:
                    self.state.replanned.append((epoch + 1, self.state.epochs_total, fits))
                self.state.epochs_total = fits
        if epoch + 1 >= self.state.epochs_total:
            self.model.stop_training = True
