"""Tiny FER2013 look-alikes in both layouts users have, written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fervideo.core import EMOTIONS
from tests.helpers import tiny_run_config

PER_CLASS = {"Training": 6, "PublicTest": 2}


def fer_images() -> dict[str, list[tuple[int, np.ndarray]]]:
    """Deterministic (label, 48x48 uint8) images per split: each class has its own mean
    brightness, so a model can learn something in a couple of epochs."""
    rng = np.random.default_rng(7)
    splits = {}
    for split, n in PER_CLASS.items():
        splits[split] = [
            (label, np.clip(rng.normal(30 + 30 * label, 12, (48, 48)), 0, 255).astype(np.uint8))
            for label in range(len(EMOTIONS))
            for _ in range(n)
        ]
    return splits


@pytest.fixture(scope="session")
def fer_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Kaggle image-folder layout: train/<class>/Training_*.png, test/<class>/PublicTest_*.png."""
    root = tmp_path_factory.mktemp("fer2013")
    for split, images in fer_images().items():
        folder = root / ("train" if split == "Training" else "test")
        for i, (label, image) in enumerate(images):
            path = folder / EMOTIONS[label] / f"{split}_{i}.png"  # png: lossless, so CSV == folder
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image)
    return root


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{e},{p},{u}\n" for e, p, u in rows))
    return path


@pytest.fixture(scope="session")
def fer_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [
        (str(label), " ".join(map(str, image.ravel())), split)
        for split, images in fer_images().items()
        for label, image in images
    ]
    return write_csv(tmp_path_factory.mktemp("csv") / "fer2013.csv", rows)


@pytest.fixture(scope="session")
def finished_run(fer_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny training run: model, metadata, metrics, plots and card."""
    from fervideo.training import fit

    out = tmp_path_factory.mktemp("run")
    fit.train(tiny_run_config(fer_folder, out))
    return out
