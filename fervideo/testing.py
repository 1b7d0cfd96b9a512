"""Stand-ins for tests and benchmarks: a tiny random model with the bundled models' contract,
and tables of known contents written without any model.

The tiny model's predictions mean nothing; it lets the pipeline run end to end (and be timed
without a real model's classification cost) where no trained model is at hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fervideo import __version__
from fervideo.aggregate import Aggregates, faces_batch
from fervideo.config import CROP_SIZE
from fervideo.core import EMOTIONS, Faces
from fervideo.store import ResultStore, video_id
from fervideo.tables import RunInfo, VideoMeta


def save_tiny_model(path: str | Path, seed: int = 0) -> Path:
    """Save a random model with the bundled models' contract: (N, 48, 48, 1) pixels 0-255 in,
    (N, 7) softmax probabilities in `EMOTIONS` order out (Rescaling, Flatten, Dense).

    Args:
        path: the `.keras` file to write.
        seed: Keras' random seed for the weights.

    Returns:
        `path`, as a `Path`.
    """
    import keras  # heavy: imported only when a model is made

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((CROP_SIZE, CROP_SIZE, 1)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Flatten(),
            keras.layers.Dense(len(EMOTIONS), activation="softmax"),
        ]
    )
    path = Path(path)
    model.save(path)
    return path


def write_tables(
    out_dir: str | Path,
    path: str | Path,
    faces: Faces,
    timestamps: np.ndarray,
    frame_times: np.ndarray,
    *,
    fps: float,
    size: tuple[int, int],
    sample_fps: float | None = None,
) -> str:
    """Publish a video's four tables into an output folder from faces given as they would come
    out of the classifier and tracker, through the real aggregation and store code: tables with
    known contents, without a model or a detector.

    Args:
        out_dir: the output folder.
        path: the source video the tables describe (it need not exist).
        faces: classified (`probs`) and tracked (`track_id`) faces, `frame_index` set.
        timestamps: (n,) seconds, each face's frame time.
        frame_times: seconds, the time of every analysed frame (with or without faces).
        fps: the source's frame rate.
        size: the source's (width, height).
        sample_fps: the sampling rate recorded in the tables (None: every frame).

    Returns:
        The video's id.
    """
    path = Path(path)
    video = video_id(path)
    duration = max(float(np.max(frame_times, initial=0.0)) + 1 / fps, 0.0)
    frames = round(duration * fps)
    aggregates = Aggregates()
    aggregates.add_frames(np.asarray(frame_times, np.float64))
    aggregates.add_faces(faces, np.asarray(timestamps, np.float64))
    run = RunInfo("synthetic", "0" * 64, "synthetic (none)", sample_fps, __version__, "none")
    meta = VideoMeta(video, str(path.absolute()), duration, fps, *size, "synthetic", frames, frames, True)
    store = ResultStore(out_dir)
    with store.claim(video, wait=True), store.writing(video, run) as pending:
        pending.write_faces(faces_batch(video, faces, timestamps))
        pending.commit(
            aggregates.timeline(video, duration), aggregates.tracks(video), aggregates.summary(meta, run)
        )
    return video
