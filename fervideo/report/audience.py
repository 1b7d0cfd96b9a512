"""The audience view: recordings of viewers watching an ad, second by second.

Input layout: a folder of folders, one folder per ad (the group) holding one recording per
viewer. A video's group is its source file's parent folder (the summary's `path`). Grouping
(`ReportConfig.groups`):

- "auto": applied only when the videos form a folder of folders: they lie in at least two
  folders, every one of these holds at least two of the videos, and all of them sit in one
  common folder. Anything else (a flat folder of ads, say) gets no audience view.
- "folders": every parent folder is a group, whatever the layout (one ad's folder alone too).
- "none": no audience view.

One viewer = one recording. In a second of the recording the viewer is present if any face is
seen in it, and shows the expression with the highest mean probability over that second's faces
(the argmax of the timeline's class columns; the first class in `EMOTIONS` order on a tie).
Every face of a recording counts as its viewer's: a recording is meant to show one viewer.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fervideo.atomic import replace_atomically
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.tables import SHARES

#: The audience table, `<out>/audience/<group>.parquet`: one row per second of the group.
SCHEMA = pa.schema(
    [
        pa.field("group", pa.string(), nullable=False),
        pa.field("second", pa.int64(), nullable=False),
        pa.field("recordings", pa.int64(), nullable=False),
        pa.field("viewers", pa.int64(), nullable=False),
        *(pa.field(c, pa.float32()) for c in SHARES),
    ]
)
FOLDER = "audience"
_UNSAFE = re.compile(r"[^\w.-]+")


def video_groups(paths: Mapping[str, str], rule: str) -> dict[str, list[str]]:
    """The audience groups of videos, by the module's rule.

    Args:
        paths: source path of each video id (the summary's `path`).
        rule: "auto", "folders" or "none".

    Returns:
        Group name -> video ids (sorted), groups sorted by name; empty when not grouped. A name
        is its folder's name, made file-safe; names that two folders share get a hash of the
        folder's path.
    """
    if rule == "none":
        return {}
    folders: dict[Path, list[str]] = defaultdict(list)
    for video, path in sorted(paths.items()):
        folders[Path(path).parent].append(video)
    if rule == "auto" and not _folder_of_folders(folders):
        return {}
    names = {folder: _UNSAFE.sub("_", folder.name).strip("._") or "group" for folder in folders}
    taken = defaultdict(int)
    for name in names.values():
        taken[name] += 1
    for folder, name in names.items():
        if taken[name] > 1:
            names[folder] = f"{name}-{hashlib.sha1(str(folder).encode()).hexdigest()[:8]}"
    return {names[folder]: videos for folder, videos in sorted(folders.items(), key=lambda f: names[f[0]])}


def _folder_of_folders(folders: Mapping[Path, list[str]]) -> bool:
    return (
        len(folders) >= 2
        and all(len(videos) >= 2 for videos in folders.values())
        and len({folder.parent for folder in folders}) == 1
    )


def audience_table(group: str, timelines: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Per second of a group: recordings that last to it, viewers present, and the share of
    those viewers showing each expression (null when no viewer is present).

    Args:
        group: the group's name.
        timelines: the timeline table of each recording of the group.
    """
    timelines = list(timelines)
    n = max((int(t["second"].max()) + 1 for t in timelines if len(t)), default=0)
    recordings = np.zeros(n, np.int64)
    viewers = np.zeros(n, np.int64)
    shown = np.zeros((n, len(EMOTIONS)), np.int64)
    for timeline in timelines:
        seconds = timeline["second"].to_numpy(np.int64)
        np.add.at(recordings, seconds, 1)
        present = timeline["faces"].to_numpy() > 0
        top = timeline.loc[present, list(EMOTIONS)].to_numpy(np.float64).argmax(axis=1)
        np.add.at(viewers, seconds[present], 1)
        np.add.at(shown, (seconds[present], top), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = shown / viewers[:, None]
    table = pd.DataFrame(
        {"group": group, "second": np.arange(n), "recordings": recordings, "viewers": viewers}
    )
    for i, column in enumerate(SHARES):
        table[column] = shares[:, i].astype(np.float32)
    return table


def write_audience(out_dir: str | Path, tables: Mapping[str, pd.DataFrame]) -> dict[str, Path]:
    """Write each group's table to `<out>/audience/<group>.parquet` (atomically) and delete
    the files of groups no longer there.

    Raises:
        FervideoError: a file cannot be written.
    """
    folder = Path(out_dir) / FOLDER
    written = {}
    try:
        if tables:
            folder.mkdir(parents=True, exist_ok=True)
        for group, table in tables.items():
            path = folder / f"{group}.parquet"
            arrow = pa.Table.from_pandas(table, schema=SCHEMA, preserve_index=False)
            replace_atomically(path, lambda tmp, arrow=arrow: pq.write_table(arrow, tmp))
            written[group] = path
        for stale in folder.glob("*.parquet") if folder.is_dir() else ():
            if stale not in written.values():
                stale.unlink()
    except OSError as err:
        raise FervideoError(f"cannot write {err.filename or folder}: {err.strerror or err}.") from err
    return written


def read_audience(out_dir: str | Path) -> pd.DataFrame:
    """Every group's audience table in an output folder, as one DataFrame."""
    files = sorted((Path(out_dir) / FOLDER).glob("*.parquet"))
    parts = [pq.read_table(f, schema=SCHEMA) for f in files]
    return (pa.concat_tables(parts) if parts else SCHEMA.empty_table()).to_pandas()
