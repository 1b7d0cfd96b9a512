"""The models `--model` can name: where they live, what their cards say, and name-or-path
resolution.

A model is a folder `<name>/` holding `model.keras` (grayscale 48x48 pixels 0-255 in, 7
softmax probabilities in `EMOTIONS` order out; normalisation is inside the model),
`metadata.json` (classes, input contract, normalisation, recipe, metrics) and a model card
`README.md` with its plots. A *linked ensemble* has no `model.keras`: its metadata names
member models (by name, with their sha256) whose probabilities it averages, so bundled
weights are never stored twice.

Models are looked up by name in three places, first match wins:

1. the user's models folder, `$FERVIDEO_HOME/models` (`~/.fervideo/models` by default), where
   `fervideo train` puts the models a user trains;
2. installed model distributions: every folder of the `fervideo_models` namespace package
   (`pip install ./models` from a clone of the repository installs the study's ResNet-50);
3. the models bundled with fervideo (`$FERVIDEO_MODELS` overrides where those are).

"default" always means the bundled default model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fervideo.config import DEFAULT_MODEL, TRAINABLE
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
#: The namespace package that model distributions install their model folders into.
MODEL_PACKAGE = "fervideo_models"


def models_dir() -> Path:
    """The folder of bundled models: $FERVIDEO_MODELS, the wheel's copy, or the repo's."""
    if env := os.environ.get("FERVIDEO_MODELS"):
        return Path(env)
    package = Path(__file__).resolve().parent
    for candidate in (package / "models", package.parent / "models"):
        if candidate.is_dir():
            return candidate
    return package.parent / "models"


def fervideo_home() -> Path:
    """$FERVIDEO_HOME, or ~/.fervideo: the user's own models (and nothing else, for now)."""
    return Path(os.environ.get("FERVIDEO_HOME") or Path.home() / ".fervideo")


def user_models_dir() -> Path:
    return fervideo_home() / "models"


def _package_dirs() -> list[Path]:
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        return []
    return [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []


def _sources() -> list[tuple[str, Path]]:
    """(source, folder) in lookup order."""
    return [
        ("user", user_models_dir()),
        *(("package", d) for d in _package_dirs()),
        ("bundled", models_dir()),
    ]


@dataclass(frozen=True)
class ModelInfo:
    """A model and what its metadata says about it.

    Attributes:
        name: the model's name.
        path: its `model.keras`, or a linked ensemble's `metadata.json`.
        metadata: the parsed metadata ({} when there is none).
        source: "bundled", "user", "package" (an installed model distribution) or "file".
    """

    name: str
    path: Path
    metadata: dict[str, Any]
    source: str = "file"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("classes", EMOTIONS))

    @property
    def accuracy(self) -> float | None:
        return self.metadata.get("metrics", {}).get("accuracy")

    @property
    def linked_members(self) -> list[dict[str, str]]:
        """A linked ensemble's members, each {"model": name, "sha256": ...}; [] otherwise."""
        return self.metadata.get("linked_members", []) if self.path.name == METADATA_FILE else []

    def sha256(self) -> str:
        """SHA-256 of the model file; of a linked ensemble, of its members' checksums."""
        if self.linked_members:
            joined = "\n".join(member["sha256"] for member in self.linked_members)
            return hashlib.sha256(joined.encode()).hexdigest()
        stat = self.path.stat()
        return _file_sha256(str(self.path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's SHA-256, hashed once per process while its size and time stay (the run's
    provenance, the ONNX cache key and an ensemble's member check all ask for it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_models() -> list[ModelInfo]:
    """Every model a name can select, sorted by name; a name in two places is listed once,
    as the lookup finds it."""
    found: dict[str, ModelInfo] = {}
    for source, root in _sources():
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                if folder.name not in found and (info := _read_folder(folder, source)):
                    found[folder.name] = info
    return sorted(found.values(), key=lambda info: info.name)


def resolve_model(model: str | Path = "default") -> ModelInfo:
    """Turn a model name, "default", a path to a `.keras` file, or a model's folder into a
    `ModelInfo`.

    Raises:
        FervideoError: no such file, or no model of that name (the message says how to get one).
    """
    text = str(model)
    if text.endswith(".keras") or os.sep in text or Path(text).exists():
        path = Path(text)
        if path.is_dir() and (info := _read_folder(path, "file")):
            return info  # a model's folder, e.g. a finished training run
        if not path.is_file():
            raise FervideoError(f"model file {path} does not exist.")
        return _read(path.parent, path, "file")
    if text == "default":
        sources = [("bundled", models_dir())]
        name = DEFAULT_MODEL
    else:
        sources, name = _sources(), text
    for source, root in sources:
        if info := _read_folder(root / name, source):
            return info
    known = ", ".join(m.name for m in list_models()) or "none"
    raise FervideoError(f"no model named {name!r}; {_how_to_get(name)} Models here: {known}.")


def _how_to_get(name: str) -> str:
    if name == "resnet_imagenet":
        return (
            "train it with `fervideo train --model resnet_imagenet --data FER2013 "
            "--imagenet-weights FILE` (ResNet-50 ImageNet no-top weights); it is then found by name."
        )
    if name == "resnet":
        return (
            "the study's ResNet-50 ships apart from fervideo: `pip install ./models` in a clone "
            "of fervideo's repository, or train it with `fervideo train --model resnet --data FER2013`."
        )
    if name in TRAINABLE:
        return f"train it with `fervideo train --model {name} --data FER2013`; it is then found by name."
    return "pass a model name `fervideo models` lists, or a path to a .keras file."


def _read_folder(folder: Path, source: str) -> ModelInfo | None:
    """A model folder's model, named by the folder (the name users type), or None."""
    if (folder / MODEL_FILE).is_file():
        info = _read(folder, folder / MODEL_FILE, source)
        return ModelInfo(folder.name, info.path, info.metadata, source)
    meta = folder / METADATA_FILE
    if meta.is_file() and "linked_members" in (metadata := _metadata(meta)):
        return ModelInfo(folder.name, meta, metadata, source)
    return None


def _read(folder: Path, path: Path, source: str) -> ModelInfo:
    meta_file = path.with_suffix(".json") if path.name != MODEL_FILE else folder / METADATA_FILE
    metadata = _metadata(meta_file) if meta_file.is_file() else {}
    return ModelInfo(
        name=metadata.get("name", path.stem if path.name != MODEL_FILE else folder.name),
        path=path,
        metadata=metadata,
        source=source,
    )


def _metadata(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise FervideoError(f"cannot read the model metadata {path}: {err}.") from None
