"""Writes that never leave a half-written file (see `fervideo.atomic`), models included."""

from __future__ import annotations

from pathlib import Path

import keras

from fervideo.atomic import replace_atomically, write_text_atomically

__all__ = ["replace_atomically", "save_model_atomically", "write_text_atomically"]


def save_model_atomically(model: keras.Model, path: Path) -> None:
    replace_atomically(path, model.save)
