"""Video in, four Parquet tables out: decode -> detect -> crop -> classify -> track -> write.

Frames are decoded, detected and cropped one at a time; only the small crops of a chunk of
`chunk_frames` frames are kept, classified together, tracked in frame order and appended
to the faces table. Memory therefore stays constant however long the video is. Decoding and
detection run in a thread of their own, up to `prefetch_frames` frames ahead of the classifier
(`fervideo.prefetch`), so that the two stages keep two cores busy.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from fervideo import __version__
from fervideo.aggregate import Aggregates, faces_batch
from fervideo.classify import ExpressionClassifier
from fervideo.config import ENGINES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, AnalyzeConfig
from fervideo.core import EMOTIONS, Faces
from fervideo.crop import crop_faces
from fervideo.decode import DecodeEnd, VideoInfo, probe, read_frames
from fervideo.detect import FaceDetector, get_detector
from fervideo.errors import FervideoError, SettingError
from fervideo.prefetch import Prefetch
from fervideo.store import ResultStore, video_id
from fervideo.tables import RunInfo, Tables, VideoMeta
from fervideo.track import IoUTracker

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

#: Called with (frames decoded so far, frames in the video) as a video is analysed; the last
#: call, when decoding is over, is (n, n) with the n frames actually decoded (the container's
#: frame count, given before, is an estimate for some formats).
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoResult:
    """What happened to one input of `analyze_many`.

    Attributes:
        path: the input file.
        status: "done" (analysed now), "skipped" (finished by an earlier run with the same
            settings, or by another process during this one), "failed", or "busy" (another
            live process is analysing it into the same folder; only from `Analyzer.run` with
            `wait=False`).
        video: its id in the tables (None if the input is not a file).
        message: why it failed, or (when done) a warning: the video was incomplete.
        frames_analysed: sampled frames analysed (0 unless done).
        faces: faces found.
        tracks: tracks found.
        complete: the video decoded to the end its container announces.
        seconds: wall time per stage (decode, detect, crop, classify, track, write); the first
            three run in the prefetch thread, at the same time as the others.
    """

    path: Path
    status: Literal["done", "skipped", "failed", "busy"]
    video: str | None = None
    message: str = ""
    frames_analysed: int = 0
    faces: int = 0
    tracks: int = 0
    complete: bool = True
    seconds: dict[str, float] = field(default_factory=dict)


class StageClock(defaultdict[str, float]):
    """Seconds spent per stage: `with clock("detect"): ...` adds the block's wall time."""

    def __init__(self) -> None:
        super().__init__(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[stage] += time.perf_counter() - started


class Analyzer:
    """A detector and a classifier, loaded once and applied to any number of videos.

    Args:
        config: the run's settings.
        detector: a `FaceDetector` object to use instead of `config.detector`.
        classifier: an `ExpressionClassifier` to use instead of loading `config.model`.

    Raises:
        FervideoError: the model or the detector cannot be loaded.

    Example:
        >>> analyzer = Analyzer(AnalyzeConfig(fps=2))
        >>> result = analyzer.run("ad.mp4", "fervideo-out")
        >>> result.status, result.faces
        ('done', 31)
    """

    def __init__(
        self,
        config: AnalyzeConfig | None = None,
        detector: FaceDetector | None = None,
        classifier: ExpressionClassifier | None = None,
    ) -> None:
        self.config = config = config or AnalyzeConfig()
        self.detector = detector or get_detector(config.detector, **_detector_options(config))
        self.classifier = classifier or ExpressionClassifier(
            config.model, config.batch_size, config.tta, config.runtime, config.classify_threads
        )
        model = self.classifier.info
        engine = self.detector.engine
        if detector is None:  # the input scale changes which faces are found: recorded with it
            engine += (
                f"; min score {config.min_score}, second look from {config.recheck_score} at "
                f"{config.recheck_face} px, min face {config.min_face} px, max side {config.max_side} px"
            )
        # the crop for faces with eye landmarks (True) and without (False), resolved once
        self.crops = {has: config.crop_for(self.detector.name, has) for has in (True, False)}
        self.run_info = RunInfo(
            model=model.name,
            model_sha256=model.sha256(),
            detector=f"{self.detector.name} ({engine})",
            sample_fps=config.fps,
            version=__version__,
            tta=self.classifier.tta,  # the mode in use, also when a classifier is passed in
        )

    def run(
        self,
        path: str | Path,
        out_dir: str | Path,
        overwrite: bool = False,
        on_progress: ProgressCallback | None = None,
        wait: bool = True,
    ) -> VideoResult:
        """Analyse one video or image and publish its four tables under `out_dir`.

        A video whose tables are already complete is skipped unless `overwrite`, if it was
        analysed with this run's settings (model file, detector, sampling and TTA). Only one
        process writes a video at a time (see `fervideo.store`): if another holds it, this
        waits for it, or with `wait=False` returns at once with status "busy".

        A video that stops decoding early is analysed up to there: status "done",
        `complete` False and a warning in `message` (its summary says so too).

        `on_progress(frames decoded, frames in the video)` is called from the decoding thread
        when `prefetch_frames` > 0, so it must be thread-safe.

        Raises:
            FervideoError: the input is missing, unreadable, not a video, or corrupt; its
                finished tables were made with other settings; or they cannot be written.
                Nothing of it is left behind then, and an earlier result of it is kept.
        """
        path = Path(path)
        if path.is_dir():
            if not os.access(path, os.R_OK | os.X_OK):
                raise FervideoError(f"{path} cannot be read: permission denied.")
            raise FervideoError(f"{path} is a folder with no video or image files in it.")
        video = video_id(path)
        store = ResultStore(out_dir)
        with store.claim(video, wait=wait, source=path) as mine:
            if not mine:
                return VideoResult(path, "busy", video)
            if store.is_done(video) and not overwrite:
                if changed := self.run_info.differences(store.stored_run(video)):
                    stored = ", ".join(f"{setting} {old}" for setting, old, _ in changed)
                    now = ", ".join(f"{setting} {new}" for setting, _, new in changed)
                    raise FervideoError(
                        f"{path} was analysed with other settings ({stored}; this run: {now}); "
                        "pass --overwrite to redo it or choose another --out."
                    )
                log.info("%s: already analysed as %s, skipped", path, video)
                return VideoResult(path, "skipped", video)
            return self._write(path, video, store, on_progress)

    def _write(
        self, path: Path, video: str, store: ResultStore, on_progress: ProgressCallback | None
    ) -> VideoResult:
        info = probe(path)
        clock = StageClock()
        aggregates = Aggregates()
        with store.writing(video, self.run_info, source=path) as pending:
            analysed = Returning(self._analyse(info, clock, on_progress))
            with closing(analysed):  # releases the decoder at once if writing fails
                for times, faces, timestamps in analysed:
                    with clock("write"):
                        aggregates.add_frames(times)
                        aggregates.add_faces(faces, timestamps)
                        pending.write_faces(faces_batch(video, faces, timestamps))
            end: DecodeEnd = analysed.value
            meta = _video_meta(video, info, end)
            pending.commit(
                aggregates.timeline(video, meta.duration_s),
                aggregates.tracks(video),
                aggregates.summary(meta, self.run_info),
            )
        warning = "" if end.complete else end.describe(info)
        done = VideoResult(
            path,
            "done",
            video,
            warning,
            aggregates.frames_analysed,
            aggregates.n_faces,
            aggregates.n_tracks,
            end.complete,
            dict(clock),
        )
        log.info(
            "%s: %d frames analysed, %d faces, %d tracks", path, done.frames_analysed, done.faces, done.tracks
        )
        if warning:
            log.warning("%s", warning)
        return done

    def _analyse(
        self, info: VideoInfo, clock: StageClock, on_progress: ProgressCallback | None
    ) -> Generator[tuple[np.ndarray, Faces, np.ndarray], None, DecodeEnd]:
        """Per chunk of sampled frames: their timestamps (m,), their faces (n) classified and
        tracked, and each face's frame timestamp (n,). Returns how decoding ended."""
        tracker = IoUTracker(self.config.iou_threshold, self.config.max_track_gap_s)
        frames = self._decode_detect_crop(info, clock, on_progress)
        ahead = self.config.prefetch_frames
        detected = Prefetch(frames, ahead) if ahead else Returning(frames)
        with closing(detected):  # releases the capture
            while chunk := list(islice(detected, self.config.chunk_frames)):
                times = np.array([t for t, _ in chunk], np.float64)
                counts = [len(f) for _, f in chunk]
                faces = Faces.concat([f for _, f in chunk])
                with clock("classify"):
                    probs = (
                        self.classifier.predict(faces.crops)
                        if len(faces)
                        else np.zeros((0, len(EMOTIONS)), np.float32)
                    )
                faces = faces.with_(probs=probs, crops=None)
                with clock("track"):
                    bounds = np.cumsum([0, *counts])
                    ids = [
                        tracker.update(faces[a:b], t).track_id
                        for a, b, t in zip(bounds[:-1], bounds[1:], times, strict=True)
                    ]
                yield times, faces.with_(track_id=np.concatenate(ids)), np.repeat(times, counts)
        return detected.value

    def _decode_detect_crop(
        self, info: VideoInfo, clock: StageClock, on_progress: ProgressCallback | None
    ) -> Generator[tuple[float, Faces], None, DecodeEnd]:
        """Decode the sampled frames, find their faces and cut their crops: yields each frame's
        timestamp and faces (with crops); returns how decoding ended."""
        frames = Returning(read_frames(info, self.config.fps))
        with closing(frames):  # releases the capture
            while True:
                with clock("decode"):
                    frame = next(frames, None)
                if frame is None:
                    break
                with clock("detect"):
                    faces = self.detector.detect(frame.image, frame.index)
                with clock("crop"):
                    settings = self.crops[faces.landmarks is not None]
                    faces = faces.with_(crops=crop_faces(frame.image, faces, settings))
                if on_progress:
                    on_progress(frame.index + 1, info.frame_count)
                yield frame.time_s, faces
        end: DecodeEnd = frames.value
        if on_progress:  # the last sampled frame is rarely the video's last one
            on_progress(end.frames, end.frames)
        return end


class Returning(Iterator[T]):
    """Iterates a generator and keeps the value it returns (`value`, once it is exhausted)."""

    def __init__(self, generator: Generator[T, None, R]) -> None:
        self._generator = generator
        self.value: R | None = None
        self._done = False

    def __iter__(self) -> Returning[T]:
        return self

    def __next__(self) -> T:
        try:
            return next(self._generator)
        except StopIteration as stop:
            if not self._done:  # an exhausted generator raises again, without the value
                self.value, self._done = stop.value, True
            raise

    def close(self) -> None:
        self._generator.close()


def _detector_options(config: AnalyzeConfig) -> dict[str, object]:
    options: dict[str, object] = {
        "min_score": config.min_score,
        "max_side": config.max_side,
        "min_face": config.min_face,
        "recheck_score": config.recheck_score,
        "recheck_face": config.recheck_face,
    }
    if config.detector == "retinaface":
        options["weights"] = config.retinaface_weights
    return options


def _video_meta(video: str, info: VideoInfo, end: DecodeEnd) -> VideoMeta:
    return VideoMeta(
        video=video,
        path=str(info.path.resolve()),
        duration_s=max(info.duration_s, end.last_time_s),
        fps=info.fps,
        width=info.width,
        height=info.height,
        codec=info.codec,
        frames=info.frame_count,
        frames_decoded=end.frames,
        complete=end.complete,
    )


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, and folders replaced by the videos and images inside them (recursively,
    sorted, hidden files skipped). A folder with none, and a folder inside that cannot be read,
    stay in the list, to be reported when they are analysed."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        paths.extend((_media_in(item) if item.is_dir() else []) or [item])
    return list(dict.fromkeys(paths))


def _media_in(folder: Path) -> list[Path]:
    """The videos and images under `folder`, then the subfolders that could not be read."""
    media = {*VIDEO_SUFFIXES, *IMAGE_SUFFIXES}
    found: list[Path] = []
    unreadable: list[Path] = []
    for parent, subfolders, files in os.walk(
        folder, onerror=lambda err: unreadable.append(Path(err.filename))
    ):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        found += [Path(parent, f) for f in files if not f.startswith(".") and Path(f).suffix.lower() in media]
    return sorted(found) + sorted(p for p in unreadable if p != folder)


def analyze_one(
    analyzer: Analyzer,
    path: Path,
    out_dir: str | Path,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    wait: bool = True,
) -> VideoResult:
    """`analyzer.run`, with any failure turned into a "failed" result: one bad input never
    stops a batch (an unexpected error is logged with its traceback and reported in one line)."""
    try:
        return analyzer.run(path, out_dir, overwrite, on_progress, wait)
    except FervideoError as err:
        log.warning("%s", err)
        return VideoResult(path, "failed", message=str(err))
    except Exception as err:  # a bug or an unforeseen input: fail this input, keep the batch
        log.exception("%s: unexpected error", path)
        return VideoResult(path, "failed", message=f"{path}: unexpected error ({type(err).__name__}: {err}).")


def analyze_many(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    config: AnalyzeConfig | None = None,
    *,
    overwrite: bool = False,
    on_progress: Callable[[Path, int, int], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
    analyzer: Analyzer | None = None,
    engine: str = "local",
    address: str | None = None,
) -> list[VideoResult]:
    """Analyse files and folders; a bad input is reported in its result and never stops the rest.

    Another process analysing into the same `out_dir` may hold a video when this one reaches
    it: that video is put off to the end, then waited for (and "skipped" if the other process
    finished it with the same settings), so the two processes share the work.

    Args:
        inputs: video or image files, or folders of them.
        out_dir: output folder (see `fervideo.store` for the layout).
        config: the run's settings.
        overwrite: redo videos already finished in `out_dir`.
        on_progress: called with (path, frames decoded, frames in the video), from a thread of
            its own (the decoding thread, or the engine's event thread with several workers):
            it must be thread-safe.
        on_result: called with each input's result as soon as it is known.
        analyzer: a ready `Analyzer` to use in this process instead of building one from
            `config` (local engine only); without one, several inputs go to `config.workers`
            worker processes (`fervideo.engines.local`), with the same results and tables.
        engine: "local" (this process) or "ray": the videos go to the actors of a Ray cluster
            (`fervideo.engines.ray`; `config.ray` lays them out), with the same results, tables
            and callbacks; inputs and `out_dir` must be on a file system every node sees.
        address: the Ray cluster ("HEAD:6379"); None: $RAY_ADDRESS, a cluster started on this
            machine by `ray start`, else a local Ray instance for this run.

    Returns:
        One result per input file, in the order of the inputs.

    Raises:
        FervideoError: the model or the detector cannot be loaded (before any input is read);
            with engine "ray", also: Ray is not installed, or the cluster cannot be reached.
        SettingError: an unknown engine, or an option the engine does not take.
    """
    if engine not in ENGINES:
        raise SettingError(f"engine must be one of {', '.join(ENGINES)}, but got {engine!r}")
    if engine == "ray":
        if analyzer is not None:
            raise SettingError("analyzer= runs here; the Ray engine builds one per actor from config")
        from fervideo.engines.ray import analyze_on_ray

        return analyze_on_ray(
            expand_inputs(inputs),
            out_dir,
            config,
            overwrite=overwrite,
            on_progress=on_progress,
            on_result=on_result,
            address=address,
        )
    if address is not None:
        raise SettingError("address= is for engine='ray'")
    paths = expand_inputs(inputs)
    if analyzer is None and (workers := local_workers(config, len(paths))) > 1:
        from fervideo.engines.local import analyze_in_workers

        results = analyze_in_workers(
            paths,
            out_dir,
            config or AnalyzeConfig(),
            workers,
            overwrite=overwrite,
            on_progress=on_progress,
            on_result=on_result,
        )
        with suppress(FervideoError):
            ResultStore(out_dir).sweep()  # what killed runs left in staging
        return results
    analyzer = analyzer or Analyzer(config)
    results: dict[Path, VideoResult] = {}
    busy: list[Path] = []
    for wait, batch in ((False, paths), (True, busy)):
        for path in list(batch):
            progress = (
                (lambda done, total, path=path: on_progress(path, done, total)) if on_progress else None
            )
            result = analyze_one(analyzer, path, out_dir, overwrite, progress, wait)
            if result.status == "busy":
                busy.append(path)
                continue
            results[path] = result
            if on_result:
                on_result(result)
    with suppress(FervideoError):
        ResultStore(out_dir).sweep()  # what killed runs left in staging
    return [results[path] for path in paths]


def local_workers(config: AnalyzeConfig | None, inputs: int) -> int:
    """Worker processes the local engine starts for `inputs` files: `config.workers`, never more
    than the inputs; 1 means the calling process does the work.

    None gives one worker per core. A process keeps about 1.5 cores busy by itself (decoding and
    detection run in their prefetch thread beside the classifier), and since the classifier
    runs in ONNX Runtime a worker starts in under a second: on 2 cores, 2 workers took 0.81x the
    wall time of 1 on 4 clips of 15 and 66 s (benchmarks/VS_FER.md) and 0.74-0.83x on clips of
    66 and 93 s, for the same CPU-seconds.
    """
    workers = (config or AnalyzeConfig()).workers
    if workers is None:
        workers = os.cpu_count() or 1
    return max(1, min(workers, inputs))


def analyze(
    path: str | Path,
    out_dir: str | Path | None = None,
    config: AnalyzeConfig | None = None,
    *,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    **options: object,
) -> Tables:
    """Analyse one video (or image) and return its four tables as DataFrames.

    Args:
        path: a video file, or an image (a one-frame video).
        out_dir: folder to keep the Parquet tables in; None keeps nothing on disk.
        config: settings; keyword `options` override single fields, e.g. `fps=2`.
        overwrite: redo the video if `out_dir` already holds its finished tables.
        on_progress: called with (frames decoded so far, frames in the video), from the
            decoding thread (`AnalyzeConfig.prefetch_frames` > 0): it must be thread-safe.

    Returns:
        `Tables(faces, timeline, tracks, summary)`.

    Raises:
        FervideoError: missing, unreadable or corrupt input, or a model/detector problem.

    Example:
        >>> import fervideo
        >>> faces, timeline, tracks, summary = fervideo.analyze("ad.mp4", fps=2)
        >>> faces.groupby("track")["happy"].mean()
    """
    if Path(path).is_dir():
        raise FervideoError(
            f"{path} is a folder: fervideo.analyze takes one video or image; "
            "use fervideo.analyze_many for folders."
        )
    config = replace(config or AnalyzeConfig(), **options)
    analyzer = Analyzer(config)
    if out_dir is None:
        with tempfile.TemporaryDirectory(prefix="fervideo-") as tmp:
            result = analyzer.run(path, tmp, on_progress=on_progress)
            return ResultStore(tmp).read(result.video)
    result = analyzer.run(path, out_dir, overwrite, on_progress)
    return ResultStore(out_dir).read(result.video)
