"""HTML of the report: self-contained pages (inline CSS, images as `data:` URIs, no script).

Every page carries a Content-Security-Policy that lets it load nothing but its own `data:`
images and inline style, so even a browser that would fetch something cannot.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from html import escape

import pandas as pd

from fervideo.core import EMOTIONS
from fervideo.palette import COLORS
from fervideo.report.data import KeyMoment, VideoView

_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; max-width: 1180px; padding: 16px 24px; }
h1 { font-size: 24px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 6px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
.note { color: #555; } .warn { color: #a33; }
section.video { border-top: 2px solid #ddd; margin-top: 28px; }
table { border-collapse: collapse; margin: 6px 0; font-size: 13px; }
th, td { padding: 3px 6px; border-bottom: 1px solid #e4e4e4; text-align: right; vertical-align: middle; }
th { background: #f6f6f6; font-weight: 600; } td.name, th.name { text-align: left; }
img.chart { max-width: 100%; display: block; margin: 6px 0; }
img.thumb { display: block; border-radius: 3px; }
.noimg { width: 120px; height: 68px; background: #eee; color: #888; font-size: 11px;
         display: flex; align-items: center; justify-content: center; text-align: center; }
.key { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; }
.strip { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; max-width: 420px; }
.faces { display: flex; gap: 4px; } .faces img { border-radius: 3px; }
nav { margin: 8px 0; }
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def document(title: str, body: str) -> str:
    """A complete, self-contained page."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


@dataclass(frozen=True)
class VideoImages:
    """The images of one video's section.

    Attributes:
        charts: PNG charts by name: "timeline" and, with tracks, "tracks" (none for a still).
        thumbnail: the index thumbnail (JPEG), None without the source.
        picture: a still image with its faces' boxes drawn (JPEG), None for a video.
        faces: face crops (JPEG) by row label of the faces table.
        missing: why there are no thumbnails, or "".
    """

    charts: dict[str, bytes] = field(default_factory=dict)
    thumbnail: bytes | None = None
    picture: bytes | None = None
    faces: dict[int, bytes] = field(default_factory=dict)
    missing: str = ""


@dataclass(frozen=True)
class IndexRow:
    """A video in the index: its view, thumbnail (JPEG, None without the source) and link."""

    view: VideoView
    thumbnail: bytes | None
    link: str


@dataclass(frozen=True)
class AudienceGroup:
    """One group of the audience view: its table, chart and file."""

    name: str
    table: pd.DataFrame
    chart: bytes
    file: str


def _img(data: bytes, mime: str, alt: str, css: str = "chart") -> str:
    """An embedded image; its `alt` text is also its tooltip."""
    text = escape(alt)
    return f'<img class="{css}" alt="{text}" title="{text}" src="{data_uri(data, mime)}">'


def _pct(value: float) -> str:
    return "&ndash;" if value is None or math.isnan(value) else f"{value:.0%}"


def _key(emotion: str) -> str:
    return f'<span class="key" style="background:{COLORS[emotion]}"></span>{emotion}'


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def header(out_dir: str, videos: int, model: str, when: str, unreadable: list[str]) -> str:
    left_out = (
        f'<p class="warn">Left out, their tables cannot be read: {escape(", ".join(unreadable))}.</p>'
        if unreadable
        else ""
    )
    return (
        "<h1>fervideo report</h1>"
        f'<p class="note">Videos: {videos}, analysed in <code>{escape(out_dir)}</code> '
        f"with the model <code>{escape(model)}</code>; made {escape(when)}.</p>"
        '<p class="note">Every figure is the <b>expression shown</b> on the faces, as the model '
        "classifies it frame by frame; it is not a measure of what anyone feels.</p>"
        f"{left_out}"
    )


def index(rows: list[IndexRow], compare: list[bytes]) -> str:
    """The index of every video: comparison charts and one table row per video."""
    head = "".join(f"<th>{_key(e)}</th>" for e in EMOTIONS)
    cells = []
    for row in rows:
        view, s = row.view, row.view.summary
        image = (
            _img(row.thumbnail, "image/jpeg", view.name, "thumb")
            if row.thumbnail
            else '<div class="noimg">no image</div>'
        )
        top = _key(s["emotion"]) if isinstance(s["emotion"], str) else "&ndash;"
        shares = "".join(f"<td>{_pct(view.shares[e])}</td>" for e in EMOTIONS)
        cells.append(
            f'<tr><td>{image}</td><td class="name"><a href="{escape(row.link)}">{escape(view.name)}</a></td>'
            f"<td>{'image' if view.is_still else _seconds(s['duration'])}</td>"
            f"<td>{s['faces']}</td><td>{s['tracks']}</td>"
            f'<td class="name">{top}</td>{shares}</tr>'
        )
    charts = "".join(_img(png, "image/png", "comparison of the videos") for png in compare)
    return (
        "<h2>Videos</h2>"
        '<p class="note">Share of each video\'s faces (one per face per analysed frame) showing each '
        "expression; top expression: the highest mean probability over all faces.</p>"
        f'{charts}<table><tr><th></th><th class="name">video</th><th>duration</th><th>faces</th>'
        f'<th>tracks</th><th class="name">top expression</th>{head}</tr>{"".join(cells)}</table>'
    )


def audience(groups: list[AudienceGroup]) -> str:
    """The audience view: per group, the share of viewers showing each expression per second."""
    parts = [
        "<h2>Audience</h2>",
        '<p class="note">One group per folder of recordings (one folder per ad, one recording per '
        "viewer). Each second, a viewer shows the expression with the highest mean probability over "
        "their faces in that second; the chart gives the share of the viewers present showing each, "
        "and how many were present.</p>",
    ]
    for group in groups:
        t = group.table
        present = t["viewers"].to_numpy()
        parts.append(
            f"<h3>{escape(group.name)}</h3>"
            f'<p class="note">{int(t["recordings"].to_numpy().max(initial=0))} recordings, {len(t)} s; '
            f"viewers present per second: median {int(pd.Series(present).median()) if len(t) else 0}, "
            f"fewest {int(present.min()) if len(t) else 0}; table <code>{escape(group.file)}</code>.</p>"
            + _img(group.chart, "image/png", f"audience of {group.name}")
        )
    return "".join(parts)


def video_section(view: VideoView, images: VideoImages, anchor: str) -> str:
    """Everything about one video: figures, charts, key moments and tracks."""
    s = view.summary
    sampling = "every frame" if pd.isna(s["sample_fps"]) else f"{s['sample_fps']:g} per second"
    size = f"{s['width']}&times;{s['height']}"
    timing = (
        f"image · {size}"
        if view.is_still
        else f"{_seconds(s['duration'])} · {s['fps']:.2f} fps · {size} · frames analysed: "
        f"{s['frames_analysed']} ({sampling})"
    )
    parts = [
        f'<section class="video" id="{escape(anchor)}"><h2>{escape(view.name)}</h2>',
        f'<p class="note"><code>{escape(s["path"])}</code> · {timing} · faces: {s["faces"]} · '
        f"tracks: {s['tracks']} · model {escape(s['model'])}, detector {escape(s['detector'])}</p>",
    ]
    if not s["complete"]:
        parts.append(
            f'<p class="warn">The video stopped decoding early: {s["frames_decoded"]} of {s["frames"]} '
            "frames; the figures cover the part that decoded.</p>"
        )
    if images.missing:
        parts.append(f'<p class="note">{escape(images.missing)}</p>')
    if images.picture:
        parts.append(_img(images.picture, "image/jpeg", view.name))
    if not view.is_still:
        parts.append(_img(images.charts["timeline"], "image/png", f"timeline of {view.name}"))
        parts.append(_windows(view))
    parts.append(_stills(view.moments, images) if view.is_still else _moments(view.moments, images))
    if not view.is_still:
        parts.append(_tracks(view, images))
    parts.append("</section>")
    return "\n".join(parts)


def _windows(view: VideoView) -> str:
    head = "".join(f"<th>{escape(w.label)}</th>" for w in view.windows)
    rows = "".join(
        f'<tr><td class="name">{_key(e)}</td>'
        + "".join(f"<td>{_pct(w.shares[e])}</td>" for w in view.windows)
        + "</tr>"
        for e in EMOTIONS
    )
    screen = "".join(f"<td>{w.on_screen:.1f}</td>" for w in view.windows)
    return (
        "<h3>Opening and ending</h3>"
        f'<table><tr><th class="name">share of faces showing</th>{head}</tr>{rows}'
        f'<tr><td class="name">faces on screen (mean)</td>{screen}</tr></table>'
    )


def _face(images: VideoImages, label: int, caption: str) -> str:
    data = images.faces.get(label)
    return _img(data, "image/jpeg", caption, "thumb") if data else ""


def _moment_faces(moment: KeyMoment, images: VideoImages) -> str:
    return "".join(
        _face(images, label, f"track {row.track}: {moment.emotion} {getattr(row, moment.emotion):.2f}")
        for label, row in zip(moment.faces.index, moment.faces.itertuples(), strict=True)
    )


def _moments(moments: list[KeyMoment], images: VideoImages) -> str:
    if not moments:
        return '<h3>Key moments</h3><p class="note">No faces, so no key moments.</p>'
    figures = "".join(
        f'<figure><div class="faces">{_moment_faces(m, images)}</div><figcaption>{_key(m.emotion)} peaks '
        f"at {m.second} s: {_pct(m.share)} of faces show it ({m.on_screen:.1f} on screen)"
        "</figcaption></figure>"
        for m in moments
    )
    return (
        '<h3>Key moments</h3><p class="note">The second where each expression\'s share of faces is '
        f'highest, with faces showing it then.</p><div class="strip">{figures}</div>'
    )


def _stills(moments: list[KeyMoment], images: VideoImages) -> str:
    """An image's faces, by the expression they show."""
    if not moments:
        return '<p class="note">No faces.</p>'
    figures = "".join(
        f'<figure><div class="faces">{_moment_faces(m, images)}</div><figcaption>{_key(m.emotion)}: '
        f"{_pct(m.share)} of faces</figcaption></figure>"
        for m in moments
    )
    return f'<h3>Faces by expression shown</h3><div class="strip">{figures}</div>'


def _tracks(view: VideoView, images: VideoImages) -> str:
    if not len(view.tracks):
        return ""
    figures = []
    for track in view.tracks.itertuples():
        label = view.track_faces[track.track]
        caption = (
            f"track {track.track}: {track.frames} frames, {track.first_timestamp:.1f} to "
            f"{track.last_timestamp:.1f} s, mostly {track.emotion}"
        )
        figures.append(
            f"<figure>{_face(images, label, caption)}<figcaption>{escape(caption)}</figcaption></figure>"
        )
    chart = _img(images.charts["tracks"], "image/png", f"tracks of {view.name}")
    return f'<h3>Longest tracks</h3><div class="strip">{"".join(figures)}</div>{chart}'
