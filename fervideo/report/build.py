"""`write_report`: an output folder's tables in, one self-contained HTML report out.

Files written (for `--html <dir>/report.html`, the default `<out>/report.html`)::

    <dir>/report.html                    the report: index, audience view, and (up to
                                         `ReportConfig.inline_videos` videos) every video
    <dir>/report_files/charts/*.png      every chart, also embedded in the pages
    <dir>/report_files/videos/<id>.html  one page per video, when there are more videos
    <out>/audience/<group>.parquet       the audience tables (see `report.audience`)

Videos are read one at a time, so memory stays small however many there are. The previous
`report_files/` is replaced in one rename and the HTML file last, atomically: a reader never
sees half a report.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa

from fervideo.annotation import draw_faces
from fervideo.atomic import write_text_atomically
from fervideo.config import ReportConfig
from fervideo.errors import FervideoError
from fervideo.report import charts
from fervideo.report import html as markup
from fervideo.report.audience import audience_table, video_groups, write_audience
from fervideo.report.data import VideoView
from fervideo.report.thumbs import face_crop, jpeg, shrink, source_frames
from fervideo.store import ResultStore

log = logging.getLogger(__name__)

#: Called with (videos done, videos in all) as the report is made.
ReportProgress = Callable[[int, int], None]


def write_report(
    out_dir: str | Path,
    html: str | Path | None = None,
    config: ReportConfig | None = None,
    on_progress: ReportProgress | None = None,
) -> Path:
    """Write the HTML report of every finished video in an output folder.

    Args:
        out_dir: an output folder of `fervideo analyze`.
        html: the HTML file to write; default `<out_dir>/report.html`.
        config: report settings (grouping, paging, sizes).
        on_progress: called after each video.

    Returns:
        The HTML file.

    Raises:
        FervideoError: the folder holds no finished video, or a file cannot be written.

    Example:
        >>> fervideo.write_report("fervideo-out")
        PosixPath('fervideo-out/report.html')
    """
    config = config or ReportConfig()
    store = ResultStore(out_dir)
    videos = store.finished()
    if not videos:
        raise FervideoError(
            f"{out_dir} holds no analysed video; run `fervideo analyze VIDEOS --out {out_dir}` first."
        )
    page = Path(html) if html is not None else Path(out_dir) / "report.html"
    assets = page.with_name(f"{page.stem}_files")
    staging = page.with_name(f".{assets.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        page.parent.mkdir(parents=True, exist_ok=True)
        body = _write_pages(store, videos, page, assets, staging, config, on_progress)
        _publish(staging, assets)
        write_text_atomically(page, body)
    except OSError as err:
        raise FervideoError(f"cannot write {err.filename or page}: {err.strerror or err}.") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("report of %d videos written to %s", len(videos), page)
    return page


def _write_pages(
    store: ResultStore,
    videos: list[str],
    page: Path,
    assets: Path,
    staging: Path,
    config: ReportConfig,
    on_progress: ReportProgress | None,
) -> str:
    """Write charts and video pages into `staging`; return the main page's HTML."""
    (staging / "charts").mkdir(parents=True)
    inline = len(videos) <= config.inline_videos
    if not inline:
        (staging / "videos").mkdir()
    rows: list[markup.IndexRow] = []
    sections: dict[str, str] = {}
    unreadable: list[str] = []
    for done, video in enumerate(videos, 1):
        try:
            tables = store.read(video)
        except (OSError, pa.ArrowException) as err:  # one damaged video never stops the report
            log.warning("%s: its tables cannot be read (%s); left out of the report", video, err)
            unreadable.append(video)
            continue
        view = VideoView.of(tables, config)
        images = _images(view, config)
        for name, png in images.charts.items():
            (staging / "charts" / f"{video}-{name}.png").write_bytes(png)
        anchor = f"v-{video}"
        section = markup.video_section(view, images, anchor)
        if inline:
            sections[video] = section
            link = f"#{anchor}"
        else:
            back = f'<nav><a href="../../{quote(page.name)}">← all videos</a></nav>'
            (staging / "videos" / f"{video}.html").write_text(
                markup.document(view.name, back + section), "utf-8"
            )
            link = f"{quote(assets.name)}/videos/{quote(video)}.html"
        rows.append(markup.IndexRow(_light(view), images.thumbnail, link))
        if on_progress:
            on_progress(done, len(videos))
    if not rows:
        raise FervideoError(f"no video's tables in {store.root} can be read.")
    rows.sort(key=lambda row: (row.view.summary["path"], row.view.video))
    views = [row.view for row in rows]
    compare = _compare(views, staging, config)
    groups = _audience(store.root, views, staging, config)
    model = ", ".join(sorted({v.summary["model"] for v in views}))
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    body = [
        markup.header(str(store.root), len(views), model, when, unreadable),
        markup.audience(groups) if groups else "",
        markup.index(rows, compare),
        *(sections[view.video] for view in views if view.video in sections),
    ]
    return markup.document("fervideo report", "\n".join(body))


def _light(view: VideoView) -> VideoView:
    """The view without its per-face rows: all the index needs, kept for every video."""
    return replace(view, faces=view.faces.head(0), tracks=view.tracks.head(0), moments=[], track_faces={})


def _images(view: VideoView, config: ReportConfig) -> markup.VideoImages:
    """The video's charts, and its thumbnails cut from the source when it is still there."""
    pngs = {}
    if not view.is_still:
        pngs["timeline"] = charts.timeline_chart(view.timeline, config.chart_dpi)
        if len(view.tracks):
            duration = float(view.summary["duration"])
            pngs["tracks"] = charts.tracks_chart(view.faces, view.tracks, duration, config.chart_dpi)
    labels = [label for m in view.moments for label in m.faces.index] + list(view.track_faces.values())
    rows = view.faces.loc[list(dict.fromkeys(labels))]
    by_frame = rows.groupby("frame").groups
    expected = (int(view.summary["height"]), int(view.summary["width"]))
    thumbnail = picture = None
    faces = {}
    for index, image in source_frames(view.summary["path"], [*by_frame, view.thumbnail_frame]):
        if image.shape[:2] != expected:
            log.warning(
                "%s is no longer the analysed video (its frames differ in size)", view.summary["path"]
            )
            thumbnail, faces = None, {}
            break
        for label in by_frame.get(index, []):
            face = rows.loc[label]
            crop = face_crop(image, face["x"], face["y"], face["w"], face["h"], config.face_px)
            faces[label] = jpeg(crop, config.jpeg_quality)
        if index == view.thumbnail_frame:
            thumbnail = jpeg(shrink(image, config.thumb_width, config.thumb_height), config.jpeg_quality)
        if view.is_still:
            boxed = draw_faces(image, view.faces)
            picture = jpeg(shrink(boxed, config.picture_width, config.picture_width), config.jpeg_quality)
    missing = ""
    if thumbnail is None and not faces:
        missing = f"No thumbnails: the source is no longer readable at {view.summary['path']}."
    return markup.VideoImages(pngs, thumbnail, picture, faces, missing)


def _compare(views: list[VideoView], staging: Path, config: ReportConfig) -> list[bytes]:
    """Comparison charts of `compare_videos` videos each."""
    pngs = []
    step = config.compare_videos
    for start in range(0, len(views), step):
        chunk = views[start : start + step]
        shares = pd.DataFrame([v.shares for v in chunk])
        png = charts.compare_chart([v.name for v in chunk], shares, config.chart_dpi)
        (staging / "charts" / f"compare-{start // step + 1}.png").write_bytes(png)
        pngs.append(png)
    return pngs


def _audience(
    out_dir: Path, views: list[VideoView], staging: Path, config: ReportConfig
) -> list[markup.AudienceGroup]:
    """Audience tables (written under `out_dir`) and charts of the videos' groups."""
    groups = video_groups({v.video: v.summary["path"] for v in views}, config.groups)
    timelines = {v.video: v.timeline for v in views}
    tables = {name: audience_table(name, [timelines[v] for v in members]) for name, members in groups.items()}
    files = write_audience(out_dir, tables)
    result = []
    for name, table in tables.items():
        png = charts.audience_chart(table, config.chart_dpi)
        (staging / "charts" / f"audience-{name}.png").write_bytes(png)
        result.append(markup.AudienceGroup(name, table, png, str(files[name])))
    return result


def _publish(staging: Path, assets: Path) -> None:
    """Put `staging` in the place of `assets` (the previous report's files go in one rename)."""
    if assets.exists():
        old = assets.with_name(f".{assets.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(assets, old)
        os.rename(staging, assets)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, assets)
