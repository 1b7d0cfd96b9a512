"""The `fer` side of `benchmarks/vs_fer.py`, run in fer's own environment (benchmarks/fer_env.py):

    .devdata/ferenv/bin/python benchmarks/fer_loop.py VIDEO EVERY

fer's default `FER()` (Haar cascade, its TFLite expression model) on every EVERY-th frame of
VIDEO, the loop its README shows for videos. Skipped frames are grabbed, not converted to
pixels, as fervideo's decoder does, so both sides pay the same decoding. Prints one JSON line:
frames analysed, faces found, and frames with at least one face.
"""

from __future__ import annotations

import json
import sys

import cv2
from fer.fer import FER  # fer 25.10.3's package exports nothing itself


def main(video: str, every: int) -> None:
    detector = FER()
    capture = cv2.VideoCapture(video)
    index, frames, faces, seen = -1, 0, 0, 0
    while capture.grab():
        index += 1
        if index % every:
            continue
        ok, image = capture.retrieve()
        if not ok:
            break
        found = len(detector.detect_emotions(image))
        faces += found
        seen += found > 0
        frames += 1
    capture.release()
    print(json.dumps({"frames": frames, "faces": faces, "frames_with_faces": seen}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
