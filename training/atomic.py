"""Writes that never leave a half-written file: write beside the target, then rename over it."""

from __future__ import annotations

import os
from pathlib import Path

import keras


def write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_model_atomically(model: keras.Model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)  # Keras wants the .keras suffix
    model.save(tmp)
    os.replace(tmp, path)
