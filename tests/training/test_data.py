from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.training.data import available_splits, load_split
from tests.training.conftest import PER_CLASS, write_csv


@pytest.mark.parametrize("split", ["Training", "PublicTest"])
def test_csv_and_folder_layouts_load_the_same_images(fer_csv: Path, fer_folder: Path, split: str):
    from_csv, from_folder = load_split(fer_csv, split), load_split(fer_folder, split)
    assert from_csv.x.shape == (PER_CLASS[split] * 7, 48, 48, 1) and from_csv.x.dtype == np.uint8
    # the folder loader sorts by path, so compare as multisets of (label, image)
    key = lambda d: sorted((int(y), x.tobytes()) for x, y in zip(d.x, d.y, strict=True))  # noqa: E731
    assert key(from_csv) == key(from_folder)
    assert np.bincount(from_csv.y, minlength=7).tolist() == [PER_CLASS[split]] * 7


def test_available_splits(fer_csv: Path, fer_folder: Path):
    assert available_splits(fer_csv) == ["Training", "PublicTest"]
    assert available_splits(fer_folder) == ["Training", "PublicTest"]


def test_folder_labels_follow_the_class_folder(fer_folder: Path):
    data = load_split(fer_folder, "PublicTest")
    happy = EMOTIONS.index("happy")
    # the fixture makes each class brighter than the one before it
    means = [data.x[data.y == label].mean() for label in range(7)]
    assert means == sorted(means) and data.x[data.y == happy].shape[0] == PER_CLASS["PublicTest"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("9", " ".join(["1"] * 2304), "Training")], "emotion 9 is not in 0-6"),
        ([("1", " ".join(["1"] * 100), "Training")], "expected 2304 pixel values"),
        ([("1", "a b c", "Training")], "must be integers"),
        ([("1", " ".join(["300"] * 2304), "Training")], "0-255"),
    ],
)
def test_malformed_csv_rows_are_refused_with_their_line(tmp_path: Path, rows, message: str):
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(FervideoError, match=message) as error:
        load_split(path, "Training")
    assert "line 2" in str(error.value)


def test_csv_without_the_columns(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(FervideoError, match="missing column"):
        load_split(path, "Training")


def test_empty_split_names_what_is_present(fer_csv: Path):
    with pytest.raises(FervideoError, match=r"no PrivateTest images.*Training, PublicTest"):
        load_split(fer_csv, "PrivateTest")


def test_missing_path(tmp_path: Path):
    with pytest.raises(FervideoError, match="not found"):
        load_split(tmp_path / "nope", "Training")


def test_unknown_split(fer_csv: Path):
    with pytest.raises(FervideoError, match="unknown split"):
        load_split(fer_csv, "Validation")


def test_unknown_class_folder(tmp_path: Path):
    (tmp_path / "train" / "contempt").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "contempt" / "a.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(FervideoError, match="contempt"):
        load_split(tmp_path, "Training")


def test_unreadable_image(tmp_path: Path):
    (tmp_path / "train" / "happy").mkdir(parents=True)
    (tmp_path / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FervideoError, match=r"broken\.jpg is not a readable image"):
        load_split(tmp_path, "Training")


def test_images_of_other_sizes_are_resized_and_reported(tmp_path: Path, caplog):
    (tmp_path / "train" / "sad").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "train" / "sad" / "big.png"), np.full((96, 96), 200, np.uint8))
    with caplog.at_level(logging.WARNING):
        data = load_split(tmp_path, "Training")
    assert data.x.shape == (1, 48, 48, 1) and int(data.x.mean()) == 200
    assert "1 image(s)" in caplog.text and "resized" in caplog.text
