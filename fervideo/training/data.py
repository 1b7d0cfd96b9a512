"""Load FER2013 from either form users have: the Kaggle CSV or the image-folder layout.

CSV: columns `emotion,pixels,Usage`, one row per image, 2304 space-separated pixel values,
Usage one of Training / PublicTest / PrivateTest.

Image folders: `train/<class>/*.jpg` (Training), `test/<class>/*.jpg` whose file-name prefix
`PublicTest_` / `PrivateTest_` names the split (files without either prefix are `test`), and
an optional `val/<class>/*.jpg`. Images that are not 48x48 are resized (area interpolation)
and counted in a warning; an unreadable image is an error.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fervideo.config import CROP_SIZE, IMAGE_SUFFIXES
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError

log = logging.getLogger(__name__)

#: Split names a user may ask for; "test" is the image-folder test set without prefixes.
SPLITS = ("Training", "PublicTest", "PrivateTest", "val", "test")
_FOLDER_OF_SPLIT = {
    "Training": "train",
    "PublicTest": "test",
    "PrivateTest": "test",
    "test": "test",
    "val": "val",
}


@dataclass(frozen=True)
class Split:
    """Images and labels of one split: x (n, 48, 48, 1) uint8, y (n,) int64 in EMOTIONS order."""

    name: str
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray, name: str) -> Split:
        return Split(name, self.x[index], self.y[index])


def available_splits(path: str | Path) -> list[str]:
    """The splits present at `path`, in `SPLITS` order."""
    path = _existing(path)
    if path.is_file():
        with open(path, newline="") as f:
            usages = {row.get("Usage") for row in csv.DictReader(f)}
        return [s for s in SPLITS if s in usages]
    present = []
    for split in SPLITS:
        folder = path / _FOLDER_OF_SPLIT[split]
        if folder.is_dir() and _image_files(folder, split):
            present.append(split)
    return present


def load_split(path: str | Path, split: str) -> Split:
    """Load one split of FER2013 from a Kaggle CSV file or an image-folder root."""
    if split not in SPLITS:
        raise FervideoError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    path = _existing(path)
    data = _load_csv(path, split) if path.is_file() else _load_folder(path, split)
    if not len(data):
        present = ", ".join(available_splits(path)) or "none"
        raise FervideoError(f"{path} holds no {split} images (splits present: {present}).")
    return data


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FervideoError(
            f"FER2013 data not found at {path}: give the Kaggle fer2013.csv "
            "or the folder holding train/ and test/."
        )
    return path


def _load_csv(path: Path, split: str) -> Split:
    pixels_per_image = CROP_SIZE * CROP_SIZE
    images, labels = [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or [])
        if missing:
            raise FervideoError(
                f"{path} is not a FER2013 CSV: missing column(s) {', '.join(sorted(missing))}."
            )
        for line, row in enumerate(reader, start=2):
            if row["Usage"] != split:
                continue
            try:
                label = int(row["emotion"])
                values = np.array(row["pixels"].split(), dtype=np.int64)
            except (ValueError, AttributeError):
                raise FervideoError(f"{path}, line {line}: emotion and pixels must be integers.") from None
            if not 0 <= label < len(EMOTIONS):
                raise FervideoError(f"{path}, line {line}: emotion {label} is not in 0-6.")
            if values.size != pixels_per_image or values.min() < 0 or values.max() > 255:
                raise FervideoError(
                    f"{path}, line {line}: expected {pixels_per_image} pixel "
                    f"values in 0-255, got {values.size}."
                )
            images.append(values.astype(np.uint8).reshape(CROP_SIZE, CROP_SIZE))
            labels.append(label)
    return _stack(split, images, labels)


def _image_files(folder: Path, split: str) -> list[Path]:
    files = [p for p in folder.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES]
    if split in ("PublicTest", "PrivateTest"):
        return [p for p in files if p.name.startswith(split + "_")]
    if split == "test":
        return [p for p in files if not p.name.startswith(("PublicTest_", "PrivateTest_"))]
    return files


def _load_folder(root: Path, split: str) -> Split:
    folder = root / _FOLDER_OF_SPLIT[split]
    if not folder.is_dir():
        return _stack(split, [], [])
    unknown = sorted(d.name for d in folder.iterdir() if d.is_dir() and d.name not in EMOTIONS)
    if unknown:
        raise FervideoError(
            f"{folder} has class folder(s) {', '.join(unknown)}; expected only {', '.join(EMOTIONS)}."
        )
    files = sorted(_image_files(folder, split))
    labels = [EMOTIONS.index(p.parent.name) for p in files]
    with ThreadPoolExecutor() as pool:  # cv2 releases the GIL while decoding
        images = list(pool.map(_read_gray, files))
    resized = sum(shape != (CROP_SIZE, CROP_SIZE) for _, shape in images)
    if resized:
        log.warning(
            "%d image(s) in %s were not %dx%d and were resized.", resized, folder, CROP_SIZE, CROP_SIZE
        )
    return _stack(split, [image for image, _ in images], labels)


def _read_gray(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FervideoError(f"{path} is not a readable image.")
    if image.shape != (CROP_SIZE, CROP_SIZE):
        return cv2.resize(image, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_AREA), image.shape
    return image, image.shape


def _stack(split: str, images: list[np.ndarray], labels: list[int]) -> Split:
    x = np.stack(images)[..., None] if images else np.zeros((0, CROP_SIZE, CROP_SIZE, 1), np.uint8)
    y = np.asarray(labels, dtype=np.int64)
    log.info(
        "%s: %d images, per class %s", split, len(y), dict(sorted(Counter(EMOTIONS[i] for i in y).items()))
    )
    return Split(split, x, y)
