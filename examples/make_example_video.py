"""Render examples/astronaut.mp4: a 4-second clip that slowly zooms and pans over the
public-domain astronaut photo (Eileen Collins, NASA) that scikit-image ships.

    pip install scikit-image
    python examples/make_example_video.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

OUT = Path(__file__).with_name("astronaut.mp4")
SIZE = 320  # output width and height, pixels
FPS = 15
SECONDS = 4
FACE = np.array([220.0, 120.0])  # centre of the face in the 512x512 photo


def main() -> None:
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(OUT), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (SIZE, SIZE))
    n = FPS * SECONDS
    for i in range(n):
        progress = i / (n - 1)
        side = 512 * (1 - 0.45 * progress)  # zoom in from the whole photo to about half of it
        centre = (1 - progress) * np.array([256.0, 256.0]) + progress * FACE  # pan towards the face
        x, y = np.clip(centre - side / 2, 0, 512 - side)
        scale = SIZE / side
        matrix = np.array([[scale, 0, -x * scale], [0, scale, -y * scale]])
        writer.write(cv2.warpAffine(photo, matrix, (SIZE, SIZE), flags=cv2.INTER_AREA))
    writer.release()
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB, {n} frames at {FPS} fps)")


if __name__ == "__main__":
    main()
