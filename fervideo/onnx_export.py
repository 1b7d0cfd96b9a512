"""A Keras expression model as an ONNX file, converted once per model and kept in a cache.

ONNX Runtime runs fervideo's models on a CPU as fast as TensorFlow, but a process classifying
with the default model starts in 0.2 s and 133 MiB against TensorFlow's 3.6 s and 776 MiB
(benchmarks/RUNTIME.md), which was most of a short video's cost, so `analyze` classifies with
it where no GPU is in use. The conversion needs TensorFlow and tf2onnx and takes seconds, so it
runs once per model and the file is kept under `cache_dir()`, named by the SHA-256 of its
weights: a changed model gets a new file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from fervideo.atomic import write_bytes_atomically
from fervideo.catalog import ModelInfo, fervideo_home, resolve_model
from fervideo.config import CROP_SIZE

log = logging.getLogger(__name__)

#: Bumped when the conversion changes, so that files converted the old way are not reused.
EXPORT_VERSION = 1
#: ONNX opset of the converted files (ONNX Runtime 1.16 runs up to 19).
OPSET = 17
INPUT_NAME = "pixels"


def cache_dir() -> Path:
    """$FERVIDEO_CACHE, or the `onnx` folder of `fervideo_home()`."""
    return Path(os.environ.get("FERVIDEO_CACHE") or fervideo_home() / "onnx")


def cached_path(info: ModelInfo) -> Path:
    """Where the ONNX file of `info` is (or will be) kept."""
    return cache_dir() / f"{info.name}-{content_digest(info)[:16]}-v{EXPORT_VERSION}.onnx"


def content_digest(info: ModelInfo) -> str:
    """SHA-256 of the weights a model computes with: its file's, or a linked ensemble's members'
    files as they are now. (`ModelInfo.sha256` of a linked ensemble hashes the checksums its
    metadata records, which a changed member no longer matches: loading it then fails, and so
    must a cached conversion of the old member.)"""
    if not info.linked_members:
        return info.sha256()
    members = "\n".join(content_digest(resolve_model(member["model"])) for member in info.linked_members)
    return hashlib.sha256(members.encode()).hexdigest()


def onnx_model(info: ModelInfo, load_keras: Callable[[ModelInfo], object]) -> Path:
    """The ONNX file of `info`, converted from `load_keras(info)` if it is not cached yet.

    One process converts a model at a time (the workers of a first `--workers` run start
    together): the others wait for its file. The file is written beside its place and renamed
    into it, so a reader never sees a partial one.
    """
    path = cached_path(info)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(path.with_name(path.name + ".lock")):
            if not path.is_file():  # else another process converted it while this one waited
                log.info("converting %s to ONNX (once per model) into %s", info.path, path)
                write_bytes_atomically(path, to_onnx(load_keras(info)))
    return path


@contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock` for the block (released by the kernel if the
    process dies)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def to_onnx(model) -> bytes:
    """The serialised ONNX graph of a Keras model taking (N, 48, 48, 1) float32 pixels.

    The graph is frozen first: Keras' own ONNX export (and tf2onnx on the unfrozen function)
    leaves the `Normalization` layer's mean and variance as extra graph inputs.
    """
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, CROP_SIZE, CROP_SIZE, 1), tf.float32, name=INPUT_NAME)
    function = tf.function(model, input_signature=[spec]).get_concrete_function()
    with _quiet("tensorflow", "tf2onnx"):  # deprecation notices about tf2onnx's own calls
        frozen = convert_variables_to_constants_v2(function)
        proto, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            input_names=[t.name for t in frozen.inputs],
            output_names=[t.name for t in frozen.outputs],
            opset=OPSET,
        )
    return proto.SerializeToString()


@contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """Only errors from these Python loggers for the block."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
