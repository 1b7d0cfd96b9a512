"""Face crops for the expression models: upright, grayscale, 48x48 uint8.

The crop is cut around the detector's box as its detector's `CropSettings` say: a square of
`side` times the box's longer side (or the box's own aspect, squeezed), its centre moved by
`shift`. When the detector gives eye landmarks and `upright` is on, the crop is rotated about
its centre so that the eyes are level. Pixels outside the frame are black. Pixel values stay
0-255: every model normalises its input itself, with its own stored statistics.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fervideo.config import CROP_SIZE, CropSettings
from fervideo.core import Faces

#: A large face is first cut at most this many times the crop size, then area-averaged
#: down to the crop size (a direct affine warp would alias).
_MAX_OVERSAMPLE = 4


def crop_faces(
    image: np.ndarray, faces: Faces, settings: CropSettings | None = None, size: int = CROP_SIZE
) -> np.ndarray:
    """Cut one grayscale crop per face.

    Args:
        image: (H, W, 3) uint8 BGR frame the faces were found in.
        faces: n faces; `landmarks`, when present, rotates each crop upright.
        settings: the crop's geometry (default: `CropSettings()`, the box's square).
        size: side of the output crops in pixels.

    Returns:
        (n, size, size) uint8 crops, in the order of `faces`.

    Example:
        >>> crops = crop_faces(frame, detector.detect(frame))
        >>> crops.shape, crops.dtype
        ((1, 48, 48), dtype('uint8'))
    """
    settings = settings or CropSettings()
    crops = np.zeros((len(faces), size, size), np.uint8)
    if not len(faces):
        return crops
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    upright = settings.upright and faces.landmarks is not None
    for i, (x1, y1, x2, y2) in enumerate(faces.xyxy):
        longer = max(x2 - x1, y2 - y1)
        width, height = (longer, longer) if settings.square else (x2 - x1, y2 - y1)
        angle = eye_angle(faces.landmarks[i]) if upright else 0.0
        # box edges -> pixel-centre coordinates; the shift is along the face's own vertical
        down = settings.shift * longer
        theta = math.radians(angle)
        centre = ((x1 + x2 - 1) / 2 - down * math.sin(theta), (y1 + y2 - 1) / 2 + down * math.cos(theta))
        crops[i] = _warp(
            gray,
            centre,
            (max(width * settings.side, 1.0), max(height * settings.side, 1.0)),
            angle,
            size,
            settings.antialias,
        )
    return crops


def eye_angle(landmarks: np.ndarray) -> float:
    """Counter-clockwise rotation in degrees that levels the eyes.

    Args:
        landmarks: (5, 2) points; the first two are the eyes on the image's left and right.
    """
    (left_x, left_y), (right_x, right_y) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(right_y - left_y, right_x - left_x))


def _warp(
    gray: np.ndarray,
    centre: tuple[float, float],
    extent: tuple[float, float],
    angle: float,
    size: int,
    antialias: bool,
) -> np.ndarray:
    """Rotate the rectangle of `extent` (width, height) around `centre` by `angle` and
    resample it to a `size` square."""
    cut = int(min(math.ceil(max(extent)), size * _MAX_OVERSAMPLE)) if antialias else size
    cut = max(cut, size)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    matrix[0] *= cut / extent[0]
    matrix[1] *= cut / extent[1]
    matrix[:, 2] += ((cut - 1) / 2 - centre[0] * cut / extent[0], (cut - 1) / 2 - centre[1] * cut / extent[1])
    square = cv2.warpAffine(
        gray, matrix, (cut, cut), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if cut == size:
        return square
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
