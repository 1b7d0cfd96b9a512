"""Re-estimating batch-normalisation statistics after training ("precise BN", as in pycls and
detectron2).

During training each BatchNormalization layer keeps an exponential moving average of the
statistics of augmented batches, taken while the weights were still changing. Inference sees
un-augmented faces through the final weights. Re-estimating the statistics on the
un-augmented training images, with the final weights, matches them to what inference sees.
"""

from __future__ import annotations

import keras
import numpy as np


def nested_layers(layer: keras.layers.Layer, kind: type):
    """The layers of type `kind` inside `layer`, depth first (nested models included)."""
    if isinstance(layer, kind):
        yield layer
    for child in getattr(layer, "layers", []):
        yield from nested_layers(child, kind)


class _InTrainingMode(keras.Model):
    """Runs `network` in training mode (batch statistics) from a compiled predict step: its
    `call` takes no `training` argument, so `predict_on_batch` cannot switch it off."""

    def __init__(self, network: keras.Model):
        super().__init__(name="in_training_mode")
        self.network = network

    def call(self, x):
        return self.network(x, training=True)


def recalibrate_batchnorm(model: keras.Model, images: np.ndarray, batch_size: int, seed: int = 0) -> int:
    """Set every BatchNormalization layer's moving mean and variance to the average, over
    `images` in shuffled batches of `batch_size` (as training drew them: a split stored class
    by class would otherwise give one-class batches and too small variances), of the batch
    statistics it normalises with in training. Weights are unchanged. Returns the number of
    layers re-estimated."""
    layers = list(nested_layers(model, keras.layers.BatchNormalization))
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:  # each step then leaves exactly its batch's statistics in the moving ones
        layer.momentum = 0.0
    try:
        runner = _InTrainingMode(model)
        sums = [
            [np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)] for layer in layers
        ]
        order = np.random.default_rng(seed).permutation(len(images))
        for start in range(0, len(images), batch_size):
            batch = images[order[start : start + batch_size]].astype(np.float32)
            runner.predict_on_batch(batch)
            for (mean_sum, var_sum), layer in zip(sums, layers, strict=True):
                mean_sum += len(batch) * np.asarray(layer.moving_mean, np.float64)
                var_sum += len(batch) * np.asarray(layer.moving_variance, np.float64)
        for (mean_sum, var_sum), layer in zip(sums, layers, strict=True):
            layer.moving_mean.assign((mean_sum / len(images)).astype(np.float32))
            layer.moving_variance.assign((var_sum / len(images)).astype(np.float32))
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return len(layers)
