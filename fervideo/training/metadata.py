"""What a finished run records about itself in `metadata.json`: the contract the model keeps,
the data, the recipe as it actually ran, where and how long it trained, and its scores."""

from __future__ import annotations

import dataclasses
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import keras

from fervideo import __version__
from fervideo.config import CROP_SIZE, TrainConfig
from fervideo.core import EMOTIONS
from fervideo.training.data import Split
from fervideo.training.evaluate import Metrics
from fervideo.training.state import RunState


def run_metadata(
    config: TrainConfig,
    model: keras.Model,
    train_data: Split,
    val_data: Split | None,
    mean: float,
    std: float,
    state: RunState,
    metrics: Metrics | None,
    teacher: dict | None = None,
) -> dict:
    """The metadata of a finished run's model (see `fervideo.catalog` for the keys it reads).

    Args:
        teacher: name and sha256 of the distillation teacher, if the run had one.
    """
    return {
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
            "loss": _loss_text(config),
            **({"teacher_model": teacher} if teacher else {}),
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


def _loss_text(config: TrainConfig) -> str:
    text = "categorical cross-entropy"
    if config.class_balance:
        text += f", classes weighted by (images per class)^-{config.class_balance:g}"
    if config.teacher is not None:
        text += (
            f"; distilled: (1 - {config.distill_weight:g}) x that + {config.distill_weight:g} x "
            f"T^2 x KL(teacher || student) at temperature T = {config.temperature:g}, on the same "
            "augmented batch"
        )
    return text


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
