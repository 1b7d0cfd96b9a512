"""Writes that never leave a half-written file: write beside the target, then rename over it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write` on a temporary file beside `path` (same suffix, which Keras and matplotlib
    read the format from), then rename it over `path`."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    replace_atomically(path, lambda tmp: tmp.write_text(text))


def save_model_atomically(model: keras.Model, path: Path) -> None:
    replace_atomically(path, model.save)
