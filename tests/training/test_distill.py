"""Knowledge distillation: the loss, the teacher's view of the same augmented batch, class
weights, and a distilled run that resumes with its teacher."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from fervideo.errors import FervideoError
from fervideo.testing import save_tiny_model
from fervideo.training import callbacks, fit
from fervideo.training.distill import DistillationLoss, load_teacher
from tests.helpers import tiny_run_config as _config


def _softened(p: np.ndarray, t: float) -> np.ndarray:
    q = p ** (1 / t)
    return q / q.sum(axis=1, keepdims=True)


def test_distillation_loss_matches_its_formula():
    rng = np.random.default_rng(0)
    student = rng.dirichlet(np.ones(7), 5).astype(np.float32)
    teacher = rng.dirichlet(np.ones(7), 5).astype(np.float32)
    labels = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 5)]
    weight, t = 0.3, 2.0
    s_t, t_t = _softened(student, t), _softened(teacher, t)
    expected = (1 - weight) * -np.log((labels * student).sum(axis=1)) + weight * t * t * (
        t_t * (np.log(t_t) - np.log(s_t))
    ).sum(axis=1)
    loss = DistillationLoss(weight, t, reduction=None)(labels, np.concatenate([student, teacher], axis=1))
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-4)


def test_a_student_that_equals_its_teacher_pays_only_the_label_term():
    probs = np.random.default_rng(1).dirichlet(np.ones(7), 4).astype(np.float32)
    labels = np.eye(7, dtype=np.float32)[[0, 1, 2, 3]]
    both = np.concatenate([probs, probs], axis=1)
    distilled = np.asarray(DistillationLoss(0.5, 3.0, reduction=None)(labels, both))
    hard = np.asarray(keras.losses.categorical_crossentropy(labels, probs))
    np.testing.assert_allclose(distilled, 0.5 * hard, rtol=1e-5)


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 90 + [1] * 10)
    assert fit.class_weights(labels, 0.0) is None
    equal = fit.class_weights(labels, 1.0)
    assert equal[0] * 90 == pytest.approx(equal[1] * 10)  # the same total weight per class
    assert equal[0] * 90 + equal[1] * 10 == pytest.approx(100)  # mean weight over images is 1
    half = fit.class_weights(labels, 0.5)
    assert half[1] / half[0] == pytest.approx(3.0)  # (90 / 10) ** 0.5


def test_the_teacher_sees_the_students_augmented_batch(tmp_path: Path):
    teacher, record = load_teacher(str(save_tiny_model(tmp_path / "teacher.keras", seed=3)))
    config = _config(tmp_path / "data", tmp_path / "run", teacher=tmp_path / "teacher.keras")
    model = fit._training_model(config, 100.0, 50.0, pretrained=True, teacher=teacher)
    probe = keras.Model(model.input, [model.get_layer("augment").output, model.output])
    x = np.random.default_rng(2).uniform(0, 255, (8, 48, 48, 1)).astype(np.float32)
    augmented, outputs = (np.asarray(a) for a in probe(x, training=True))
    assert not np.allclose(augmented, x)  # the batch really was augmented
    np.testing.assert_allclose(outputs[:, 7:], np.asarray(teacher(augmented)), atol=1e-5)
    assert record["sha256"] and not teacher.trainable


def test_a_distilled_run_resumes_with_its_teacher(fer_folder: Path, tmp_path: Path, monkeypatch):
    teacher = save_tiny_model(tmp_path / "teacher.keras", seed=5)
    original = callbacks.Checkpoint.on_epoch_end

    def killed(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", killed)
    config = _config(fer_folder, tmp_path / "run", teacher=teacher, distill_weight=0.7, temperature=3.0)
    with pytest.raises(KeyboardInterrupt):
        fit.train(config)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["teacher"]["path"] == str(teacher) and state["teacher"]["weight"] == 0.7

    monkeypatch.setattr(callbacks.Checkpoint, "on_epoch_end", original)
    other = save_tiny_model(tmp_path / "other.keras", seed=6)
    with pytest.raises(FervideoError, match="was distilled from"):
        fit.train(_config(fer_folder, tmp_path / "run", resume=True, teacher=other))
    model = fit.train(_config(fer_folder, tmp_path / "run", resume=True))  # the teacher is kept
    meta = json.loads((model.parent / "metadata.json").read_text())
    assert meta["recipe"]["teacher_model"]["sha256"] == state["teacher"]["sha256"]
    assert meta["recipe"]["temperature"] == 3.0 and "distilled" in meta["recipe"]["loss"]
    assert keras.saving.load_model(model).output_shape == (None, 7)  # the student alone
    assert "teacher" in (model.parent / "README.md").read_text()


def test_a_bfloat16_run_gives_its_teacher_bfloat16_but_float32_probabilities(finished_run: Path):
    x = np.random.default_rng(4).uniform(0, 255, (16, 48, 48, 1)).astype(np.float32)
    exact, _ = load_teacher(str(finished_run))
    fast, record = load_teacher(str(finished_run), "mixed_bfloat16")
    convolutions = [layer for layer in fast.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and {layer.dtype_policy.name for layer in convolutions} == {"mixed_bfloat16"}
    assert fast.get_layer("probs").dtype_policy.name == "float32"
    np.testing.assert_allclose(np.asarray(fast(x)), np.asarray(exact(x)), atol=0.02)
    assert record["path"].endswith("model.keras")
