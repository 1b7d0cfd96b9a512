"""Ensembles: several trained models packed into one `.keras` file whose output is the mean
of their softmax probabilities.

The packed model keeps fervideo's model contract (48x48 grayscale pixels 0-255 in, seven
probabilities out, normalisation inside each member), so `analyze` and `evaluate` run it like
any other model; one forward pass of it runs every member.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import keras

from fervideo import __version__
from fervideo.catalog import METADATA_FILE, MODEL_FILE, ModelInfo, resolve_model
from fervideo.classify import ExpressionClassifier, average_models, load_keras_model, networks
from fervideo.config import CROP_SIZE
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.training.atomic import save_model_atomically, write_text_atomically
from fervideo.training.card import write_card
from fervideo.training.data import load_split
from fervideo.training.evaluate import evaluate_split, write_metrics

ARCHITECTURE = "ensemble"


def build_ensemble(
    members: Sequence[str | Path],
    out: str | Path,
    name: str,
    data: str | Path | None = None,
    split: str = "PublicTest",
    link: bool = False,
) -> Path:
    """Combine `members` (model names or `.keras` paths, at least two) into one model whose
    output is the mean of theirs, with its metadata and card in `out`; with `data`, score it
    on `split` of that FER2013 first.

    By default the members' weights are packed into `out/model.keras`. With `link`, `out`
    holds no weights: its metadata names the members (which must then be models found by
    name, not paths) and their sha256, and fervideo loads them by name.

    Returns:
        The packed model file, or the linked ensemble's metadata file.
    """
    if len(members) < 2:
        raise FervideoError("an ensemble needs at least two member models.")
    out = Path(out)
    if (out / MODEL_FILE).exists() or (out / METADATA_FILE).exists():  # metrics would be mixed
        raise FervideoError(f"{out} already holds a model: choose another --out or remove it first.")
    infos = [resolve_model(member) for member in members]
    for member, info in zip(members, infos, strict=True):
        if not (info.metadata.keys() >= _TRAINING_RECORD or "members" in info.metadata):
            raise FervideoError(
                f"member {info.path} has no training record beside it (the metadata.json that "
                "fervideo train writes); an ensemble's members must be models trained by fervideo train."
            )
        if link and info.source == "file":
            raise FervideoError(
                f"a linked ensemble names its members: {member} is a file path, not a model name "
                "(`fervideo models` lists the names)."
            )
    models = [load_keras_model(info.path) for info in infos]
    combined = average_models(models, name, [networks(info.metadata) for info in infos])
    test = None if data is None else load_split(data, split)  # bad data fails before any write
    target = out / (METADATA_FILE if link else MODEL_FILE)
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not link:
            save_model_atomically(combined, target)
        for index, info in enumerate(infos, start=1):
            if (curves := info.path.parent / "curves.png").is_file():
                shutil.copyfile(curves, out / f"curves_member{index}.png")
    except OSError as err:
        raise FervideoError(f"cannot write the ensemble into {out}: {err.strerror}.") from None
    metadata = _metadata(name, infos, combined.count_params(), None)
    if link:
        metadata["linked_members"] = [{"model": info.name, "sha256": info.sha256()} for info in infos]
        write_text_atomically(target, json.dumps(metadata, indent=2))
    if test is not None:
        metrics = evaluate_split(ExpressionClassifier(out if link else target, runtime="keras"), test)
        write_metrics(metrics, out, title=f"{name} on {split}")
        metadata["metrics"] = metrics.summary()
    write_text_atomically(out / METADATA_FILE, json.dumps(metadata, indent=2))
    write_card(out)
    return target


def _metadata(name: str, infos: list[ModelInfo], parameters: int, metrics) -> dict:
    first = infos[0].metadata
    return {
        "name": name,
        "architecture": ARCHITECTURE,
        "classes": list(EMOTIONS),
        "input": {
            "shape": [CROP_SIZE, CROP_SIZE, 1],
            "pixels": "grayscale 0-255, float32",
            "normalisation": "inside each member",
        },
        "combination": "mean of the softmax probabilities of every network inside its members",
        "members": [
            {
                "source": str(info.path),
                "sha256": info.sha256(),
                **{key: info.metadata[key] for key in _MEMBER_KEYS if key in info.metadata},
            }
            for info in infos
        ],
        "parameters": parameters,
        "data": first.get("data"),
        "metrics": None if metrics is None else metrics.summary(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fervideo_version": __version__,
        "keras_version": keras.__version__,
    }


#: What a member's metadata must hold for the ensemble's card: how it was trained.
_TRAINING_RECORD = {"recipe", "training", "data"}
#: What an ensemble's metadata keeps of each member's: enough to rebuild and judge it.
_MEMBER_KEYS = (
    "name",
    "architecture",
    "parameters",
    "normalisation",
    "recipe",
    "training",
    "metrics",
    "members",
)
