from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from fervideo.catalog import resolve_model
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.training import callbacks, fit
from fervideo.training.batchnorm import nested_layers
from fervideo.training.data import load_split
from tests.helpers import tiny_run_config as _config

RUN_OUTPUTS = (
    "model.keras",
    "metadata.json",
    "history.csv",
    "curves.png",
    "README.md",
    "metrics_PublicTest.json",
    "confusion_PublicTest.png",
    "checkpoint.keras",
)


def test_a_run_writes_every_output(finished_run: Path):
    for name in RUN_OUTPUTS:
        assert (finished_run / name).is_file(), name
    history = pd.read_csv(finished_run / "history.csv")
    assert history["epoch"].tolist() == [0, 1]
    assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(history.columns)
    metrics = json.loads((finished_run / "metrics_PublicTest.json").read_text())
    assert np.array(metrics["confusion"]).sum() == metrics["images"] == 14
    assert set(metrics["per_class"]) == set(EMOTIONS) and 0 <= metrics["macro_f1"] <= 1
    card = (finished_run / "README.md").read_text()
    assert "fervideo train --model resvgg" in card and "curves.png" in card


def test_metadata_and_normalisation_round_trip(finished_run: Path, fer_folder: Path):
    meta = json.loads((finished_run / "metadata.json").read_text())
    train = load_split(fer_folder, "Training")
    assert meta["classes"] == list(EMOTIONS) and meta["architecture"] == "resvgg"
    assert meta["normalisation"]["mean"] == pytest.approx(train.x.mean())
    assert meta["normalisation"]["std"] == pytest.approx(train.x.std())
    assert meta["recipe"]["epochs"] == 2 and meta["data"]["train_images"] == len(train)
    # inference uses exactly the statistics training used: they are inside the model
    info = resolve_model(finished_run / "model.keras")
    assert info.metadata == meta
    layer = keras.saving.load_model(info.path).get_layer("standardise")
    assert float(np.ravel(layer.mean)[0]) == pytest.approx(train.x.mean(), rel=1e-6)
    assert float(np.sqrt(np.ravel(layer.variance)[0])) == pytest.approx(train.x.std(), rel=1e-6)
    # the card's accuracy is what the saved file scores
    from fervideo.training.evaluate import evaluate

    assert evaluate(info.path, fer_folder, "PublicTest").accuracy == meta["metrics"]["accuracy"]


def test_an_existing_run_is_not_overwritten(finished_run: Path, fer_folder: Path):
    with pytest.raises(FervideoError, match="--resume"):
        fit.train(_config(fer_folder, finished_run))


def _kill_after_each_checkpoint(monkeypatch):
    """As if the user pressed Ctrl-C right after a checkpoint; returns the real callback."""
    original = callbacks.Checkpoint.on_epoch_end

    def killed_after_first_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", killed_after_first_epoch)
    return original


def test_resume_after_an_interrupted_run(fer_folder: Path, tmp_path: Path, monkeypatch):
    original = _kill_after_each_checkpoint(monkeypatch)
    config = _config(fer_folder, tmp_path, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        fit.train(config)
    assert not (tmp_path / "model.keras").exists()
    state_after_one = json.loads((tmp_path / "state.json").read_text())
    assert state_after_one["epochs_done"] == 1
    streams_after_one = state_after_one["augment_streams"]
    assert set(streams_after_one) >= {"flip", "rotation", "zoom", "shift"}
    assert all(counter > 0 for _, counter in streams_after_one.values())
    saved = keras.saving.load_model(tmp_path / "checkpoint.keras")
    steps_after_epoch_one = int(saved.optimizer.iterations.numpy())

    # a kill between the history line and the checkpoint leaves a row the checkpoint lacks
    history_file = tmp_path / "history.csv"
    history_file.write_text(history_file.read_text() + "1,0.5,1.0,0.5,1.0\n")

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", original)
    with pytest.raises(FervideoError, match="holds a resvgg run"):
        fit.train(replace(config, architecture="custom_cnn", resume=True))
    fit.train(replace(config, resume=True), replan_epochs=4)  # and given a new length
    history = pd.read_csv(tmp_path / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2, 3]  # epoch 0 is not trained again
    resumed = keras.saving.load_model(tmp_path / "checkpoint.keras")
    assert int(resumed.optimizer.iterations.numpy()) == 4 * steps_after_epoch_one
    # the augmentations went on from where they stopped, not again from the run's first epoch
    streams = json.loads((tmp_path / "state.json").read_text())["augment_streams"]
    assert streams == {name: [seed, 4 * counter] for name, (seed, counter) in streams_after_one.items()}
    assert json.loads((tmp_path / "metadata.json").read_text())["recipe"]["epochs"] == 4
    card = (tmp_path / "README.md").read_text()
    assert "--epochs 3 " in card and "`, stopped after epoch 1, then `fervideo train" in card


def test_a_finished_run_is_extended_and_its_schedule_replanned(fer_folder: Path, tmp_path: Path, monkeypatch):
    config = _config(fer_folder, tmp_path, epochs=2)
    fit.train(config)
    (tmp_path / "state.json").write_text(  # a state file from an older fervideo: extra keys
        json.dumps({**json.loads((tmp_path / "state.json").read_text()), "mean": 1.0})
    )
    rates = []
    original = callbacks.Schedule.on_epoch_begin

    def record_rate(self, epoch, logs=None):
        original(self, epoch, logs)
        rates.append(float(self.model.optimizer.learning_rate.numpy()))

    monkeypatch.setattr(callbacks.Schedule, "on_epoch_begin", record_rate)
    with pytest.raises(FervideoError, match="at least that"):
        fit.train(replace(config, resume=True), replan_epochs=1)
    fit.train(replace(config, resume=True), replan_epochs=5)
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [0, 1, 2, 3, 4]
    assert len(rates) == 3 and rates[0] > rates[1] > rates[2] > 0  # cosine over 5, from epoch 2
    recipe = json.loads((tmp_path / "metadata.json").read_text())["recipe"]
    assert recipe["epochs"] == 5 and "after epoch 2, re-planned from 2 to 5 epochs" in recipe["schedule"]
    card = (tmp_path / "README.md").read_text()
    assert "--epochs 2 " in card and "then `fervideo train --model resvgg" in card  # how to rebuild it
    assert "--resume --epochs 5`" in card and "stopped" not in card  # it had finished


def test_time_budget_cuts_the_epochs(fer_folder: Path, tmp_path: Path):
    fit.train(_config(fer_folder, tmp_path, epochs=50), time_budget_s=0.01)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_total"] == 2
    assert state["replanned"] == []  # cut within warm-up: `--epochs 2` alone rebuilds it


def test_a_time_budget_cut_of_a_resumed_run_is_recorded(fer_folder: Path, tmp_path: Path, monkeypatch):
    """Cut after epochs that the old length's cosine shaped, the run records the new length,
    so its card's reproduce command gives the schedule it really had."""
    original = _kill_after_each_checkpoint(monkeypatch)
    config = _config(fer_folder, tmp_path, epochs=6)
    with pytest.raises(KeyboardInterrupt):
        fit.train(config)
    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", original)
    fit.train(replace(config, resume=True), time_budget_s=0.01)  # cut at this process's 2nd epoch
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_done"] == state["epochs_total"] == 3
    assert state["replanned"] == [[3, 6, 3]]
    card = (tmp_path / "README.md").read_text()
    assert "--epochs 6 " in card and "`, stopped after epoch 3, then `fervideo train" in card
    assert "--resume --epochs 3`" in card


def test_an_interrupted_run_cut_to_its_trained_epochs_finishes(fer_folder: Path, tmp_path: Path, monkeypatch):
    original = _kill_after_each_checkpoint(monkeypatch)
    config = _config(fer_folder, tmp_path, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        fit.train(config)
    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", original)
    fit.train(replace(config, resume=True), replan_epochs=1)  # nothing left to train: export
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epochs_total"] == 1 and state["replanned"] == [[1, 3, 1]]
    assert json.loads((tmp_path / "metadata.json").read_text())["recipe"]["replanned"] == [[1, 3, 1]]


def test_a_finished_run_is_exported_again_with_recalibrated_batchnorm(fer_folder: Path, tmp_path: Path):
    config = _config(fer_folder, tmp_path, epochs=1)
    fit.train(config)
    plain = keras.saving.load_model(tmp_path / "model.keras")
    fit.train(replace(config, resume=True, recalibrate_bn=True))  # no epoch left: export only
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [0]
    recalibrated = keras.saving.load_model(tmp_path / "model.keras")
    changed = [
        name
        for name, before, after in zip(
            [w.path for w in plain.weights], plain.get_weights(), recalibrated.get_weights(), strict=True
        )
        if not np.allclose(before, after)
    ]
    assert changed and all(name.endswith(("moving_mean", "moving_variance")) for name in changed)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["recipe"]["recalibrate_bn"] is True
    from fervideo.training.evaluate import evaluate

    assert (
        evaluate(tmp_path / "model.keras", fer_folder, "PublicTest").accuracy == meta["metrics"]["accuracy"]
    )
    card = (tmp_path / "README.md").read_text()
    assert "statistics were re-estimated on the un-augmented training split" in card
    assert "--recalibrate-bn" in card


def test_holdout_validates_on_a_stratified_share_of_training(fer_csv: Path, tmp_path: Path):
    fit.train(_config(fer_csv, tmp_path, epochs=1, holdout=0.34))
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["data"]["validation_images"] == 14 and meta["data"]["train_images"] == 28
    assert meta["metrics"]["split"] == "holdout" and (tmp_path / "metrics_holdout.json").is_file()


def test_a_bfloat16_run_resumes_in_float32(fer_folder: Path, tmp_path: Path, monkeypatch):
    """A run started in bfloat16 (on a machine with native support) goes on in float32 on one
    without: same weights and optimizer state, recorded in the state, metadata and card."""
    original = _kill_after_each_checkpoint(monkeypatch)
    config = _config(fer_folder, tmp_path, epochs=2, mixed_precision=True)
    with pytest.raises(KeyboardInterrupt):
        fit.train(config)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["precision"] == [[0, "mixed_bfloat16"]]
    # a state file written before precision was recorded: the checkpoint tells it
    (tmp_path / "state.json").write_text(json.dumps({k: v for k, v in state.items() if k != "precision"}))

    saved = keras.saving.load_model(tmp_path / "checkpoint.keras")
    twin = fit._training_model(replace(config, mixed_precision=False), 100.0, 50.0, pretrained=False)
    assert fit._load_checkpoint(twin, tmp_path / "checkpoint.keras") == "mixed_bfloat16"
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), saved.get_weights(), strict=True))
    assert all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(twin.optimizer.variables, saved.optimizer.variables, strict=True)
    )
    assert next(nested_layers(twin, keras.layers.Conv2D)).dtype_policy.name == "float32"
    steps_per_epoch = int(saved.optimizer.iterations.numpy())

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", original)
    fit.train(replace(config, mixed_precision=False, resume=True))
    assert json.loads((tmp_path / "state.json").read_text())["precision"] == [
        [0, "mixed_bfloat16"],
        [1, "float32"],
    ]
    resumed = keras.saving.load_model(tmp_path / "checkpoint.keras")
    assert next(nested_layers(resumed, keras.layers.Conv2D)).dtype_policy.name == "float32"
    assert int(resumed.optimizer.iterations.numpy()) == 2 * steps_per_epoch
    recipe = json.loads((tmp_path / "metadata.json").read_text())["recipe"]
    assert recipe["precision_segments"] == [[0, "mixed_bfloat16"], [1, "float32"]]
    card = (tmp_path / "README.md").read_text()
    assert "precision bfloat16 mixed in epochs 1-1, float32 in epochs 2-2" in card
    assert "--mixed-precision`, stopped after epoch 1, then `fervideo train --model resvgg" in card
    assert "--resume --no-mixed-precision`" in card


def test_a_checkpoint_of_another_architecture_is_refused(finished_run: Path, fer_folder: Path):
    other = fit._training_model(_config(fer_folder, finished_run, architecture="custom_cnn"), 1.0, 1.0, False)
    with pytest.raises(FervideoError, match="cannot be resumed"):
        fit._load_checkpoint(other, finished_run / "checkpoint.keras")
