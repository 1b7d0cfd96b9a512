"""The callbacks of a training run: learning-rate schedule, per-epoch checkpoint with the
augmentation streams' positions, and the time budget."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import keras
import numpy as np

from fervideo.config import TrainConfig
from fervideo.training.atomic import save_model_atomically
from fervideo.training.state import RunState

log = logging.getLogger(__name__)


class Schedule(keras.callbacks.Callback):
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


def augment_generators(model: keras.Model) -> dict[str, keras.random.SeedGenerator]:
    return {layer.name: layer.generator for layer in model.get_layer("augment").layers}


def restore_augment_streams(model: keras.Model, streams: dict[str, list[int]]) -> None:
    for name, generator in augment_generators(model).items():
        if name in streams:
            generator.state.assign(np.asarray(streams[name], generator.state.dtype))
        else:
            log.warning("no saved random stream for augmentation %s: it restarts from its seed", name)


class Checkpoint(keras.callbacks.Callback):
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
            for name, generator in augment_generators(self.model).items()
        }
        save_model_atomically(self.model, self.path)
        self.state.write(self.state_path)


class TimeBudget(keras.callbacks.Callback):
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
