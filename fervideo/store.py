"""The output folder: one Parquet file per table per video, committed atomically.

Layout::

    <out>/faces/<video>.parquet
    <out>/timeline/<video>.parquet
    <out>/tracks/<video>.parquet
    <out>/summary/<video>.parquet

so `pandas.read_parquet("<out>/faces")` reads every video's faces at once. A video's files
are written under temporary names (starting with "." and ending in ".tmp", which Arrow,
Spark and `*.parquet` globs skip) and renamed into place when the video is complete, its
summary last. A video is finished exactly when its summary file exists.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fervideo.tables import SCHEMAS, TABLES, RunInfo, Tables, read_tables

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def video_id(path: str | Path) -> str:
    """The id of a source file in the tables: its name's stem plus a hash of its absolute path,
    so two files with the same name in different folders never collide.

    Example:
        >>> video_id("clips/ad.mp4")  # the digits depend on the folder
        'ad-1f0c3a9e'
    """
    path = Path(path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = _UNSAFE.sub("_", path.stem).strip("._") or "video"
    return f"{stem}-{digest}"


class PendingVideo:
    """A video's tables being written; nothing is visible until `commit`.

    Attributes:
        faces: the faces table's writer; write record batches to it as frames are analysed.
    """

    def __init__(self, store: ResultStore, video: str, run: RunInfo) -> None:
        self._store = store
        self._video = video
        self._run = run
        self._temps = {
            t: store.path(t, video).with_name(f".{video}.parquet.{os.getpid()}.tmp") for t in TABLES
        }
        for path in self._temps.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        schema = SCHEMAS["faces"].with_metadata(run.metadata())
        self.faces = pq.ParquetWriter(self._temps["faces"], schema)

    def commit(self, timeline: pa.Table, tracks: pa.Table, summary: pa.Table) -> None:
        """Write the aggregate tables and move all four files into place, summary last."""
        self.faces.close()
        for name, table in (("timeline", timeline), ("tracks", tracks), ("summary", summary)):
            pq.write_table(table.replace_schema_metadata(self._run.metadata()), self._temps[name])
        self._store.path("summary", self._video).unlink(missing_ok=True)  # not done until the end
        for name in TABLES:
            os.replace(self._temps[name], self._store.path(name, self._video))

    def discard(self) -> None:
        """Delete whatever was not committed."""
        self.faces.close()
        for path in self._temps.values():
            path.unlink(missing_ok=True)


class ResultStore:
    """The output folder of `analyze`: where each table of each video lives.

    Args:
        root: the output folder; created when the first video is written.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, table: str, video: str) -> Path:
        return self.root / table / f"{video}.parquet"

    def is_done(self, video: str) -> bool:
        return self.path("summary", video).is_file()

    def read(self, video: str) -> Tables:
        """The four tables of one finished video."""
        return read_tables({t: self.path(t, video) for t in TABLES})

    @contextmanager
    def writing(self, video: str, run: RunInfo) -> Iterator[PendingVideo]:
        """Write one video's tables; if the block raises, nothing of it is left behind and
        any earlier finished result of the video stays as it was."""
        for stale in self.root.glob(f"*/.{video}.parquet.*.tmp"):  # left by a killed run
            stale.unlink(missing_ok=True)
        pending = PendingVideo(self, video, run)
        try:
            yield pending
        finally:
            pending.discard()  # after a commit there is nothing left to discard
