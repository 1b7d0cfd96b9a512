"""Read the tables that `fervideo analyze` wrote, for every video at once.

    fervideo analyze examples/astronaut.mp4 --out fervideo-out
    python examples/read_results.py fervideo-out

`fervideo.read_results` reads every finished video's four tables at once; Polars, DuckDB and
Spark read the same files with a glob, e.g. in DuckDB:

    SELECT video, emotion, count(*) FROM 'fervideo-out/videos/*/faces.parquet' GROUP BY ALL;
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq

from fervideo import read_results
from fervideo.config import DEFAULT_OUT
from fervideo.core import EMOTIONS


def main(out: Path) -> None:
    faces, timeline, _, summary = read_results(out)

    print("Videos:")
    columns = ["video", "duration", "frames_analysed", "faces", "tracks", "emotion"]
    print(summary[columns].to_string(index=False))

    print("\nKey moments (second at which each class's share of faces peaks):")
    print(summary.set_index("video")[[f"{e}_peak" for e in EMOTIONS]].to_string())

    print("\nTop class per track:")
    per_track = faces.groupby(["video", "track"])[list(EMOTIONS)].mean().idxmax(axis=1).rename("emotion")
    print(per_track.to_string())

    print("\nSeconds without any face:")
    print(timeline[timeline["faces"] == 0].groupby("video")["second"].apply(list).to_string())

    first = next((out / "videos").glob("*/faces.parquet"))
    print(f"\nHow {first.parent.name} was made (Parquet key-value metadata):")
    for key, value in pq.read_schema(first).metadata.items():
        if key.startswith(b"fervideo."):
            print(f"  {key.decode()}: {value.decode()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
