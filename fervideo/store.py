"""The output folder: one folder of four Parquet tables per video, published atomically.

Layout::

    <out>/videos/<video>/faces.parquet
    <out>/videos/<video>/timeline.parquet
    <out>/videos/<video>/tracks.parquet
    <out>/videos/<video>/summary.parquet
    <out>/.fervideo/                      locks and folders being written (hidden)

A video's four files are written into a hidden staging folder and published with one rename
of that folder, so a reader sees all four tables of a video or none of them, whatever is
killed when. `read_results` (or DuckDB's `FROM 'out/videos/*/faces.parquet'`, Polars' and
Spark's globs alike) reads every published video at once.

One writer per video at a time: a process takes the video's lock (`flock` on a file under
`.fervideo/locks/`, released by the kernel when the process dies, `kill -9` included) before
it looks at the video, so processes, parallel workers and Ray actors sharing one output folder
split the videos between them and never write or delete what another live process is writing.
Whatever a dead writer left in staging is deleted by the next process that takes that video's
lock, or by `sweep`.

A file-system error (`--out` is a file, read-only, or the disk is full) becomes a one-line
`FervideoError` naming the input and the file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fervideo.errors import FervideoError
from fervideo.tables import SCHEMAS, TABLES, RunInfo, Tables, read_tables

#: Characters kept from a file name in its video id: letters and digits of any script, "._-"
#: (so an id never holds "~", which separates it from the suffix of its staging folders).
_UNSAFE = re.compile(r"[^\w.-]+")
_HIDDEN = ".fervideo"


def video_id(path: str | Path) -> str:
    """The id of a source file in the tables: its name's stem plus a hash of its absolute path,
    so two files with the same name in different folders never collide.

    Raises:
        FervideoError: the path is a symbolic link loop.

    Example:
        >>> video_id("clips/ad.mp4")  # the digits depend on the folder
        'ad-1f0c3a9e'
    """
    try:
        path = Path(path).resolve()
    except (RuntimeError, OSError) as err:  # Python raises RuntimeError for a symlink loop
        raise FervideoError(f"{path} cannot be resolved: {_reason(err)}.") from None
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = _UNSAFE.sub("_", path.stem).strip("._") or "video"
    return f"{stem}-{digest}"


def _reason(err: BaseException) -> str:
    """The errno's text ("No space left on device"): Arrow's own messages run to several
    sentences and repeat the path."""
    if isinstance(err, RuntimeError):
        return "it is a symbolic link loop"
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno)
    return getattr(err, "strerror", None) or str(err)


class PendingVideo:
    """A video's tables being written into a staging folder; nothing is visible until `commit`.

    Raises:
        FervideoError: any file-system error while writing (see the module's docstring).
    """

    def __init__(self, store: ResultStore, video: str, run: RunInfo, source: Path | None) -> None:
        self._store, self._video, self._run, self._source = store, video, run, source
        self.folder = store.staging / f"{video}~{uuid.uuid4().hex[:12]}"
        self._faces: pq.ParquetWriter | None = None
        with self._writing(self.folder):
            self.folder.mkdir(parents=True)
        schema = SCHEMAS["faces"].with_metadata(run.metadata())
        with self._writing(self._file("faces")):
            self._faces = pq.ParquetWriter(self.folder / "faces.parquet", schema)

    def _file(self, table: str) -> Path:
        """Where a table will be once published: errors name that file, not the staging one."""
        return self._store.path(table, self._video)

    @contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            prefix = f"{self._source}: " if self._source else ""
            raise FervideoError(f"{prefix}cannot write {path}: {_reason(err)}.") from err

    def write_faces(self, batch: pa.RecordBatch) -> None:
        """Append rows to the faces table (as frames are analysed)."""
        with self._writing(self._file("faces")):
            self._faces.write_batch(batch)

    def commit(self, timeline: pa.Table, tracks: pa.Table, summary: pa.Table) -> None:
        """Write the aggregate tables and publish all four with one rename of their folder; an
        earlier result of the video is replaced."""
        with self._writing(self._file("faces")):
            self._faces.close()
        for name, table in (("timeline", timeline), ("tracks", tracks), ("summary", summary)):
            with self._writing(self._file(name)):
                pq.write_table(
                    table.replace_schema_metadata(self._run.metadata()), self.folder / f"{name}.parquet"
                )
        final = self._store.video_dir(self._video)
        with self._writing(final):
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # --overwrite: the old result leaves in one rename too
                old = self._store.staging / f"{self._video}~{uuid.uuid4().hex[:12]}~replaced"
                os.rename(final, old)
                os.rename(self.folder, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(self.folder, final)

    def discard(self) -> None:
        """Delete whatever was not published, as far as the file system lets it (what is left
        is hidden from readers and deleted by the video's next writer or `sweep`)."""
        if self._faces is not None:
            with suppress(OSError):  # e.g. the disk is full: the file is deleted anyway
                self._faces.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class ResultStore:
    """The output folder of `analyze`: where each table of each video lives.

    Args:
        root: the output folder; created when the first video is written.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def staging(self) -> Path:
        return self.root / _HIDDEN / "staging"

    def video_dir(self, video: str) -> Path:
        return self.root / "videos" / video

    def path(self, table: str, video: str) -> Path:
        return self.video_dir(video) / f"{table}.parquet"

    def is_done(self, video: str) -> bool:
        return self.path("summary", video).is_file()

    def finished(self) -> list[str]:
        """Ids of the published videos, sorted."""
        folder = self.root / "videos"
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if (p / "summary.parquet").is_file())

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

    def read(self, video: str | None = None) -> Tables:
        """The four tables of one finished video, or of every finished video (in id order)."""
        videos = [video] if video is not None else self.finished()
        return read_tables({t: [self.path(t, v) for v in videos] for t in TABLES})

    @contextmanager
    def claim(self, video: str, wait: bool = False, source: Path | None = None) -> Iterator[bool]:
        """Hold the video's writer lock for the block; yields False, at once, when another live
        process holds it and `wait` is False. Taking it deletes what dead writers left.

        Raises:
            FervideoError: the output folder cannot be created or written (the message names
                `source`, the input file, when given).
        """
        locks = self.root / _HIDDEN / "locks"
        try:
            locks.mkdir(parents=True, exist_ok=True)
            fd = os.open(locks / f"{video}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            prefix = f"{source}: " if source else ""
            raise FervideoError(f"{prefix}cannot write {locks}: {_reason(err)}.") from err
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            self._delete_stale(video)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _delete_stale(self, video: str) -> None:
        """Staging folders of `video`, left by writers that died (its lock is held by us)."""
        if self.staging.is_dir():
            for stale in self.staging.glob(f"{video}~*"):  # ids hold no glob characters
                shutil.rmtree(stale, ignore_errors=True)

    def sweep(self) -> None:
        """Delete the staging folders of every video no live process is writing."""
        if not self.staging.is_dir():
            return
        for video in {p.name.split("~", 1)[0] for p in self.staging.iterdir()}:
            with suppress(FervideoError), self.claim(video):
                pass  # taking the lock deleted its leftovers; a busy video's are left alone

    @contextmanager
    def writing(self, video: str, run: RunInfo, source: Path | None = None) -> Iterator[PendingVideo]:
        """Write one video's tables (the caller holds its `claim`); if the block raises,
        nothing of it is left behind and any earlier finished result stays as it was.

        Args:
            source: the input file, named in error messages.
        """
        pending = PendingVideo(self, video, run, source)
        try:
            yield pending
        finally:
            pending.discard()  # after a commit there is nothing left to discard


def read_results(out_dir: str | Path) -> Tables:
    """Every finished video's tables in an output folder, as four DataFrames.

    Example:
        >>> faces, timeline, tracks, summary = fervideo.read_results("fervideo-out")
        >>> summary[["path", "faces", "emotion"]]
    """
    return ResultStore(out_dir).read()
