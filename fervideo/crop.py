"""Face crops for the expression models: square, upright, grayscale, 48x48 uint8.

The crop is a square of side `max(w, h) * (1 + margin)` centred on the detector's box. When
the detector gives eye landmarks, the square is rotated about its centre so that the eyes
are level. Pixels outside the frame are black. Pixel values stay 0-255: every model
normalises its input itself, with its own stored statistics.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from fervideo.config import CROP_SIZE, AnalyzeConfig
from fervideo.core import Faces

#: A large face is first cut at most this many times the crop size, then area-averaged
#: down to the crop size (a direct affine warp would alias).
_MAX_OVERSAMPLE = 4


def crop_faces(
    image: np.ndarray, faces: Faces, size: int = CROP_SIZE, margin: float = AnalyzeConfig().margin
) -> np.ndarray:
    """Cut one square grayscale crop per face.

    Args:
        image: (H, W, 3) uint8 BGR frame the faces were found in.
        faces: n faces; `landmarks`, when present, rotates each crop upright.
        size: side of the output crops in pixels.
        margin: crop side = box's longer side x (1 + margin).

    Returns:
        (n, size, size) uint8 crops, in the order of `faces`.

    Example:
        >>> crops = crop_faces(frame, detector.detect(frame))
        >>> crops.shape, crops.dtype
        ((1, 48, 48), dtype('uint8'))
    """
    crops = np.zeros((len(faces), size, size), np.uint8)
    if not len(faces):
        return crops
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    for i, (x1, y1, x2, y2) in enumerate(faces.xyxy):
        side = max(x2 - x1, y2 - y1) * (1 + margin)
        angle = 0.0 if faces.landmarks is None else eye_angle(faces.landmarks[i])
        centre = ((x1 + x2 - 1) / 2, (y1 + y2 - 1) / 2)  # box edges -> pixel-centre coordinates
        crops[i] = _warp_square(gray, centre, max(side, 1.0), angle, size)
    return crops


def eye_angle(landmarks: np.ndarray) -> float:
    """Counter-clockwise rotation in degrees that levels the eyes.

    Args:
        landmarks: (5, 2) points; the first two are the eyes on the image's left and right.
    """
    (left_x, left_y), (right_x, right_y) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(right_y - left_y, right_x - left_x))


def _warp_square(
    gray: np.ndarray, centre: tuple[float, float], side: float, angle: float, size: int
) -> np.ndarray:
    """Rotate the square of `side` around `centre` by `angle` and resample it to `size`."""
    cut = int(min(math.ceil(side), size * _MAX_OVERSAMPLE))
    cut = max(cut, size)
    matrix = cv2.getRotationMatrix2D(centre, angle, cut / side)
    matrix[:, 2] += ((cut - 1) / 2 - centre[0], (cut - 1) / 2 - centre[1])
    square = cv2.warpAffine(
        gray, matrix, (cut, cut), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    if cut == size:
        return square
    return cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
