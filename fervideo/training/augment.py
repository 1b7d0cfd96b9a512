"""On-the-fly training augmentation as Keras layers (inactive at inference).

Runs inside the training step, so it is computed on the accelerator where there is one and
needs no separate input pipeline.
"""

from __future__ import annotations

import keras
from keras import layers

from fervideo.config import AugmentConfig


def augmentation(config: AugmentConfig, seed: int) -> keras.Sequential:
    """Flip, rotation, zoom, shift and random erasing on 0-255 grayscale images."""
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
    return keras.Sequential(steps, name="augment")
