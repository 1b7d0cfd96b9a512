"""How the expression models hold up when the face crop is not FER2013's own framing: the
PublicTest images shifted, rescaled (a small face upscaled), blurred, re-encoded, and cropped
tighter or looser, as a detector's box and a video's compression shift them. Writes
benchmarks/ROBUSTNESS.md.

    python benchmarks/robustness.py                          # every model `fervideo models` lists
    python benchmarks/robustness.py --models resvgg_ensemble accurate --data /path/to/fer2013
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from fervideo.catalog import list_models
from fervideo.classify import ExpressionClassifier
from fervideo.training.data import load_split
from fervideo.training.evaluate import score

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "datasets" / "fer2013-train-publictest.tar.gz"
RESULTS = Path(__file__).with_name("ROBUSTNESS.md")
SIDE = 48


def _each(x: np.ndarray, change: Callable[[np.ndarray, np.random.Generator], np.ndarray]) -> np.ndarray:
    rng = np.random.default_rng(0)  # the same perturbation for every model
    return np.stack([change(face, rng) for face in x])


def _affine(face: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(((SIDE - 1) / 2, (SIDE - 1) / 2), 0.0, scale)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(face, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _jpeg(face: np.ndarray, quality: int) -> np.ndarray:
    _, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


#: name -> (what it stands for, change of one 48x48 uint8 face)
PERTURBATIONS: dict[str, tuple[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]]] = {
    "none": ("the images as they are", lambda f, r: f),
    "shift": ("moved by up to 4 px each way", lambda f, r: _affine(f, 1.0, *r.uniform(-4, 4, 2))),
    "small": (
        "a 20 px face upscaled",
        lambda f, r: cv2.resize(cv2.resize(f, (20, 20), interpolation=cv2.INTER_AREA), (SIDE, SIDE)),
    ),
    "blur": ("Gaussian blur, sigma 1 px", lambda f, r: cv2.GaussianBlur(f, (0, 0), 1.0)),
    "jpeg": ("JPEG quality 30", lambda f, r: _jpeg(f, 30)),
    "tight": ("cropped 15% tighter", lambda f, r: _affine(f, 1.15, 0.0, 0.0)),
    "loose": ("cropped 15% looser", lambda f, r: _affine(f, 1 / 1.15, 0.0, 0.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="FER2013 folder or CSV (default: the shared archive)")
    parser.add_argument("--models", nargs="*", help="model names (default: every model listed)")
    args = parser.parse_args()
    names = args.models or [info.name for info in list_models()]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            with tarfile.open(ARCHIVE) as archive:
                archive.extractall(tmp, filter="data")
            data = Path(tmp) / "fer2013"
        test = load_split(data, "PublicTest")
    views = {name: _each(test.x[..., 0], change) for name, (_, change) in PERTURBATIONS.items()}
    rows = []
    for model in names:
        classifier = ExpressionClassifier(model)
        scores = {
            name: score(classifier.predict(x), test.y, "PublicTest", "none") for name, x in views.items()
        }
        rows.append((model, scores))
        print(model, " ".join(f"{k} {m.accuracy:.2%}" for k, m in scores.items()), flush=True)
    lines = [
        "# Robustness on shifted, rescaled, blurred and re-cropped faces",
        "",
        f"Written by `python benchmarks/robustness.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: "
        f"FER2013 PublicTest ({len(test)} images), each perturbed the same way for every model "
        "(seeded), single pass. Accuracy, then macro-F1 in brackets.",
        "",
        *(f"- `{name}`: {text}" for name, (text, _) in PERTURBATIONS.items()),
        "",
        "| model | " + " | ".join(PERTURBATIONS) + " |",
        "|---" * (len(PERTURBATIONS) + 1) + "|",
    ]
    for model, scores in rows:
        cells = " | ".join(f"{m.accuracy:.2%} ({m.macro_f1:.3f})" for m in scores.values())
        lines.append(f"| `{model}` | {cells} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
