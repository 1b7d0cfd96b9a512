"""Expression classification: one model loaded once, fed batches of face crops.

Two runtimes run the same Keras model: ONNX Runtime on a CPU (converted once per model by
`fervideo.onnx_export`; as many crops per second as TensorFlow, without TensorFlow's start-up
and memory), and TensorFlow itself, which places the model on a GPU when it sees one.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fervideo.catalog import ModelInfo, resolve_model
from fervideo.config import CROP_SIZE, RUNTIMES, AnalyzeConfig
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.onnx_export import cached_path, onnx_model
from fervideo.quiet import import_tensorflow
from fervideo.tta import TTA_MODES, tta_views

log = logging.getLogger(__name__)
_DEFAULTS = AnalyzeConfig()

#: A model whose output rows stray further than this from summing to 1 is not a softmax.
_SUM_TOLERANCE = 1e-3

_CPU = ["CPUExecutionProvider"]
#: One folder per GPU, where the NVIDIA driver is loaded (Linux).
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
#: One forward pass: (n, 48, 48, 1) float32 pixels to (n, 7) probabilities.
Forward = Callable[[np.ndarray], np.ndarray]


class ExpressionClassifier:
    """A Keras model taking (N, 48, 48, 1) float32 pixels 0-255 and returning (N, 7) softmax
    probabilities in `EMOTIONS` order (normalisation is inside the model).

    Args:
        model: bundled model name, "default", or a path to a `.keras` file.
        batch_size: crops per forward pass.
        tta: test-time augmentation mode (see `fervideo.tta`): predictions of the views
            are averaged.
        runtime: "onnx" (ONNX Runtime on the CPU), "keras" (TensorFlow, on a GPU when it sees
            one) or "auto": "keras" when an NVIDIA GPU is visible, else "onnx", falling back to
            "keras" (with a warning) where the model cannot be converted.
        threads: CPU threads of the forward pass; None: the runtime's default (every core).

    Raises:
        FervideoError: unknown model name, unreadable file, a model that breaks the contract,
            or an explicit "onnx" runtime that cannot run the model.

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
        runtime: str = _DEFAULTS.runtime,
        threads: int | None = _DEFAULTS.classify_threads,
    ) -> None:
        if tta not in TTA_MODES:
            raise FervideoError(f"unknown TTA mode {tta!r}; expected one of {', '.join(TTA_MODES)}.")
        if runtime not in RUNTIMES:
            raise FervideoError(f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}.")
        self.info: ModelInfo = _resolve(model)
        self.batch_size = batch_size
        self.tta = tta
        self.runtime, self._run = _runner(self.info, runtime, threads)

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
            np.asarray(self._run(x[start : start + self.batch_size]), np.float64)
            for start in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(parts)


def load_keras_model(model: str | Path):
    """The Keras model of a bundled name, "default" or a file, checked against the contract
    above (what training distils from and ensembles average)."""
    return _load(_resolve(model))


def _resolve(model: str | Path) -> ModelInfo:
    info = resolve_model(model)
    if info.classes != EMOTIONS:
        raise FervideoError(
            f"model {info.path} predicts classes {list(info.classes)}, "
            f"but fervideo needs {list(EMOTIONS)} in that order."
        )
    return info


def will_convert(model: str | Path, runtime: str = _DEFAULTS.runtime) -> bool:
    """Whether a classifier of `model` on `runtime` first converts it for ONNX Runtime (once per
    model, some seconds): for a caller that tells its user why the start is slow."""
    return _chosen(runtime) == "onnx" and not cached_path(_resolve(model)).is_file()


def _chosen(runtime: str) -> str:
    """The runtime "auto" stands for here: TensorFlow where it has a GPU, else ONNX Runtime."""
    if runtime == "auto":
        return "keras" if gpu_visible() else "onnx"
    return runtime


def _runner(info: ModelInfo, runtime: str, threads: int | None) -> tuple[str, Forward]:
    """(the runtime in use, its forward pass) for `runtime` as `ExpressionClassifier` takes it."""
    asked, runtime = runtime, _chosen(runtime)
    if runtime == "onnx":
        try:
            return runtime, _onnx_forward(info, threads)
        except FervideoError:
            raise
        except Exception as err:  # no onnxruntime or tf2onnx, or a layer tf2onnx cannot convert
            reason = _first_line(err)
            if asked == "onnx":
                raise FervideoError(
                    f"cannot run {info.path} with ONNX Runtime ({reason}); use the keras runtime."
                ) from None
            log.warning("running %s with TensorFlow: ONNX Runtime cannot (%s)", info.path, reason)
    return "keras", _keras_forward(info, threads)


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (without importing TensorFlow): the
    driver lists one, and CUDA_VISIBLE_DEVICES does not hide them all."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "0").strip() in ("", "-1"):
        return False
    return NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())


def _onnx_forward(info: ModelInfo, threads: int | None) -> Forward:
    """The model's forward pass in ONNX Runtime, from its cached conversion."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    # idle pool threads sleep rather than spin: the prefetch thread needs the cores meanwhile
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    path = onnx_model(info, _load)
    try:
        session = ort.InferenceSession(str(path), options, providers=_CPU)
    except Exception:  # a damaged cache file: converted again, once
        path.unlink(missing_ok=True)
        session = ort.InferenceSession(str(onnx_model(info, _load)), options, providers=_CPU)
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _keras_forward(info: ModelInfo, threads: int | None) -> Forward:
    """The model's forward pass in TensorFlow: one graph with an open batch dimension.

    Keras' `predict_on_batch` traces a new graph for each new batch size (0.6-0.9 s of CPU each
    for the default model on 2 cores): a video's chunks hold varying numbers of faces, so short
    videos, and every new worker, paid for several. One graph with an open batch dimension costs
    that once, here, and per crop it is as fast (8.0 vs 7.9 CPU-ms at 32 crops, measured).
    """
    tf = import_tensorflow()
    if threads:  # before the model is loaded: TensorFlow sizes its pools when it first runs
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already ran something in this process: its pools stay
            log.debug("TensorFlow's thread pools are already set; %d threads not applied", threads)
    model = _load(info)
    graph = tf.function(model, input_signature=[tf.TensorSpec((None, CROP_SIZE, CROP_SIZE, 1), tf.float32)])
    graph(np.zeros((1, CROP_SIZE, CROP_SIZE, 1), np.float32))
    return graph


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _load(info: ModelInfo):
    """The Keras model of `info`; a linked ensemble's members are loaded and averaged."""
    tf = import_tensorflow()
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
        raise FervideoError(f"cannot load the Keras model {path}: {_first_line(err)}") from None


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
