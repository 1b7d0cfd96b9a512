"""Analyse a video with the Python API and show what was found.

    python examples/analyze_video.py                      # the example clip, default model
    python examples/analyze_video.py ad.mp4 --fps 2 --model path/to/model.keras

The tables are written under --out (default fervideo-out/), as `fervideo analyze` does.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import fervideo
from fervideo.config import DEFAULT_OUT

EXAMPLE = Path(__file__).with_name("astronaut.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video", nargs="?", type=Path, default=EXAMPLE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--fps", type=float, default=fervideo.AnalyzeConfig().fps)
    parser.add_argument("--model", default="default", help="bundled model name or .keras file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # fervideo logs what it does

    faces, timeline, tracks, summary = fervideo.analyze(
        args.video, args.out, fps=args.fps, model=args.model, overwrite=True
    )

    video = summary.iloc[0]
    print(
        f"{args.video}: {video.duration:.1f} s, {video.frames_analysed} frames analysed, "
        f"{video.faces} faces in {video.tracks} track(s); mostly {video.emotion}"
    )
    print("\nFirst faces:")
    print(faces[["frame", "timestamp", "track", "x", "y", "w", "h", "score", "emotion"]].head())
    print("\nMean probability per class, second by second:")
    print(timeline.set_index("second")[list(fervideo.EMOTIONS)].round(2))
    print("\nPer track:")
    print(tracks[["track", "first_timestamp", "last_timestamp", "frames", "emotion"]])


if __name__ == "__main__":
    main()
