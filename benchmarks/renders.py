"""FER2013 faces rendered into video frames, with the truth kept: which image, where, how big.

Shared by `pipeline_accuracy.py`, `calibrate_crop.py` and the pipeline's accuracy test. Each
frame holds 1-4 faces of one size (one per quarter of the frame, at a random place in it) on a
flat, noisy or photographic background, sometimes blurred or re-encoded as JPEG; some frames
hold no face, to count false detections. Everything is drawn from a seeded generator, so a
render is the same on every run.
"""

from __future__ import annotations

import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fervideo.core import box_iou
from fervideo.training.data import Split, load_split

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
ARCHIVE = SHARED / "datasets" / "fer2013-train-publictest.tar.gz"
PHOTO = SHARED / "media" / "no_faces.jpg"
FRAME_W, FRAME_H = 960, 540
BACKGROUNDS = ("flat", "noise", "photo")
#: (name, share of frames): what the frame goes through after the faces are pasted.
DEGRADATIONS = (("none", 0.6), ("blur", 0.2), ("jpeg", 0.2))
BLUR_SIGMA = 1.2
JPEG_QUALITY = 40
FACES_PER_FRAME = ((1, 0.4), (2, 0.2), (3, 0.2), (4, 0.2))


@dataclass(frozen=True)
class RenderedFace:
    """One pasted face: its frame, its PublicTest index and label, and its square's pixels."""

    frame: int
    image: int
    label: int
    x: int
    y: int
    size: int
    background: str
    degradation: str


@dataclass
class Render:
    frames: list[np.ndarray]
    faces: list[RenderedFace]
    empty_frames: list[int]


def public_test(data: Path | None = None) -> Split:
    """FER2013 PublicTest from `data`, or from the shared archive (only that split extracted)."""
    if data is not None:
        return load_split(data, "PublicTest")
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(ARCHIVE) as archive:
        members = [m for m in archive.getmembers() if "/test/" in m.name or m.isdir()]
        archive.extractall(tmp, members=members, filter="data")
        return load_split(Path(tmp) / "fer2013", "PublicTest")


def background(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "flat":
        return np.full((FRAME_H, FRAME_W, 3), rng.integers(30, 226, 3), np.uint8)
    if kind == "noise":
        small = rng.normal(128, 50, (FRAME_H // 8, FRAME_W // 8, 3))
        noise = cv2.resize(small, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)
        return np.clip(noise + rng.normal(0, 12, noise.shape), 0, 255).astype(np.uint8)
    photo = cv2.imread(str(PHOTO)) if PHOTO.is_file() else None
    if photo is None:  # no shared media: a smooth gradient stands in
        ramp = np.linspace(40, 215, FRAME_W, dtype=np.float32)
        return np.repeat(np.repeat(ramp[None, :, None], FRAME_H, 0), 3, 2).astype(np.uint8)
    photo = photo if rng.random() < 0.5 else photo[:, ::-1]
    return cv2.resize(photo, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)


def degrade(frame: np.ndarray, kind: str) -> np.ndarray:
    if kind == "blur":
        return cv2.GaussianBlur(frame, (0, 0), BLUR_SIGMA)
    if kind == "jpeg":
        _, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    return frame


def render(
    test: Split,
    sizes: tuple[int, ...],
    images: np.ndarray | None = None,
    empty_share: float = 0.1,
    seed: int = 0,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
    degradations: tuple[tuple[str, float], ...] = DEGRADATIONS,
) -> Render:
    """Every image of `images` (default: all of `test`) pasted once at each size of `sizes`.

    Args:
        test: PublicTest (x (n, 48, 48, 1) uint8, y labels).
        sizes: face sides in pixels (at most 260: a face fits in a quarter of the frame).
        images: indices into `test` to render.
        empty_share: face-free frames added, as a share of the frames with faces.
        seed: the generator's seed.
        backgrounds: the kinds of background drawn from.
        degradations: (kind, share of frames) of what frames go through.
    """
    rng = np.random.default_rng(seed)
    images = np.arange(len(test)) if images is None else np.asarray(images)
    counts, shares = zip(*FACES_PER_FRAME, strict=True)
    kinds, kind_shares = zip(*degradations, strict=True)
    frames: list[np.ndarray] = []
    faces: list[RenderedFace] = []
    plan: list[tuple[int, np.ndarray]] = []
    for size in sizes:
        queue = rng.permutation(images)
        while len(queue):
            count = int(rng.choice(counts, p=shares))
            plan.append((size, queue[:count]))
            queue = queue[count:]
    n_empty = round(len(plan) * empty_share)
    plan += [(0, np.array([], int))] * n_empty
    order = rng.permutation(len(plan))
    empty_frames = []
    for index, planned in enumerate(order):
        size, chosen = plan[planned]
        kind = backgrounds[rng.integers(len(backgrounds))]
        degradation = str(rng.choice(kinds, p=kind_shares))
        frame = background(kind, rng)
        cells = rng.permutation(4)[: len(chosen)]
        for cell, image in zip(cells, chosen, strict=True):
            cell_x, cell_y = (cell % 2) * FRAME_W // 2, (cell // 2) * FRAME_H // 2
            x = cell_x + int(rng.integers(0, FRAME_W // 2 - size + 1))
            y = cell_y + int(rng.integers(0, FRAME_H // 2 - size + 1))
            face = test.x[image, :, :, 0]
            if size != face.shape[0]:
                face = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
            frame[y : y + size, x : x + size] = face[..., None]
            faces.append(RenderedFace(index, int(image), int(test.y[image]), x, y, size, kind, degradation))
        if not len(chosen):
            empty_frames.append(index)
        frames.append(degrade(frame, degradation))
    return Render(frames, faces, empty_frames)


def write_video(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    """The frames as a lossless FFV1 video (AVI), so only the render's own JPEG degrades them."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (FRAME_W, FRAME_H))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write FFV1 video to {path}")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def match(
    truth: list[RenderedFace], frame: np.ndarray, xyxy: np.ndarray, min_iou: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """Match detections to rendered faces of the same frame by box overlap, greedily.

    Args:
        truth: the rendered faces.
        frame: (m,) frame index of each detection.
        xyxy: (m, 4) detection boxes.

    Returns:
        For each rendered face, the index of its detection or -1; and for each detection,
        whether it matched a face (False: a false positive).
    """
    found = np.full(len(truth), -1)
    used = np.zeros(len(frame), bool)
    by_frame: dict[int, list[int]] = {}
    for i, f in enumerate(frame):
        by_frame.setdefault(int(f), []).append(i)
    for t, face in enumerate(truth):
        candidates = [i for i in by_frame.get(face.frame, []) if not used[i]]
        if not candidates:
            continue
        square = np.array([face.x, face.y, face.x + face.size, face.y + face.size], np.float32)
        overlaps = box_iou(square[None], xyxy[candidates])[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= min_iou:
            found[t] = candidates[best]
            used[candidates[best]] = True
    return found, used
