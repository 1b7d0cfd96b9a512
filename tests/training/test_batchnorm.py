"""Re-estimated batch-normalisation statistics are the training-mode batch statistics of the
given images, averaged; nothing else in the model changes."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fervideo.training.batchnorm import nested_layers, recalibrate_batchnorm


def _model_with_nested_batchnorm() -> keras.Model:
    inner_in = keras.Input((3,))
    inner = keras.Model(inner_in, keras.layers.BatchNormalization(name="inner_bn")(inner_in), name="inner")
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="logits")(inner(hidden)), name="outer")


def test_statistics_are_the_averaged_batch_statistics():
    model = _model_with_nested_batchnorm()
    (layer,) = nested_layers(model, keras.layers.BatchNormalization)  # found inside the nested model
    weights_before = [w.copy() for w in model.get_weights() if w.shape != layer.moving_mean.shape]
    x = np.random.default_rng(0).normal(5, 3, (50, 4)).astype(np.float32)

    assert recalibrate_batchnorm(model, x, batch_size=16) == 1

    dense = model.get_layer("hidden")
    hidden = (x @ dense.kernel.numpy() + dense.bias.numpy())[np.random.default_rng(0).permutation(50)]
    batches = [hidden[i : i + 16] for i in range(0, 50, 16)]  # 16, 16, 16 and a last 2
    mean = sum(len(b) * b.mean(axis=0) for b in batches) / 50
    variance = sum(len(b) * b.var(axis=0) for b in batches) / 50
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-5)
    assert layer.momentum == pytest.approx(0.99)  # training settings are put back
    weights_after = [w for w in model.get_weights() if w.shape != layer.moving_mean.shape]
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, weights_after, strict=True))


def test_a_model_without_batchnorm_is_left_alone():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert recalibrate_batchnorm(model, np.ones((8, 4), np.float32), batch_size=4) == 0
