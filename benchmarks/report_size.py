"""Size and time of `fervideo report` on a folder of 500 videos.

The 500 recordings are 50 ads x 10 viewers, each 30 s analysed at 5 fps. Their tables are
written by the real aggregation and store code (`fervideo.testing.write_tables`) from synthetic
faces: the box YuNet finds on the example clip's frames, expression probabilities from a
smooth random walk leaning towards one expression per ad, a face missing now and then. Every
recording's source is a hard link to one 30-second clip looped from examples/astronaut.mp4, so
thumbnails are cut from real frames.

    python benchmarks/report_size.py [--videos 500] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fervideo.core import EMOTIONS, Faces
from fervideo.detect import get_detector
from fervideo.report import write_report
from fervideo.testing import write_tables

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.mp4"
SECONDS, FPS, SAMPLE_FPS, VIEWERS = 30, 15, 5, 10


def source_clip(path: Path) -> list[np.ndarray]:
    """Write a 30 s clip looping the example forth and back; return the face box of each of
    its frames (YuNet's most confident face, as x0, y0, x1, y1)."""
    capture = cv2.VideoCapture(str(EXAMPLE))
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    capture.release()
    detector = get_detector("yunet")
    boxes = [detector.detect(f).xyxy[0] for f in frames]
    loop = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    order = [loop[i % len(loop)] for i in range(SECONDS * FPS)]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (width, height))
    for i in order:
        writer.write(frames[i])
    writer.release()
    return [boxes[i] for i in order]


def recording_faces(rng: np.random.Generator, lean: int, boxes: list[np.ndarray]) -> tuple[Faces, np.ndarray]:
    times = np.arange(0, SECONDS, 1 / SAMPLE_FPS)
    logits = np.zeros(len(EMOTIONS))
    probs, kept = [], []
    for t in times:
        logits = 0.85 * logits + rng.normal(0, 0.6, len(EMOTIONS))
        logits[lean] += 0.15
        if rng.random() < 0.9:  # the viewer looks away now and then
            kept.append(t)
            p = np.exp(logits - logits.max())
            probs.append(p / p.sum())
    kept = np.array(kept)
    frames = np.rint(kept * FPS).astype(np.int64)
    gaps = np.diff(kept, prepend=kept[0]) > 1.0  # a new track after a second unseen
    faces = Faces(
        frame_index=frames,
        xyxy=np.array([boxes[f] for f in frames], np.float32),
        confidence=rng.uniform(0.7, 0.99, len(kept)).astype(np.float32),
        probs=np.array(probs, np.float32),
        track_id=np.cumsum(gaps).astype(np.int64),
    )
    return faces, kept


def folder_size(path: Path, pattern: str = "*") -> tuple[int, int]:
    files = [p for p in path.rglob(pattern) if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=500)
    parser.add_argument("--keep", type=Path, help="make the folder here and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="fervideo-report-size-"))
    rng = np.random.default_rng(0)
    try:
        root.mkdir(parents=True, exist_ok=True)
        clip = root / "clip.mp4"
        boxes = source_clip(clip)
        out = root / "out"
        for n in range(args.videos):
            ad, viewer = divmod(n, VIEWERS)
            source = root / "study" / f"ad_{ad:02d}" / f"viewer_{viewer:02d}.mp4"
            source.parent.mkdir(parents=True, exist_ok=True)
            os.link(clip, source)
            faces, times = recording_faces(rng, ad % len(EMOTIONS), boxes)
            analysed = np.arange(0, SECONDS, 1 / SAMPLE_FPS)
            write_tables(out, source, faces, times, analysed, fps=FPS, size=(320, 320), sample_fps=SAMPLE_FPS)
        started = time.perf_counter()
        page = write_report(out)
        seconds = time.perf_counter() - started
        files = page.parent / f"{page.stem}_files"
        pages, pages_bytes = folder_size(files / "videos", "*.html")
        charts, charts_bytes = folder_size(files / "charts", "*.png")
        groups, audience_bytes = folder_size(out / "audience")
        largest = max((p.stat().st_size for p in (files / "videos").glob("*.html")), default=0)
        mib = 1024 * 1024
        print(f"videos: {args.videos} ({args.videos // VIEWERS} ads x {VIEWERS} viewers), {SECONDS} s each")
        print(f"report time: {seconds:.0f} s ({seconds / args.videos:.2f} s per video)")
        print(f"report.html (index, comparison charts, audience view): {page.stat().st_size / mib:.1f} MiB")
        mean = pages_bytes / max(pages, 1) / 1024
        print(f"video pages: {pages}, {pages_bytes / mib:.1f} MiB, mean {mean:.0f} KiB, ", end="")
        print(f"largest {largest / 1024:.0f} KiB")
        print(f"charts (PNG): {charts}, {charts_bytes / mib:.1f} MiB")
        print(f"audience tables: {groups}, {audience_bytes / 1024:.0f} KiB")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
