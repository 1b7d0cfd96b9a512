"""`annotate`: the source video with each face's box, track id and top expression drawn on it.

Every frame of the source is decoded with PyAV and re-encoded (H.264 where PyAV's FFmpeg has
libx264, else MPEG-4 Part 2) at the source's timestamps, so the frame rate is the source's.
A sampled frame's faces stay drawn on the frames that follow it until the next sampled frame
(its 1/fps slot of container time, as `fervideo.decode.read_frames` samples them). The first
audio stream is copied packet by packet when MP4 takes its codec, else re-encoded as AAC.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from fervideo.atomic import replace_atomically
from fervideo.config import AnalyzeConfig, AnnotateConfig
from fervideo.errors import FervideoError
from fervideo.palette import bgr
from fervideo.store import ResultStore, video_id
from fervideo.tables import Tables

if TYPE_CHECKING:
    from fervideo.pipeline import Analyzer

log = logging.getLogger(__name__)

#: Called with (stage, done, total): ("analyse", frames decoded, frames in the video) while
#: the video is analysed on the spot, then ("draw", frames written, frames in the video).
AnnotateProgress = Callable[[str, int, int], None]


def annotate(
    video: str | Path,
    out: str | Path,
    tables: str | Path | None = None,
    config: AnalyzeConfig | None = None,
    *,
    analyzer: Analyzer | None = None,
    settings: AnnotateConfig | None = None,
    on_progress: AnnotateProgress | None = None,
) -> Path:
    """Write a copy of `video` with its faces drawn on it, keeping its audio.

    Args:
        video: the source video.
        out: the MP4 file to write (replaced atomically when it exists).
        tables: an output folder of `fervideo analyze` holding the video's tables; None
            analyses the video now into a temporary folder.
        config: analysis settings when `tables` is None.
        analyzer: a ready `Analyzer` to use instead of building one from `config`.
        settings: encoder settings.
        on_progress: called as the video is analysed and as frames are written.

    Returns:
        `out`.

    Raises:
        FervideoError: the video cannot be read or analysed, `tables` has no finished tables
            of it, or `out` cannot be written.

    Example:
        >>> fervideo.annotate("ad.mp4", "ad-annotated.mp4", tables="fervideo-out")
    """
    video, out = Path(video), Path(out)
    if out.resolve() == video.resolve():
        raise FervideoError(f"{out} is the source video; choose another output file.")
    if tables is None:
        found = _analyse(video, analyzer or _analyzer(config), on_progress)
    else:
        found = _stored(video, Path(tables))
    settings = settings or AnnotateConfig()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(out, lambda tmp: _render(video, tmp, found, settings, on_progress))
    except OSError as err:
        raise FervideoError(f"cannot write {out}: {err.strerror or err}.") from err
    return out


def _analyzer(config: AnalyzeConfig | None) -> Analyzer:
    from fervideo.pipeline import Analyzer  # loads the model: only when there are no tables

    return Analyzer(config)


def _analyse(video: Path, analyzer: Analyzer, on_progress: AnnotateProgress | None) -> Tables:
    progress = (lambda done, total: on_progress("analyse", done, total)) if on_progress else None
    with tempfile.TemporaryDirectory(prefix="fervideo-annotate-") as tmp:
        result = analyzer.run(video, tmp, on_progress=progress)
        return ResultStore(tmp).read(result.video)


def _stored(video: Path, folder: Path) -> Tables:
    store = ResultStore(folder)
    vid = video_id(video)
    if not store.is_done(vid):
        raise FervideoError(
            f"{folder} holds no tables of {video}; analyse it there first "
            f"(`fervideo analyze {video} --out {folder}`) or leave out --tables."
        )
    return store.read(vid)


@dataclass(frozen=True)
class _Shown:
    """The faces drawn from one analysed frame on."""

    frame: int
    slot: float  # the analysed frame's sampling slot (its own frame only, without sampling)
    rows: pd.DataFrame


class _Overlay:
    """Which faces to draw on each decoded frame, from the faces table.

    Frames are matched by index (the tables count every decoded frame, as PyAV does); the
    tables' clock is aligned on PyAV's at each analysed frame, so a container's start offset
    does not shift the slots.
    """

    def __init__(self, faces: pd.DataFrame, sample_fps: float | None) -> None:
        self._by_frame = {int(f): rows for f, rows in faces.groupby("frame")}
        self._times = {int(f): float(rows["timestamp"].iloc[0]) for f, rows in self._by_frame.items()}
        self._fps = sample_fps
        self._shown: _Shown | None = None
        self._offset = 0.0

    def _slot(self, time_s: float) -> float:
        return math.floor(time_s * self._fps + 1e-6)

    def faces(self, index: int, time_s: float) -> pd.DataFrame | None:
        if index in self._by_frame:
            self._offset = time_s - self._times[index]
            slot = self._slot(self._times[index]) if self._fps else index
            self._shown = _Shown(index, slot, self._by_frame[index])
        shown = self._shown
        if shown is None:
            return None
        same = self._slot(time_s - self._offset) == shown.slot if self._fps else index == shown.frame
        return shown.rows if same else None


def draw_faces(image: np.ndarray, faces: pd.DataFrame) -> np.ndarray:
    """Draw each face's box, track id and top expression with its probability (in place)."""
    scale = max(image.shape[:2]) / 640
    thickness = max(1, round(2 * scale))
    font = 0.5 * max(scale, 0.6)
    for face in faces.itertuples():
        color = bgr(face.emotion)
        x0, y0 = round(face.x), round(face.y)
        x1, y1 = round(face.x + face.w), round(face.y + face.h)
        cv2.rectangle(image, (x0, y0), (x1, y1), color, thickness)
        label = f"#{face.track} {face.emotion} {getattr(face, face.emotion):.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        top = y0 - th - base - 2 * thickness if y0 - th - base - 2 * thickness >= 0 else y1
        cv2.rectangle(image, (x0, top), (x0 + tw + 2 * thickness, top + th + base + thickness), color, -1)
        ink = (0, 0, 0) if 0.114 * color[0] + 0.587 * color[1] + 0.299 * color[2] > 110 else (255, 255, 255)
        origin = (x0 + thickness, top + th + thickness)
        cv2.putText(image, label, origin, cv2.FONT_HERSHEY_SIMPLEX, font, ink, 1, cv2.LINE_AA)
    return image


def _render(
    video: Path, out: Path, tables: Tables, settings: AnnotateConfig, on_progress: AnnotateProgress | None
) -> None:
    import av

    summary = tables.summary.iloc[0]
    sample_fps = None if pd.isna(summary["sample_fps"]) else float(summary["sample_fps"])
    overlay = _Overlay(tables.faces, sample_fps)
    expected = (int(summary["height"]), int(summary["width"]))
    try:
        with av.open(str(video)) as source, av.open(str(out), "w", format="mp4") as target:
            vin = source.streams.video[0]
            vin.thread_type = "AUTO"
            ain = source.streams.audio[0] if source.streams.audio else None
            vout = _video_stream(target, vin, settings, expected)
            aout, copy = None, False
            if ain is not None:
                copy = ain.codec_context.name in settings.copy_audio
                aout = target.add_stream_from_template(ain) if copy else _aac_stream(target, ain)
            total = vin.frames or int(summary["frames"])
            written = 0
            for packet in source.demux(*(s for s in (vin, ain) if s is not None)):
                if packet.stream.index == vin.index:
                    for frame in packet.decode():
                        image = _upright(frame)
                        if image.shape[:2] != expected:
                            raise FervideoError(
                                f"{video} has {image.shape[1]}x{image.shape[0]} frames but its tables say "
                                f"{expected[1]}x{expected[0]}: they describe another video."
                            )
                        shown = overlay.faces(written, float(frame.time or 0.0))
                        if shown is not None:
                            draw_faces(image, shown)
                        _encode(target, vout, image, frame, written)
                        written += 1
                        if on_progress:
                            on_progress("draw", written, max(total, written))
                elif aout is not None:
                    _audio(target, aout, packet, copy)
            target.mux(vout.encode())
            if aout is not None and not copy:
                target.mux(aout.encode())
    except av.FFmpegError as err:
        raise FervideoError(f"{video}: cannot re-encode it ({err.strerror or err}).") from err
    log.info("%s: %d frames annotated into %s", video, written, out)


def _video_stream(target, vin, settings: AnnotateConfig, size: tuple[int, int]):
    import av

    codec = next((c for c in settings.video_codecs if c in av.codecs_available), None)
    if codec is None:
        raise FervideoError(f"PyAV's FFmpeg has none of the encoders {', '.join(settings.video_codecs)}.")
    options = {"crf": str(settings.crf)} if codec == "libx264" else {}
    stream = target.add_stream(codec, rate=vin.average_rate or vin.guessed_rate or 25, options=options)
    stream.height, stream.width = (side - side % 2 for side in size)  # 4:2:0 takes even sides only
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = vin.time_base
    if codec == "mpeg4":
        stream.codec_context.qscale = settings.mpeg4_qscale
    return stream


def _aac_stream(target, ain):
    """An AAC encoder for the source's audio, mono or stereo (PyAV resamples the frames to its
    sample format and layout)."""
    import av

    sample_format = av.Codec("aac", "w").audio_formats[0].name
    layout = "mono" if ain.layout.nb_channels == 1 else "stereo"
    return target.add_stream("aac", rate=ain.rate, layout=layout, format=sample_format)


def _upright(frame) -> np.ndarray:
    """The frame's pixels (BGR) turned as the container's display matrix says, as OpenCV (and
    hence the tables) sees them."""
    image = frame.to_ndarray(format="bgr24")
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def _encode(target, stream, image: np.ndarray, source, index: int) -> None:
    """Encode `image` at the time of the `source` frame (the `index`-th), or at the nominal
    frame rate when the source frame has no timestamp."""
    import av

    frame = av.VideoFrame.from_ndarray(
        np.ascontiguousarray(image[: stream.height, : stream.width]), format="bgr24"
    )
    time_base = stream.codec_context.time_base
    frame.pts = (
        source.pts if source.pts is not None else round(index / stream.codec_context.framerate / time_base)
    )
    frame.time_base = time_base
    target.mux(stream.encode(frame))


def _audio(target, stream, packet, copy: bool) -> None:
    if copy:
        if packet.dts is None:  # the demuxer's flush packet
            return
        packet.stream = stream
        target.mux(packet)
        return
    for frame in packet.decode():
        frame.pts = None  # the encoder times its own frames
        target.mux(stream.encode(frame))
