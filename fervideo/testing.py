"""Stand-ins for tests and benchmarks: a tiny random model with the bundled models' contract.

Its predictions mean nothing; it lets the pipeline run end to end (and be timed without a
real model's classification cost) where no trained model is at hand.
"""

from __future__ import annotations

from pathlib import Path

from fervideo.config import CROP_SIZE
from fervideo.core import EMOTIONS


def save_tiny_model(path: str | Path, seed: int = 0) -> Path:
    """Save a random model with the bundled models' contract: (N, 48, 48, 1) pixels 0-255 in,
    (N, 7) softmax probabilities in `EMOTIONS` order out (Rescaling, Flatten, Dense).

    Args:
        path: the `.keras` file to write.
        seed: Keras' random seed for the weights.

    Returns:
        `path`, as a `Path`.
    """
    import keras  # heavy: imported only when a model is made

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((CROP_SIZE, CROP_SIZE, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(len(EMOTIONS), activation="softmax"),
        ]
    )
    path = Path(path)
    model.save(path)
    return path
