"""Test-time augmentation: several views of each face crop whose predictions are averaged.

Shared by `analyze` (fervideo.classify) and `fervideo evaluate` so both mean the same thing.
Cost: the classifier runs once per view (flip: 2x, crops: 10x).
"""

from __future__ import annotations

import numpy as np

from fervideo.config import TTA_MODES  # defined there so settings validate without numpy

#: Pixel offsets of the "crops" mode: centre and four 3-pixel shifts, each also mirrored.
_SHIFTS = ((0, 0), (-3, 0), (3, 0), (0, -3), (0, 3))


def tta_views(crops: np.ndarray, mode: str) -> list[np.ndarray]:
    """Views of (n, H, W[, C]) crops for TTA `mode`; the first view is the crops themselves."""
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; expected one of {', '.join(TTA_MODES)}")
    if mode == "none":
        return [crops]
    shifts = _SHIFTS if mode == "crops" else _SHIFTS[:1]
    views = [_shift(crops, dy, dx) for dy, dx in shifts]
    return views + [view[:, :, ::-1] for view in views]


def _shift(crops: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by (dy, dx) pixels, filling the uncovered border by reflection."""
    if dy == dx == 0:
        return crops
    pad = max(abs(dy), abs(dx))
    widths = [(0, 0), (pad, pad), (pad, pad)] + [(0, 0)] * (crops.ndim - 3)
    padded = np.pad(crops, widths, mode="reflect")
    h, w = crops.shape[1:3]
    return padded[:, pad - dy : pad - dy + h, pad - dx : pad - dx + w]
