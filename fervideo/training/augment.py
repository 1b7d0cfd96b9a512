"""On-the-fly training augmentation as Keras layers (inactive at inference).

Runs inside the training step, so it is computed on the accelerator where there is one and
needs no separate input pipeline.
"""

from __future__ import annotations

import keras
from keras import layers

from fervideo.config import AugmentConfig


@keras.saving.register_keras_serializable(package="fervideo")
class RandomResolution(layers.Layer):
    """Shows a share `rate` of the images at a lower resolution: half of them downscaled to
    each of `sizes` pixels (area interpolation) and upscaled back (bilinear). Identity at
    inference. A face of 20 px in a video frame reaches the model so; without this, the
    bundled models lost 8-10 points on PublicTest faces shown that way
    (`benchmarks/ROBUSTNESS.md`)."""

    def __init__(self, rate: float, sizes: tuple[int, ...] = (20, 32), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.sizes, self.seed = rate, tuple(sizes), seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=None):
        if not training or not self.rate:
            return images
        side = images.shape[1:3]
        draw = keras.random.uniform((keras.ops.shape(images)[0], 1, 1, 1), seed=self.generator)
        out = images
        for index, size in enumerate(self.sizes):  # draw in [i, i+1) x rate / n: the i-th size
            low = keras.ops.image.resize(images, (size, size), interpolation="area")
            low = keras.ops.image.resize(low, side, interpolation="bilinear")
            lower, upper = index * self.rate / len(self.sizes), (index + 1) * self.rate / len(self.sizes)
            out = keras.ops.where((draw >= lower) & (draw < upper), keras.ops.cast(low, images.dtype), out)
        return out

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "sizes": list(self.sizes), "seed": self.seed}


def augmentation(config: AugmentConfig, seed: int) -> keras.Sequential:
    """Flip, rotation, zoom, shift, random erasing and low resolution on 0-255 grayscale
    images."""
    steps: list[layers.Layer] = []
    if config.flip:
        steps.append(layers.RandomFlip("horizontal", seed=seed, name="flip"))
    if config.rotation_deg:
        steps.append(
            layers.RandomRotation(
                config.rotation_deg / 360, fill_mode="reflect", seed=seed + 1, name="rotation"
            )
        )
    if config.zoom:
        steps.append(layers.RandomZoom(config.zoom, fill_mode="reflect", seed=seed + 2, name="zoom"))
    if config.shift:
        steps.append(
            layers.RandomTranslation(
                config.shift, config.shift, fill_mode="reflect", seed=seed + 3, name="shift"
            )
        )
    if config.erasing:
        steps.append(
            layers.RandomErasing(
                config.erasing, scale=(0.02, 0.2), value_range=(0, 255), seed=seed + 4, name="erasing"
            )
        )
    if config.low_resolution:
        steps.append(RandomResolution(config.low_resolution, seed=seed + 5, name="low_resolution"))
    return keras.Sequential(steps, name="augment")
