"""Thumbnails from the source video: frames fetched by index, faces cut out by their boxes.

The source is the summary's `path`; when the file is gone (or no longer decodes) there are no
thumbnails and the report says so instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fervideo.config import IMAGE_SUFFIXES
from fervideo.quiet import quiet_native_logs

log = logging.getLogger(__name__)

#: Frames read forward rather than sought to (a seek decodes from the previous key frame).
_READ_AHEAD = 48


def source_frames(path: str | Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, BGR image) of each wanted frame that can be read, in index order, each once;
    nothing when the file is missing or does not open."""
    path = Path(path)
    wanted = sorted({int(i) for i in indices if i >= 0})
    if not wanted or not path.is_file():
        return
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None and wanted[0] == 0:
            yield 0, image
        return
    quiet_native_logs()
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            log.warning("%s does not open: no thumbnails", path)
            return
        position = 0  # index of the next frame `read` returns
        for index in wanted:
            if not position <= index < position + _READ_AHEAD:
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                position = index
            while position < index and capture.grab():
                position += 1
            ok, image = capture.read()
            if not ok:
                return
            position = index + 1
            yield index, image
    finally:
        capture.release()


def face_crop(
    image: np.ndarray, x: float, y: float, w: float, h: float, side: int, margin: float = 0.3
) -> np.ndarray:
    """A square `side` x `side` crop around a face box (its longer side plus `margin`),
    padded with black where it leaves the frame."""
    half = max(w, h) * (1 + margin) / 2
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = (round(v) for v in (cx - half, cy - half, cx + half, cy + half))
    pad = max(0, -x0, -y0, x1 - image.shape[1], y1 - image.shape[0])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT) if pad else image
    crop = padded[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The image scaled down to fit in `width` x `height` pixels (never enlarged)."""
    scale = min(width / image.shape[1], height / image.shape[0])
    if scale >= 1:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def jpeg(image: np.ndarray, quality: int) -> bytes:
    """The image as a JPEG file."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the thumbnail")
    return data.tobytes()
