"""Track ids that follow one person's face across sampled frames, by box overlap."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fervideo.config import AnalyzeConfig
from fervideo.core import Faces, box_iou

_DEFAULTS = AnalyzeConfig()


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_seen_s: float


class IoUTracker:
    """Greedy IoU matching of each frame's faces to the tracks seen in recent frames.

    Pairs are taken in order of decreasing IoU, so each face continues the track it overlaps
    most, if that overlap is at least `iou_threshold`. A track not seen for more than
    `max_gap_s` seconds ends; a face that continues no track starts a new one. Ids are
    0, 1, 2, ... in order of first appearance. Call `reset()` between videos.

    Args:
        iou_threshold: minimum IoU between a face and a track's last box.
        max_gap_s: seconds a track may go unseen and still be continued.

    Example:
        >>> tracker = IoUTracker()
        >>> for time_s, faces in frames:  # faces of one frame, possibly empty
        ...     faces = tracker.update(faces, time_s)  # faces.track_id is now set
    """

    def __init__(
        self, iou_threshold: float = _DEFAULTS.iou_threshold, max_gap_s: float = _DEFAULTS.max_track_gap_s
    ) -> None:
        self.iou_threshold = iou_threshold
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, faces: Faces, time_s: float) -> Faces:
        """Assign track ids to the faces of one frame.

        Args:
            faces: the faces of a single frame (may be empty).
            time_s: the frame's timestamp; frames must come in time order.

        Returns:
            `faces` with `track_id` (n,) int64 filled in.
        """
        self._tracks = [t for t in self._tracks if time_s - t.last_seen_s <= self.max_gap_s]
        ids = np.full(len(faces), -1, np.int64)
        if len(faces) and self._tracks:
            iou = box_iou(faces.xyxy, np.stack([t.box for t in self._tracks]))
            continued: set[int] = set()
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                face, track = np.unravel_index(flat, iou.shape)
                if iou[face, track] < self.iou_threshold:
                    break
                if ids[face] == -1 and track not in continued:
                    continued.add(track)
                    ids[face] = self._tracks[track].track_id
                    self._tracks[track].box = faces.xyxy[face]
                    self._tracks[track].last_seen_s = time_s
        for face in np.flatnonzero(ids == -1):
            ids[face] = self._next_id
            self._tracks.append(_Track(self._next_id, faces.xyxy[face], time_s))
            self._next_id += 1
        return faces.with_(track_id=ids)
