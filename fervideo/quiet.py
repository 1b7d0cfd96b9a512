"""Keep FFmpeg's and TensorFlow's own stderr chatter ("moov atom not found", "failed call to
cuInit") out of the library's and the command's output: fervideo reports every problem itself,
in one sentence. Set FERVIDEO_NATIVE_LOGS=1 to see them.

Environment variables are set with `setdefault`, so a user's own settings win; they are set
only when fervideo is about to open a video or load TensorFlow, never at `import fervideo`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext


def _wanted() -> bool:
    return os.environ.get("FERVIDEO_NATIVE_LOGS", "") not in ("", "0")


def quiet_native_logs() -> None:
    """Lower FFmpeg's, OpenCV's and TensorFlow's log levels (read when they first run)."""
    if _wanted():
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's logs after start-up


@contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def native_stderr_silenced():
    """A context that sends file descriptor 2 to /dev/null (TensorFlow's start-up lines ignore
    every log level); Python exceptions still propagate. A no-op with FERVIDEO_NATIVE_LOGS=1."""
    return nullcontext() if _wanted() else _stderr_to_devnull()


def import_tensorflow():
    """TensorFlow, imported with its start-up lines kept out of the terminal (heavy: only where
    a model is loaded)."""
    quiet_native_logs()
    with native_stderr_silenced():  # TensorFlow's start-up lines ignore every log level
        import tensorflow

    return tensorflow
