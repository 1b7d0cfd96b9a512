"""What the report shows about one video, computed from its four tables (no drawing here).

Shares are of faces: in a second, the share of the face rows whose top class is the
expression (the timeline's `<class>_share`); over several seconds, the same share pooled over
their face rows. "Faces on screen" is the mean number of faces per analysed frame, so that two
faces are never read as two hundred face rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fervideo.config import ReportConfig
from fervideo.core import EMOTIONS
from fervideo.tables import PEAKS, SHARES, Tables


def expression_shares(timeline: pd.DataFrame) -> pd.Series:
    """Share (0-1) of the face rows of these timeline rows showing each expression; NaN
    without faces."""
    faces = timeline["faces"].to_numpy(np.float64)
    counts = np.rint(np.nan_to_num(timeline[list(SHARES)].to_numpy(np.float64)) * faces[:, None]).sum(axis=0)
    total = faces.sum()
    return pd.Series(counts / total if total else np.full(len(EMOTIONS), np.nan), index=list(EMOTIONS))


def faces_on_screen(timeline: pd.DataFrame) -> pd.Series:
    """Mean faces per analysed frame in each second (0 where no frame was analysed)."""
    frames = timeline["frames"].to_numpy(np.float64)
    faces = timeline["faces"].to_numpy(np.float64)
    return pd.Series(
        np.divide(faces, frames, out=np.zeros_like(faces), where=frames > 0), index=timeline.index
    )


@dataclass(frozen=True)
class Window:
    """Figures of a stretch of the video (the opening, the ending, or the whole).

    Attributes:
        label: e.g. "first 3 s".
        shares: share of faces showing each expression (NaN without faces).
        on_screen: mean faces per analysed frame.
    """

    label: str
    shares: pd.Series
    on_screen: float

    @classmethod
    def of(cls, label: str, timeline: pd.DataFrame) -> Window:
        frames = timeline["frames"].sum()
        return cls(label, expression_shares(timeline), timeline["faces"].sum() / frames if frames else 0.0)


@dataclass(frozen=True)
class KeyMoment:
    """The second where an expression's share of faces peaks (the summary's `<class>_peak`).

    Attributes:
        emotion: the expression.
        second: the second `[second, second + 1)`.
        share: share of that second's faces showing it.
        on_screen: mean faces per analysed frame in that second.
        faces: rows of the faces table showing it in that second, most probable first.
    """

    emotion: str
    second: int
    share: float
    on_screen: float
    faces: pd.DataFrame


@dataclass(frozen=True)
class VideoView:
    """One video as the report shows it.

    Attributes:
        video: its id.
        summary: its summary row.
        timeline: its timeline table, with an `on_screen` column added.
        faces: its faces table.
        tracks: its longest tracks, longest first (at most `ReportConfig.longest_tracks`).
        windows: the whole video, its opening and its ending.
        moments: its key moments, in class order.
        track_faces: row label in `faces` of each longest track's most confident face.
        thumbnail_frame: the frame shown in the index: the first face of the top expression's
            key moment, else the first face, else the middle frame.
    """

    video: str
    summary: pd.Series
    timeline: pd.DataFrame
    faces: pd.DataFrame
    tracks: pd.DataFrame
    windows: tuple[Window, Window, Window]
    moments: list[KeyMoment]
    track_faces: dict[int, int]
    thumbnail_frame: int

    @property
    def name(self) -> str:
        """The source's folder and file name, e.g. "ad1/viewer3.mp4"."""
        path = Path(self.summary["path"])
        return f"{path.parent.name}/{path.name}" if path.parent.name else path.name

    @property
    def is_still(self) -> bool:
        """An image (a one-frame video at time 0)."""
        return self.summary["fps"] == 0 and self.summary["duration"] == 0

    @property
    def shares(self) -> pd.Series:
        return self.windows[0].shares

    @classmethod
    def of(cls, tables: Tables, config: ReportConfig) -> VideoView:
        """The view of one video's tables (as `ResultStore.read(video)` gives them)."""
        summary = tables.summary.iloc[0]
        timeline = tables.timeline.sort_values("second", ignore_index=True)
        timeline["on_screen"] = faces_on_screen(timeline)
        edge = config.edge_seconds
        windows = (
            Window.of("whole video", timeline),
            Window.of(f"first {edge} s", timeline.head(edge)),
            Window.of(f"last {edge} s", timeline.tail(edge)),
        )
        moments = key_moments(summary, timeline, tables.faces, config.moment_faces)
        tracks = tables.tracks.sort_values(["frames", "track"], ascending=[False, True])
        tracks = tracks.head(config.longest_tracks).reset_index(drop=True)
        faces = tables.faces
        best = faces[faces["track"].isin(tracks["track"])].groupby("track")["score"].idxmax()
        return cls(
            video=summary["video"],
            summary=summary,
            timeline=timeline,
            faces=faces,
            tracks=tracks,
            windows=windows,
            moments=moments,
            track_faces={int(track): int(label) for track, label in best.items()},
            thumbnail_frame=_thumbnail_frame(summary, moments, tables.faces),
        )


def key_moments(
    summary: pd.Series, timeline: pd.DataFrame, faces: pd.DataFrame, per_moment: int
) -> list[KeyMoment]:
    """Each expression's peak second with up to `per_moment` faces showing it there."""
    seconds = np.floor(faces["timestamp"].to_numpy()).astype(np.int64)
    moments = []
    for emotion, peak in zip(EMOTIONS, PEAKS, strict=True):
        if pd.isna(summary[peak]):
            continue
        second = int(summary[peak])
        row = timeline.loc[timeline["second"] == second].iloc[0]
        shown = faces[(seconds == second) & (faces["emotion"] == emotion)]
        shown = shown.sort_values(emotion, ascending=False).head(per_moment)
        moments.append(
            KeyMoment(emotion, second, float(row[f"{emotion}_share"]), float(row["on_screen"]), shown)
        )
    return moments


def _thumbnail_frame(summary: pd.Series, moments: list[KeyMoment], faces: pd.DataFrame) -> int:
    top = next((m for m in moments if m.emotion == summary["emotion"] and len(m.faces)), None)
    if top is not None:
        return int(top.faces["frame"].iloc[0])
    if len(faces):
        return int(faces["frame"].min())
    return max(int(summary["frames"]) // 2, 0)
