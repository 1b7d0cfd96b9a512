"""Shared vocabulary of fervideo: the label order, the error type and the `Faces` batch.

Everything that crosses a stage boundary (detect -> crop -> classify -> track) is a `Faces`:
parallel numpy arrays with one row per face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np

#: The seven FER2013 classes in the dataset's own label order (0..6). The only source of
#: this order in the project: training, model metadata and the tables all read it here.
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass(frozen=True)
class Faces:
    """Faces found in one or more frames of one video; row i is one face.

    Attributes:
        frame_index: (n,) int64, index of the source frame.
        xyxy: (n, 4) float32, box corners in source-frame pixels.
        confidence: (n,) float32 detector score in [0, 1].
        landmarks: (n, 5, 2) float32 or None: right eye, left eye, nose tip, right and left
            mouth corner (as seen in the image: "right eye" is the one on the image's left).
        crops: (n, 48, 48) uint8 or None; never written to disk.
        probs: (n, 7) float32 or None, columns in `EMOTIONS` order.
        track_id: (n,) int64 or None.
    """

    frame_index: np.ndarray
    xyxy: np.ndarray
    confidence: np.ndarray
    landmarks: np.ndarray | None = None
    crops: np.ndarray | None = None
    probs: np.ndarray | None = None
    track_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.frame_index)
        expected = {
            "frame_index": (n,),
            "xyxy": (n, 4),
            "confidence": (n,),
            "landmarks": (n, 5, 2),
            "probs": (n, len(EMOTIONS)),
            "track_id": (n,),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and np.shape(value) != shape:
                raise ValueError(f"{name} must have shape {shape}, but got {np.shape(value)}")
        if self.crops is not None and (self.crops.ndim != 3 or len(self.crops) != n):
            raise ValueError(f"crops must have shape ({n}, H, W), but got {self.crops.shape}")

    def __len__(self) -> int:
        return len(self.frame_index)

    def __getitem__(self, index: int | np.integer | slice | np.ndarray | Sequence[int]) -> Faces:
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Faces(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                for f in fields(self)
            }
        )

    def with_(self, **changes: np.ndarray) -> Faces:
        """A copy with some fields replaced (the arrays are shared, so this is cheap)."""
        return replace(self, **changes)

    @classmethod
    def empty(cls) -> Faces:
        return cls(
            frame_index=np.zeros(0, np.int64),
            xyxy=np.zeros((0, 4), np.float32),
            confidence=np.zeros(0, np.float32),
        )

    @classmethod
    def concat(cls, parts: Sequence[Faces]) -> Faces:
        """Stack batches row-wise; an optional field survives only if every part has it."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        merged = {}
        for f in fields(cls):
            values = [getattr(p, f.name) for p in parts]
            merged[f.name] = None if any(v is None for v in values) else np.concatenate(values)
        return cls(**merged)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of (N, 4) and (K, 4) xyxy boxes, as an (N, K) matrix."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-9), 0.0).astype(np.float32)
