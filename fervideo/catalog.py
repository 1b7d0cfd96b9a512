"""The bundled models: where they live, what their cards say, and name-or-path resolution.

A bundled model is a folder `models/<name>/` holding `model.keras` (grayscale 48x48 pixels
0-255 in, 7 softmax probabilities in `EMOTIONS` order out; normalisation is inside the
model), `metadata.json` (classes, input contract, normalisation, recipe, metrics, sha256)
and a model card `README.md` with its plots.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fervideo.config import DEFAULT_MODEL
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"


def models_dir() -> Path:
    """The folder of bundled models: $FERVIDEO_MODELS, the wheel's copy, or the repo's."""
    if env := os.environ.get("FERVIDEO_MODELS"):
        return Path(env)
    package = Path(__file__).resolve().parent
    for candidate in (package / "models", package.parent / "models"):
        if candidate.is_dir():
            return candidate
    return package.parent / "models"


@dataclass(frozen=True)
class ModelInfo:
    """A model file and what its metadata says about it."""

    name: str
    path: Path
    metadata: dict[str, Any]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("classes", EMOTIONS))

    @property
    def accuracy(self) -> float | None:
        return self.metadata.get("metrics", {}).get("accuracy")

    def sha256(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def list_models() -> list[ModelInfo]:
    """Bundled models, sorted by name."""
    root = models_dir()
    if not root.is_dir():
        return []
    return [_read(folder) for folder in sorted(root.iterdir()) if (folder / MODEL_FILE).is_file()]


def resolve_model(model: str | Path = "default") -> ModelInfo:
    """Turn a bundled name, "default", or a path to a `.keras` file into a `ModelInfo`."""
    text = str(model)
    if text.endswith(".keras") or os.sep in text or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise FervideoError(f"model file {path} does not exist.")
        return _read(path.parent, path)
    name = DEFAULT_MODEL if text == "default" else text
    folder = models_dir() / name
    if not (folder / MODEL_FILE).is_file():
        bundled = ", ".join(m.name for m in list_models()) or "none"
        raise FervideoError(
            f"no bundled model named {name!r}; bundled models are: {bundled} "
            "(or pass a path to a .keras file)."
        )
    return _read(folder)


def _read(folder: Path, path: Path | None = None) -> ModelInfo:
    path = path or folder / MODEL_FILE
    meta_file = path.with_suffix(".json") if path.name != MODEL_FILE else folder / METADATA_FILE
    metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return ModelInfo(
        name=metadata.get("name", path.stem if path.name != MODEL_FILE else folder.name),
        path=path,
        metadata=metadata,
    )
