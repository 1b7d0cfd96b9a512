"""The four output tables: their Arrow schemas, the run settings they record, and reading
them back.

Every file carries the run's settings as Parquet key-value metadata under keys starting with
"fervideo." (`RunInfo`). How the rows are computed is `fervideo.aggregate`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fervideo.core import EMOTIONS

TABLES = ("faces", "timeline", "tracks", "summary")
SHARES = tuple(f"{e}_share" for e in EMOTIONS)
PEAKS = tuple(f"{e}_peak" for e in EMOTIONS)

_VIDEO = pa.field("video", pa.string(), nullable=False)
_PROBS = [pa.field(e, pa.float32()) for e in EMOTIONS]
_EMOTION = pa.field("emotion", pa.string())

SCHEMAS: dict[str, pa.Schema] = {
    "faces": pa.schema(
        [
            _VIDEO,
            pa.field("frame", pa.int64(), nullable=False),
            pa.field("timestamp", pa.float64(), nullable=False),
            pa.field("track", pa.int64(), nullable=False),
            *(pa.field(c, pa.float32(), nullable=False) for c in ("x", "y", "w", "h", "score")),
            *(f.with_nullable(False) for f in _PROBS),
            _EMOTION.with_nullable(False),
        ]
    ),
    "timeline": pa.schema(
        [
            _VIDEO,
            pa.field("second", pa.int64(), nullable=False),
            pa.field("frames", pa.int64(), nullable=False),
            pa.field("faces", pa.int64(), nullable=False),
            *_PROBS,
            *(pa.field(c, pa.float32()) for c in SHARES),
        ]
    ),
    "tracks": pa.schema(
        [
            _VIDEO,
            pa.field("track", pa.int64(), nullable=False),
            pa.field("first_timestamp", pa.float64(), nullable=False),
            pa.field("last_timestamp", pa.float64(), nullable=False),
            pa.field("frames", pa.int64(), nullable=False),
            *(f.with_nullable(False) for f in _PROBS),
            _EMOTION.with_nullable(False),
        ]
    ),
    "summary": pa.schema(
        [
            _VIDEO,
            pa.field("path", pa.string(), nullable=False),
            pa.field("duration", pa.float64(), nullable=False),
            pa.field("fps", pa.float64(), nullable=False),
            pa.field("width", pa.int64(), nullable=False),
            pa.field("height", pa.int64(), nullable=False),
            pa.field("codec", pa.string(), nullable=False),
            pa.field("frames", pa.int64(), nullable=False),
            pa.field("frames_decoded", pa.int64(), nullable=False),
            pa.field("complete", pa.bool_(), nullable=False),
            pa.field("frames_analysed", pa.int64(), nullable=False),
            pa.field("faces", pa.int64(), nullable=False),
            pa.field("tracks", pa.int64(), nullable=False),
            *_PROBS,
            _EMOTION,
            *(pa.field(c, pa.int64()) for c in PEAKS),
            pa.field("model", pa.string(), nullable=False),
            pa.field("model_sha256", pa.string(), nullable=False),
            pa.field("detector", pa.string(), nullable=False),
            pa.field("sample_fps", pa.float64()),
            pa.field("tta", pa.string(), nullable=False),
            pa.field("fervideo_version", pa.string(), nullable=False),
        ]
    ),
}


class Tables(NamedTuple):
    """The four tables of one or more videos, as pandas DataFrames."""

    faces: pd.DataFrame
    timeline: pd.DataFrame
    tracks: pd.DataFrame
    summary: pd.DataFrame


#: Metadata keys of the settings that change a video's results, and their names in messages.
RESULT_SETTINGS = {
    "fervideo.model_sha256": "model",
    "fervideo.detector": "detector",
    "fervideo.sampling": "sampling",
    "fervideo.tta": "TTA",
}


@dataclass(frozen=True)
class RunInfo:
    """The settings a table was made with; stored in every file's key-value metadata.

    Attributes:
        model: the model's name.
        model_sha256: checksum of the `.keras` file.
        detector: detector name and engine, e.g. "yunet (yuface 2023.5.1)".
        sample_fps: frames analysed per second of video; None means every frame.
        version: fervideo's version.
        tta: test-time augmentation mode ("none", "flip" or "crops").
    """

    model: str
    model_sha256: str
    detector: str
    sample_fps: float | None
    version: str
    tta: str

    @property
    def sampling(self) -> str:
        return "every frame" if self.sample_fps is None else f"{self.sample_fps:g} fps"

    def metadata(self) -> dict[str, str]:
        """Parquet key-value metadata."""
        return {
            "fervideo.model": self.model,
            "fervideo.model_sha256": self.model_sha256,
            "fervideo.detector": self.detector,
            "fervideo.sampling": self.sampling,
            "fervideo.tta": self.tta,
            "fervideo.version": self.version,
        }

    def differences(self, stored: Mapping[str, str]) -> list[tuple[str, str, str]]:
        """The result-changing settings (model file, detector, sampling, TTA) in which another
        run's `metadata()` differs from this run's.

        Returns:
            (setting, stored value, this run's value) per difference, e.g.
            `("sampling", "every frame", "5 fps")`; a setting the other run did not record
            counts as different.
        """
        mine = self.metadata()
        return [
            (label, _setting_text(stored, key), _setting_text(mine, key))
            for key, label in RESULT_SETTINGS.items()
            if stored.get(key) != mine[key]
        ]


def _setting_text(metadata: Mapping[str, str], key: str) -> str:
    value = metadata.get(key)
    if value is None:
        return "not recorded"
    if key == "fervideo.model_sha256":  # the name alone may hide other weights
        return f"{metadata.get('fervideo.model', '?')} (sha256 {value[:8]})"
    return value


@dataclass(frozen=True)
class VideoMeta:
    """What the summary says about the source video.

    Attributes:
        video: the video's id in the tables.
        path: the source file.
        duration_s: seconds covered by the decoded frames.
        fps: the container's average frame rate (0 for a still).
        width: frame width in pixels.
        height: frame height in pixels.
        codec: codec FourCC or image format.
        frames: frames the container announces.
        frames_decoded: frames decoded from the source.
        complete: decoding reached the end the container announces.
    """

    video: str
    path: str
    duration_s: float
    fps: float
    width: int
    height: int
    codec: str
    frames: int
    frames_decoded: int
    complete: bool


def read_tables(paths: Mapping[str, Path | list[Path]]) -> Tables:
    """Read the four tables from Parquet files (a file or list of files per table).

    Columns keep their schema's types; an empty faces or tracks table keeps its columns.
    """
    frames = {}
    for name in TABLES:
        files = paths[name] if isinstance(paths[name], list) else [paths[name]]
        parts = [pq.read_table(f, schema=SCHEMAS[name]) for f in files]
        table = pa.concat_tables(parts) if parts else SCHEMAS[name].empty_table()
        frames[name] = table.replace_schema_metadata(None).to_pandas()
    return Tables(**frames)
