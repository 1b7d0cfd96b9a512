"""Expression classification: one Keras model loaded once, fed batches of face crops."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from fervideo.catalog import ModelInfo, resolve_model
from fervideo.config import CROP_SIZE, AnalyzeConfig
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.quiet import native_stderr_silenced, quiet_native_logs
from fervideo.tta import TTA_MODES, tta_views

log = logging.getLogger(__name__)
_DEFAULTS = AnalyzeConfig()

#: A model whose output rows stray further than this from summing to 1 is not a softmax.
_SUM_TOLERANCE = 1e-3


class ExpressionClassifier:
    """A Keras model taking (N, 48, 48, 1) float32 pixels 0-255 and returning (N, 7) softmax
    probabilities in `EMOTIONS` order (normalisation is inside the model).

    TensorFlow places the model on a GPU when it sees one.

    Args:
        model: bundled model name, "default", or a path to a `.keras` file.
        batch_size: crops per forward pass.
        tta: test-time augmentation mode (see `fervideo.tta`): predictions of the views
            are averaged.

    Raises:
        FervideoError: unknown model name, unreadable file, or a model that breaks the contract.

    Example:
        >>> classifier = ExpressionClassifier("default")
        >>> probs = classifier.predict(crops)  # crops: (n, 48, 48) uint8
        >>> probs.shape
        (n, 7)
    """

    def __init__(
        self,
        model: str | Path = _DEFAULTS.model,
        batch_size: int = _DEFAULTS.batch_size,
        tta: str = _DEFAULTS.tta,
    ) -> None:
        if tta not in TTA_MODES:
            raise FervideoError(f"unknown TTA mode {tta!r}; expected one of {', '.join(TTA_MODES)}.")
        self.info: ModelInfo = resolve_model(model)
        if self.info.classes != EMOTIONS:
            raise FervideoError(
                f"model {self.info.path} predicts classes {list(self.info.classes)}, "
                f"but fervideo needs {list(EMOTIONS)} in that order."
            )
        self.batch_size = batch_size
        self.tta = tta
        self._model = _load(self.info)
        self._graph = _any_batch_graph(self._model)

    @property
    def keras_model(self):
        """The loaded Keras model, checked against the contract above."""
        return self._model

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities of face crops.

        Args:
            crops: (n, 48, 48) uint8 grayscale crops.

        Returns:
            (n, 7) float32 probabilities in `EMOTIONS` order; each row sums to 1.
        """
        if not len(crops):
            return np.zeros((0, len(EMOTIONS)), np.float32)
        views = tta_views(crops, self.tta)
        probs = np.mean([self._forward(view) for view in views], axis=0)
        sums = probs.sum(axis=1, keepdims=True)
        if np.any(probs < 0) or np.any(np.abs(sums - 1) > _SUM_TOLERANCE):
            raise FervideoError(f"model {self.info.path} does not output probabilities (rows must sum to 1).")
        return (probs / sums).astype(np.float32)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(crops, np.float32)[..., None]
        parts = [
            np.asarray(self._graph(x[start : start + self.batch_size]), np.float64)
            for start in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(parts)


def _any_batch_graph(model):
    """The model as one TensorFlow graph that takes any number of crops, built and run once now.

    Keras' `predict_on_batch` traces a new graph for each new batch size (0.6-0.9 s of CPU each
    for the default model on 2 cores): a video's chunks hold varying numbers of faces, so short
    videos, and every new worker, paid for several. One graph with an open batch dimension costs
    that once, here, and per crop it is as fast (8.0 vs 7.9 CPU-ms at 32 crops, measured).
    """
    import tensorflow as tf

    graph = tf.function(model, input_signature=[tf.TensorSpec((None, CROP_SIZE, CROP_SIZE, 1), tf.float32)])
    graph(np.zeros((1, CROP_SIZE, CROP_SIZE, 1), np.float32))
    return graph


def _load(info: ModelInfo):
    """The Keras model of `info`; a linked ensemble's members are loaded and averaged."""
    quiet_native_logs()
    with native_stderr_silenced():  # TensorFlow's start-up lines ignore every log level
        import tensorflow as tf  # heavy: imported only when a classifier is built
    if info.linked_members:
        members = [_load_member(info, member) for member in info.linked_members]
        model = average_models([m for m, _ in members], info.name, [networks(i.metadata) for _, i in members])
    else:
        model = _load_file(info.path)
    expected_in, expected_out = (None, CROP_SIZE, CROP_SIZE, 1), (None, len(EMOTIONS))
    if tuple(model.input_shape) != expected_in or tuple(model.output_shape) != expected_out:
        raise FervideoError(
            f"model {info.path} maps {model.input_shape} to {model.output_shape}, but fervideo "
            f"needs {expected_in} grayscale crops to {expected_out} probabilities."
        )
    gpus = tf.config.list_physical_devices("GPU")
    log.info("loaded %s; running on %s", info.path, f"{len(gpus)} GPU(s)" if gpus else "the CPU")
    return model


def _load_file(path: Path):
    import keras

    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise FervideoError(
            f"{path} is not a Keras model file: fervideo needs a .keras file (or a legacy .h5)."
        )
    if path.suffix == ".keras":
        if not zipfile.is_zipfile(path):
            raise FervideoError(
                f"{path} is not a Keras model file: a .keras file is a zip archive, and this one is not."
            )
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise FervideoError(f"{path} is a zip archive but not a Keras model (it has no config.json).")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises anything from KeyError to ValueError for a bad file
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise FervideoError(f"cannot load the Keras model {path}: {reason}") from None


def _load_member(ensemble: ModelInfo, member: dict[str, str]) -> tuple[object, ModelInfo]:
    info = resolve_model(member["model"])
    if info.sha256() != member["sha256"]:
        raise FervideoError(
            f"model {ensemble.name} averages {member['model']} with sha256 {member['sha256'][:12]}, "
            f"but {info.path} has another ({info.sha256()[:12]})."
        )
    return _load(info), info


def networks(metadata: dict) -> int:
    """How many trained networks a model averages: 1, or its members' networks in all."""
    return sum(networks(member) for member in metadata["members"]) if "members" in metadata else 1


def average_models(models: list, name: str, weights: list[int] | None = None):
    """One Keras model whose output is the weighted mean of `models`' probabilities (one
    forward pass runs them all). Ensembles weigh each member by the networks it averages, so
    their output is the mean over every trained network inside."""
    import keras

    inputs = keras.Input((CROP_SIZE, CROP_SIZE, 1), name="pixels")
    for index, model in enumerate(models, start=1):
        model.name = f"member{index}"  # members often share their architecture's name
    outputs = [model(inputs) for model in models]
    if weights is None or len(set(weights)) == 1:
        mean = keras.layers.Average(name="mean_probs")(outputs)
    else:
        scaled = [
            keras.layers.Rescaling(weight / sum(weights), name=f"weight{index}")(output)
            for index, (weight, output) in enumerate(zip(weights, outputs, strict=True), start=1)
        ]
        mean = keras.layers.Add(name="mean_probs")(scaled)
    return keras.Model(inputs, mean, name=name)
