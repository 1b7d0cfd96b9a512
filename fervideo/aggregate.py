"""Rows of the four tables from classified, tracked faces.

`faces` is written in record batches as frames are analysed; `timeline`, `tracks` and
`summary` are small aggregates kept up to date by `Aggregates`, so memory stays constant
however long the video is.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from fervideo.core import EMOTIONS, Faces
from fervideo.tables import PEAKS, SCHEMAS, SHARES, RunInfo, VideoMeta


def faces_batch(video: str, faces: Faces, timestamps: np.ndarray) -> pa.RecordBatch:
    """Rows of the faces table for classified, tracked faces.

    Args:
        video: the video's id.
        faces: n faces with `probs` and `track_id` set.
        timestamps: (n,) float64 timestamp in seconds of each face's frame.
    """
    x1, y1, x2, y2 = faces.xyxy.T
    columns = {
        "video": np.full(len(faces), video, object),
        "frame": faces.frame_index,
        "timestamp": np.asarray(timestamps, np.float64),
        "track": faces.track_id,
        "x": x1,
        "y": y1,
        "w": x2 - x1,
        "h": y2 - y1,
        "score": faces.confidence,
        **{e: faces.probs[:, i] for i, e in enumerate(EMOTIONS)},
        "emotion": np.asarray(EMOTIONS, object)[faces.probs.argmax(axis=1)],
    }
    return pa.RecordBatch.from_pydict(columns, schema=SCHEMAS["faces"])


class Aggregates:
    """Running per-second and per-track sums, from which the other three tables are built.

    Track ids must be small non-negative integers (as `IoUTracker` gives).
    """

    def __init__(self) -> None:
        self.second_frames = np.zeros(0, np.int64)
        self.second_faces = np.zeros(0, np.int64)
        self.second_probs = np.zeros((0, len(EMOTIONS)), np.float64)
        self.second_tops = np.zeros((0, len(EMOTIONS)), np.int64)
        self.track_frames = np.zeros(0, np.int64)
        self.track_first = np.zeros(0, np.float64)
        self.track_last = np.zeros(0, np.float64)
        self.track_probs = np.zeros((0, len(EMOTIONS)), np.float64)
        self.frames_analysed = 0

    @property
    def n_faces(self) -> int:
        return int(self.second_faces.sum())

    @property
    def n_tracks(self) -> int:
        return int((self.track_frames > 0).sum())

    def add_frames(self, timestamps: np.ndarray) -> None:
        """Count analysed frames (with or without faces) by timestamp in seconds."""
        seconds = np.floor(np.asarray(timestamps, np.float64)).astype(np.int64)
        if not len(seconds):
            return
        self._grow_seconds(seconds.max() + 1)
        np.add.at(self.second_frames, seconds, 1)
        self.frames_analysed += len(seconds)

    def add_faces(self, faces: Faces, timestamps: np.ndarray) -> None:
        """Add classified, tracked faces; `timestamps` (n,) are their frames' times."""
        if not len(faces):
            return
        timestamps = np.asarray(timestamps, np.float64)
        seconds = np.floor(timestamps).astype(np.int64)
        tops = np.eye(len(EMOTIONS), dtype=np.int64)[faces.probs.argmax(axis=1)]
        self._grow_seconds(seconds.max() + 1)
        np.add.at(self.second_faces, seconds, 1)
        np.add.at(self.second_probs, seconds, faces.probs)
        np.add.at(self.second_tops, seconds, tops)
        tracks = faces.track_id
        grown = max(tracks.max() + 1 - len(self.track_frames), 0)
        self.track_frames = np.pad(self.track_frames, (0, grown))
        self.track_first = np.pad(self.track_first, (0, grown), constant_values=np.inf)
        self.track_last = np.pad(self.track_last, (0, grown), constant_values=-np.inf)
        self.track_probs = np.pad(self.track_probs, ((0, grown), (0, 0)))
        np.add.at(self.track_frames, tracks, 1)
        np.minimum.at(self.track_first, tracks, timestamps)
        np.maximum.at(self.track_last, tracks, timestamps)
        np.add.at(self.track_probs, tracks, faces.probs)

    def _grow_seconds(self, n: int) -> None:
        grown = max(n - len(self.second_frames), 0)
        self.second_frames = np.pad(self.second_frames, (0, grown))
        self.second_faces = np.pad(self.second_faces, (0, grown))
        self.second_probs = np.pad(self.second_probs, ((0, grown), (0, 0)))
        self.second_tops = np.pad(self.second_tops, ((0, grown), (0, 0)))

    def timeline(self, video: str, duration_s: float) -> pa.Table:
        """One row per second of the video, including seconds without faces (whose
        probability and share columns are null)."""
        self._grow_seconds(max(math.ceil(duration_s), 1))
        faces = self.second_faces
        with np.errstate(invalid="ignore", divide="ignore"):
            means = self.second_probs / faces[:, None]
            shares = self.second_tops / faces[:, None]
        columns = {
            "video": [video] * len(faces),
            "second": np.arange(len(faces)),
            "frames": self.second_frames,
            "faces": faces,
            **_float_columns(EMOTIONS, means),
            **_float_columns(SHARES, shares),
        }
        return pa.Table.from_pydict(columns, schema=SCHEMAS["timeline"])

    def tracks(self, video: str) -> pa.Table:
        """One row per track: when it was seen, how often, and its mean probabilities."""
        seen = self.track_frames > 0
        means = self.track_probs[seen] / self.track_frames[seen, None]
        columns = {
            "video": [video] * int(seen.sum()),
            "track": np.flatnonzero(seen),
            "first_timestamp": self.track_first[seen],
            "last_timestamp": self.track_last[seen],
            "frames": self.track_frames[seen],
            **_float_columns(EMOTIONS, means),
            "emotion": [EMOTIONS[i] for i in means.argmax(axis=1)],
        }
        return pa.Table.from_pydict(columns, schema=SCHEMAS["tracks"])

    def summary(self, meta: VideoMeta, run: RunInfo) -> pa.Table:
        """One row for the video: its metadata, counts, mean probabilities over all faces,
        dominant class, and the second at which each class's share of faces peaks."""
        n_faces = self.n_faces
        means = self.second_probs.sum(axis=0) / n_faces if n_faces else np.full(len(EMOTIONS), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = self.second_tops / self.second_faces[:, None]
        peaks = [_peak_second(shares[:, i]) for i in range(len(EMOTIONS))]
        columns = {
            "video": [meta.video],
            "path": [meta.path],
            "duration": [meta.duration_s],
            "fps": [meta.fps],
            "width": [meta.width],
            "height": [meta.height],
            "codec": [meta.codec],
            "frames": [meta.frames],
            "frames_decoded": [meta.frames_decoded],
            "complete": [meta.complete],
            "frames_analysed": [self.frames_analysed],
            "faces": [n_faces],
            "tracks": [self.n_tracks],
            **{k: [v[0]] for k, v in _float_columns(EMOTIONS, means[None, :]).items()},
            "emotion": [EMOTIONS[int(means.argmax())] if n_faces else None],
            **{k: [v] for k, v in zip(PEAKS, peaks, strict=True)},
            "model": [run.model],
            "model_sha256": [run.model_sha256],
            "detector": [run.detector],
            "sample_fps": [run.sample_fps],
            "tta": [run.tta],
            "fervideo_version": [run.version],
        }
        return pa.Table.from_pydict(columns, schema=SCHEMAS["summary"])


def _float_columns(names: tuple[str, ...], values: np.ndarray) -> dict[str, pa.Array]:
    """float32 columns from an (n, len(names)) array, with NaN stored as null."""
    return {name: pa.array(values[:, i], pa.float32(), from_pandas=True) for i, name in enumerate(names)}


def _peak_second(shares: np.ndarray) -> int | None:
    """The earliest second with the highest positive share, or None if the share is never > 0."""
    if not np.any(shares > 0):
        return None
    return int(np.nanargmax(shares))
