"""Video input: probe a file's metadata and stream its frames with container timestamps.

A still image is treated as a one-frame video at time 0, so every input flows through the
same pipeline. Decoding is streamed: one frame is held at a time, whatever the video's length.
"""

from __future__ import annotations

import math
import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fervideo.config import IMAGE_SUFFIXES
from fervideo.errors import FervideoError
from fervideo.quiet import quiet_native_logs

#: A video whose last decoded frame ends more than this many frame intervals before the end
#: its container announces is incomplete (see `_complete`).
_END_TOLERANCE_FRAMES = 2.5


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (a still image is a one-frame video).

    Attributes:
        path: the file.
        duration_s: length in seconds (frame count / frame rate; 0 for a still).
        fps: the container's average frame rate (0 for a still).
        frame_count: frames the container announces (1 for a still, 0 if it does not say).
            Matroska and WebM record no frame count: theirs is duration x frame rate, which
            overestimates a variable-frame-rate video.
        width: frame width in pixels, after the container's rotation is applied.
        height: frame height in pixels, after the container's rotation is applied.
        codec: FourCC of the video codec, e.g. "h264", or the image format, e.g. "jpeg".
        is_still: the input is an image, read as one frame at time 0.
    """

    path: Path
    duration_s: float
    fps: float
    frame_count: int
    width: int
    height: int
    codec: str
    is_still: bool = False


@dataclass(frozen=True)
class DecodeEnd:
    """How decoding a video ended: the value of `read_frames`' `StopIteration`.

    Attributes:
        frames: frames decoded, sampled or not.
        complete: decoding reached the end the container announces.
        last_time_s: timestamp of the last decoded frame.
    """

    frames: int
    complete: bool
    last_time_s: float

    def describe(self, info: VideoInfo) -> str:
        """One sentence on an incomplete video, for a warning line."""
        return (
            f"{info.path} is truncated or damaged: decoding stopped at {self.last_time_s:.2f} s of "
            f"{info.duration_s:.2f} s ({self.frames} of {info.frame_count} frames); its tables "
            "cover the frames that decoded"
        )


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes:
        index: index of the frame in the source (0-based, counting every decoded frame).
        time_s: presentation timestamp in seconds, from the container.
        image: (H, W, 3) uint8 BGR pixels.
    """

    index: int
    time_s: float
    image: np.ndarray


def probe(path: str | Path) -> VideoInfo:
    """Read a video's or image's metadata and check that its first frame decodes.

    Raises:
        FervideoError: the path is missing, or is not a video or image OpenCV can decode.

    Example:
        >>> info = probe("examples/astronaut.mp4")
        >>> info.width, info.height, round(info.fps)
        (320, 320, 15)
    """
    path = _existing_file(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return _still(path, _read_image(path))
    capture = _open(path)
    try:
        ok, first = capture.read()
        if not ok:
            raise FervideoError(f"{path} has no decodable video frame (corrupt or not a video).")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        fourcc = int(capture.get(cv2.CAP_PROP_FOURCC))
    finally:
        capture.release()
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    frame_count = max(frame_count, 0)  # raw streams report nonsense
    if frame_count <= 1 and (image := cv2.imread(str(path), cv2.IMREAD_COLOR)) is not None:
        return _still(path, image)  # an image file named like a video: FFmpeg calls it 25 fps
    return VideoInfo(
        path=path,
        duration_s=frame_count / fps if fps else 0.0,
        fps=fps,
        frame_count=frame_count,
        width=first.shape[1],
        height=first.shape[0],
        codec=_fourcc_text(fourcc),
    )


def read_frames(info: VideoInfo, fps: float | None = None) -> Generator[Frame, None, DecodeEnd]:
    """Stream the frames of a probed video, optionally sampled to about `fps` per second.

    Sampling keeps the first frame of every 1/fps-second slot of container time, so it follows
    the real timestamps of a variable-frame-rate video. Frames that are skipped are grabbed but
    never converted to pixels. A stream without timestamps (raw H.264, say) is timed at its
    nominal frame rate. The capture is released when the iterator ends or is closed.

    Args:
        info: from `probe`.
        fps: frames per second to keep; None keeps every frame.

    Yields:
        `Frame`s in presentation order.

    Returns:
        How decoding ended (frames decoded, whether the video was complete), as the value of
        the generator's `StopIteration`: a video that stops decoding before the end its
        container announces is not an error, its frames up to there are yielded.
    """
    if info.is_still:
        yield Frame(0, 0.0, _read_image(info.path))
        return DecodeEnd(1, True, 0.0)
    capture = _open(info.path)
    index = -1
    last_slot = -1
    last_time_s = -math.inf
    try:
        while capture.grab():
            index += 1
            time_s = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            if time_s <= last_time_s and info.fps:  # no timestamp in the stream
                time_s = last_time_s + 1 / info.fps
            last_time_s = time_s
            if fps is not None:
                slot = math.floor(time_s * fps + 1e-6)
                if slot <= last_slot:
                    continue
                last_slot = slot
            ok, image = capture.retrieve()
            if not ok:
                break
            yield Frame(index, time_s, image)
    finally:
        capture.release()
    decoded = index + 1
    last_time_s = max(last_time_s, 0.0)
    return DecodeEnd(decoded, _complete(info, decoded, last_time_s), last_time_s)


def _complete(info: VideoInfo, decoded: int, last_time_s: float) -> bool:
    """Decoding reached the container's end: every frame it announces, or (its count is an
    estimate for Matroska and WebM, too high for a variable frame rate) a last frame within
    2.5 frame intervals of the duration it announces."""
    if decoded >= info.frame_count:
        return True
    if not info.duration_s:
        return False
    return last_time_s + _END_TOLERANCE_FRAMES / info.fps >= info.duration_s


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.stat()
    except FileNotFoundError:
        raise FervideoError(f"{path} does not exist.") from None
    except OSError as err:  # a symbolic link loop, say
        raise FervideoError(f"{path} cannot be read: {os.strerror(err.errno)}.") from None
    if not path.is_file():
        raise FervideoError(f"{path} is not a file.")
    if not os.access(path, os.R_OK):
        raise FervideoError(f"{path} cannot be read: permission denied.")
    return path


def _still(path: Path, image: np.ndarray) -> VideoInfo:
    height, width = image.shape[:2]
    return VideoInfo(path, 0.0, 0.0, 1, width, height, _image_format(path), is_still=True)


def _open(path: Path) -> cv2.VideoCapture:
    quiet_native_logs()
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise FervideoError(f"{path} is not a video OpenCV can open (corrupt, truncated or not a video).")
    return capture


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FervideoError(f"{path} is not an image OpenCV can decode.")
    return image


#: File signatures of the image formats OpenCV reads, by their first bytes.
_IMAGE_SIGNATURES = {
    b"\xff\xd8\xff": "jpeg",
    b"\x89PNG": "png",
    b"BM": "bmp",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"RIFF": "webp",
}


def _image_format(path: Path) -> str:
    """The image's format by its first bytes (a file may be named like another format)."""
    with open(path, "rb") as f:
        head = f.read(4)
    for signature, name in _IMAGE_SIGNATURES.items():
        if head.startswith(signature):
            return name
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "tif": "tiff"}.get(suffix, suffix)


def _fourcc_text(fourcc: int) -> str:
    text = fourcc.to_bytes(4, "little").decode("ascii", "replace").strip("\x00 ")
    return text if text.isprintable() and text else "unknown"
