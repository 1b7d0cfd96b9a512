"""The output folder: one Parquet file per table per video, committed atomically.

Layout::

    <out>/faces/<video>.parquet
    <out>/timeline/<video>.parquet
    <out>/tracks/<video>.parquet
    <out>/summary/<video>.parquet

so `pandas.read_parquet("<out>/faces")` reads every video's faces at once. A video's files
are written under temporary names (starting with "." and ending in ".tmp", which Arrow,
Spark and `*.parquet` globs skip) and renamed into place when the video is complete, its
summary last. A video is finished exactly when its summary file exists; the summary's
key-value metadata says which settings it was made with (`stored_run`).

A file-system error (`--out` is a file, read-only, or the disk is full) becomes a one-line
`FervideoError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fervideo.errors import FervideoError
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


@contextmanager
def _writing_to(path: Path) -> Iterator[None]:
    """Turn an `OSError` of the block into a one-sentence `FervideoError` about `path`."""
    try:
        yield
    except OSError as err:
        raise FervideoError(f"cannot write {path}: {_reason(err)}.") from err


def _reason(err: OSError) -> str:
    """The errno's text ("No space left on device"): Arrow's own messages run to several
    sentences and repeat the path."""
    return os.strerror(err.errno) if err.errno else err.strerror or str(err)


class PendingVideo:
    """A video's tables being written; nothing is visible until `commit`.

    Raises:
        FervideoError: any file-system error while writing (see the module's docstring).
    """

    def __init__(self, store: ResultStore, video: str, run: RunInfo) -> None:
        self._store = store
        self._video = video
        self._run = run
        self._temps = {
            t: store.path(t, video).with_name(f".{video}.parquet.{os.getpid()}.tmp") for t in TABLES
        }
        self._faces: pq.ParquetWriter | None = None
        for path in self._temps.values():
            with _writing_to(path.parent):
                path.parent.mkdir(parents=True, exist_ok=True)
        schema = SCHEMAS["faces"].with_metadata(run.metadata())
        with self._writing("faces"):
            self._faces = pq.ParquetWriter(self._temps["faces"], schema)

    def write_faces(self, batch: pa.RecordBatch) -> None:
        """Append rows to the faces table (as frames are analysed)."""
        with self._writing("faces"):
            self._faces.write_batch(batch)

    def commit(self, timeline: pa.Table, tracks: pa.Table, summary: pa.Table) -> None:
        """Write the aggregate tables and move all four files into place, summary last."""
        with self._writing("faces"):
            self._faces.close()
        for name, table in (("timeline", timeline), ("tracks", tracks), ("summary", summary)):
            with self._writing(name):
                pq.write_table(table.replace_schema_metadata(self._run.metadata()), self._temps[name])
        with self._writing("summary"):
            self._store.path("summary", self._video).unlink(missing_ok=True)  # not done until the end
        for name in TABLES:
            with self._writing(name):
                os.replace(self._temps[name], self._store.path(name, self._video))

    def _writing(self, table: str) -> AbstractContextManager[None]:
        """Errors about a table's temporary file are reported on the file it becomes."""
        return _writing_to(self._store.path(table, self._video))

    def discard(self) -> None:
        """Delete whatever was not committed, as far as the file system lets it (a temporary
        file left behind is invisible to readers and deleted by the video's next run)."""
        if self._faces is not None:
            with suppress(OSError):  # e.g. the disk is full: the file is deleted anyway
                self._faces.close()
        for path in self._temps.values():
            with suppress(OSError):  # the error that got us here is the one to report
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

    def stored_run(self, video: str) -> dict[str, str]:
        """The run settings a finished video was analysed with: its summary file's
        "fervideo." key-value metadata (see `RunInfo.metadata`).

        Raises:
            FervideoError: the summary file cannot be read.
        """
        path = self.path("summary", video)
        try:
            metadata = pq.read_schema(path).metadata or {}
        except OSError as err:
            raise FervideoError(f"cannot read {path}: {_reason(err)}.") from err
        except pa.ArrowException as err:
            raise FervideoError(
                f"{path} is not a readable Parquet file; pass --overwrite to redo its video."
            ) from err
        return {k.decode(): v.decode() for k, v in metadata.items() if k.startswith(b"fervideo.")}

    def read(self, video: str) -> Tables:
        """The four tables of one finished video."""
        return read_tables({t: self.path(t, video) for t in TABLES})

    @contextmanager
    def writing(self, video: str, run: RunInfo) -> Iterator[PendingVideo]:
        """Write one video's tables; if the block raises, nothing of it is left behind and
        any earlier finished result of the video stays as it was."""
        for stale in self.root.glob(f"*/.{video}.parquet.*.tmp"):  # left by a killed run
            with _writing_to(stale):
                stale.unlink(missing_ok=True)
        pending = PendingVideo(self, video, run)
        try:
            yield pending
        finally:
            pending.discard()  # after a commit there is nothing left to discard
