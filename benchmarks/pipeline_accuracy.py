"""End-to-end accuracy of the video pipeline, against the model's direct accuracy, and `fer`'s.

FER2013 PublicTest faces are rendered into 960x540 frames (`renders.py`: 1-4 faces a frame at
48, 96, 144 and 240 px, flat, noisy and photographic backgrounds, some frames blurred or
re-encoded as JPEG, 10% face-free frames), written as a lossless video per face size, and run
through the real `fervideo.analyze` path, every frame. Each detection is matched to its
rendered face by position. Per face size: detection rate, accuracy on the faces found,
end-to-end accuracy (a missed face counts as wrong), the same model's direct accuracy on the
same 48x48 images, false detections per face-free frame; and the `fer` package's own pipeline
(`FER()`: its Haar detector and mini-Xception) on the same frames, in the same run. Writes
benchmarks/PIPELINE.md.

    python benchmarks/pipeline_accuracy.py                   # 1200 images per size
    python benchmarks/pipeline_accuracy.py --images 300 --no-fer --data /path/to/fer2013

fer is installed, without its dependencies (facenet-pytorch is only for its MTCNN option),
into `.devdata/fer` and run in a child process with that folder on its path.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import renders

import fervideo
from fervideo.classify import ExpressionClassifier
from fervideo.config import AnalyzeConfig
from fervideo.core import EMOTIONS

RESULTS = Path(__file__).with_name("PIPELINE.md")
FER_VERSION = "25.10.3"
FER_DIR = renders.REPO / ".devdata" / "fer"
FER_LOOP = """
import json, sys
import cv2
from fer.fer import FER
detector = FER()
capture = cv2.VideoCapture(sys.argv[1])
index = 0
with open(sys.argv[2], "w") as out:
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        for face in detector.detect_emotions(frame):
            x, y, w, h = (int(v) for v in face["box"])
            top = max(face["emotions"], key=face["emotions"].get)
            out.write(json.dumps({"frame": index, "xyxy": [x, y, x + w, y + h], "emotion": top}) + "\\n")
        index += 1
"""


@dataclass
class Detections:
    """What a pipeline found in a video: frame, box and top class of each face."""

    frame: np.ndarray
    xyxy: np.ndarray
    top: np.ndarray


@dataclass
class Row:
    who: str
    size: int
    faces: int
    detection: float
    accuracy_found: float
    end_to_end: float
    direct: float
    direct_found: float
    false_per_empty: float
    unmatched: int
    seconds: float


def run_fervideo(
    video: Path, model: str, min_face: int, min_score: float, recheck_score: float
) -> tuple[Detections, float]:
    started = time.perf_counter()
    config = AnalyzeConfig(
        model=model, fps=None, min_face=min_face, min_score=min_score, recheck_score=recheck_score
    )
    faces = fervideo.analyze(video, config=config).faces
    seconds = time.perf_counter() - started
    xyxy = faces[["x", "y", "w", "h"]].to_numpy(np.float32, copy=True)
    xyxy[:, 2:] += xyxy[:, :2]
    top = np.array([EMOTIONS.index(e) for e in faces["emotion"]], int)
    return Detections(faces["frame"].to_numpy(), xyxy, top), seconds


def install_fer() -> Path:
    if not (FER_DIR / "fer" / "fer.py").is_file():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--target",
                str(FER_DIR),
                f"fer=={FER_VERSION}",
            ],
            check=True,
        )
    return FER_DIR


def run_fer(video: Path, workdir: Path) -> tuple[Detections, float]:
    out = workdir / f"{video.stem}-fer.jsonl"
    env = {**os.environ, "PYTHONPATH": str(install_fer()), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", FER_LOOP, str(video), str(out)], check=True, env=env, stderr=subprocess.DEVNULL
    )
    seconds = time.perf_counter() - started
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return (
        Detections(
            np.array([r["frame"] for r in rows], int),
            np.array([r["xyxy"] for r in rows], np.float32).reshape(-1, 4),
            np.array([EMOTIONS.index(r["emotion"]) for r in rows], int),
        ),
        seconds,
    )


def score(
    who: str, size: int, render: renders.Render, found: Detections, direct: np.ndarray, seconds: float
) -> Row:
    labels = np.array([f.label for f in render.faces])
    index, _ = renders.match(render.faces, found.frame, found.xyxy)
    hit = index >= 0
    right = hit & (found.top[np.maximum(index, 0)] == labels)
    empty = set(render.empty_frames)
    false_empty = sum(int(f) in empty for f in found.frame)
    unmatched = len(found.frame) - int(hit.sum()) - false_empty
    return Row(
        who,
        size,
        len(labels),
        float(hit.mean()),
        float(right[hit].mean()) if hit.any() else float("nan"),
        float(right.mean()),
        float((direct == labels).mean()),
        float((direct == labels)[hit].mean()) if hit.any() else float("nan"),
        false_empty / max(len(empty), 1),
        unmatched,
        seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="FER2013 folder (default: the shared archive)")
    parser.add_argument("--images", type=int, default=1200, help="PublicTest images rendered per size")
    parser.add_argument("--sizes", type=int, nargs="*", default=[48, 96, 144, 240])
    parser.add_argument("--model", default=AnalyzeConfig().model)
    parser.add_argument(
        "--min-faces",
        type=int,
        nargs="*",
        default=[AnalyzeConfig().min_face, 16],
        help="fervideo's --min-face settings to run (16: the detector sees frames at full size)",
    )
    parser.add_argument(
        "--min-scores",
        type=float,
        nargs="*",
        default=[AnalyzeConfig().min_score],
        help="detection thresholds to run at each --min-face",
    )
    parser.add_argument(
        "--recheck-scores",
        type=float,
        nargs="*",
        default=[AnalyzeConfig().recheck_score],
        help="scores from which a face gets a second look, run at each threshold (>= it: none)",
    )
    parser.add_argument("--no-fer", dest="fer", action="store_false", help="skip the fer package")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the Markdown file written")
    args = parser.parse_args()
    test = renders.public_test(args.data)
    chosen = np.random.default_rng(2).choice(len(test), min(args.images, len(test)), replace=False)
    classifier = ExpressionClassifier(args.model)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fervideo-pipeline-") as tmp:
        for size in args.sizes:
            render = renders.render(test, (size,), chosen, seed=size)
            video = renders.write_video(render.frames, Path(tmp) / f"faces-{size}px.avi")
            n_frames = len(render.frames)
            render.frames.clear()  # the video holds them now
            direct = classifier.predict(test.x[[f.image for f in render.faces], :, :, 0]).argmax(1)
            for min_face in args.min_faces:
                for min_score, recheck in itertools.product(args.min_scores, args.recheck_scores):
                    found, seconds = run_fervideo(video, args.model, min_face, min_score, recheck)
                    who = f"fervideo, min face {min_face}"
                    if len(args.min_scores) > 1:
                        who += f", threshold {min_score:g}"
                    if len(args.recheck_scores) > 1:
                        who += (
                            f", second look from {recheck:g}" if recheck < min_score else ", no second look"
                        )
                    rows.append(score(who, size, render, found, direct, seconds))
                    print(rows[-1], flush=True)
            if args.fer:
                found, seconds = run_fer(video, Path(tmp))
                rows.append(score(f"fer {FER_VERSION}", size, render, found, direct, seconds))
                print(rows[-1], flush=True)
            video.unlink()
            print(f"{size} px: {n_frames} frames", flush=True)
    write(args, rows, len(chosen))


def write(args: argparse.Namespace, rows: list[Row], images: int) -> None:
    lines = [
        "# The video pipeline's accuracy",
        "",
        f"Written by `python benchmarks/pipeline_accuracy.py {' '.join(sys.argv[1:])}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. {images} FER2013 PublicTest images, each rendered "
        f"once per face size into {renders.FRAME_W}x{renders.FRAME_H} frames (1-4 faces a frame; "
        "flat, noise and "
        f"photo backgrounds; 20% of frames blurred (sigma {renders.BLUR_SIGMA} px), 20% re-encoded as JPEG "
        f"quality {renders.JPEG_QUALITY}; 10% face-free frames), every frame analysed. fervideo: "
        f"`fervideo.analyze` with model `{args.model}` and the default detector and crop, at each "
        f"`--min-face` of {args.min_faces} (the default is {AnalyzeConfig().min_face}; 16 px: the "
        "detector sees the frames at full size); fer: its own `FER()` pipeline on the same frames.",
        "",
        "- found: rendered faces matched by a detection (box overlap >= 0.3)",
        "- accuracy on found: top class right, among the faces found",
        "- end to end: top class right, among all rendered faces (a missed face counts as wrong)",
        "- direct: the same model on the same 48x48 images given as they are (fervideo's model "
        "for both rows); in brackets, on the images the pipeline found",
        "- false / empty frame: detections per face-free frame",
        "- unmatched: detections in frames with faces that match none of them",
        "- second look: faces scoring from that score up to the threshold in the shrunk frame are "
        "kept only if a full-size look at them scores them at the threshold or more "
        "(`AnalyzeConfig.recheck_score`)",
        "",
        "| pipeline | face px | faces | found | accuracy on found | end to end | direct (on found) "
        "| false / empty frame | unmatched | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.who} | {r.size} | {r.faces} | {r.detection:.1%} | {r.accuracy_found:.2%} "
            f"| {r.end_to_end:.2%} "
            f"| {r.direct:.2%} ({r.direct_found:.2%}) | {r.false_per_empty:.3f} | {r.unmatched} "
            f"| {r.seconds:.0f} |"
        )
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
