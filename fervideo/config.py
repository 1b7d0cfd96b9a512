"""Every tunable of fervideo in one place: analysis and training settings as dataclasses.

The CLI's defaults are read from these classes, so a default changes here and nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from fervideo.errors import SettingError

#: Name of the bundled model `analyze` uses when `--model` is not given.
DEFAULT_MODEL = "resvgg_ensemble"
#: Architectures `fervideo train --model` builds (`fervideo.training.architectures`' registry).
TRAINABLE = ("custom_cnn", "resnet", "resnet_imagenet", "resvgg", "resvgg_deep")
#: Output folder of `analyze` when `--out` is not given.
DEFAULT_OUT = Path("fervideo-out")
#: Test-time augmentation modes (see `fervideo.tta`, which re-exports this).
TTA_MODES = ("none", "flip", "crops")
#: How the classifier runs a model (see `fervideo.classify.ExpressionClassifier`).
RUNTIMES = ("auto", "onnx", "keras")
#: Side of the square grayscale face crop every model takes.
CROP_SIZE = 48
#: File suffixes treated as videos when a folder is analysed; stills are one-frame videos.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Where `analyze_many` runs the videos: in this process, or on a Ray cluster (`fervideo.engines.ray`).
ENGINES = ("local", "ray")


def _check(owner: str, settings: object, checks: tuple[tuple[str, bool, str], ...]) -> None:
    """Raise `SettingError` for the first (name, ok, expected) whose `ok` is False."""
    for name, ok, expected in checks:
        if not ok:
            value = getattr(settings, name)
            raise SettingError(f"{owner}.{name} must be {expected}, but got {value!r}")


def _positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


@dataclass(frozen=True)
class RayConfig:
    """How the Ray engine (`fervideo.engines.ray`) lays a run out on the cluster.

    Video actors each analyse whole videos (decode, detect, crop, and classify unless the
    classify stage is split off); classifier actors, when there are any, take the face crops of
    every video actor in large chunks, typically one per GPU.

    Attributes:
        actors: video actors; None: as many as the cluster's free CPUs hold (`actor_cpus`
            each, after the classifier actors), at most one per input.
        actor_cpus: CPUs each video actor reserves (its TensorFlow and OpenCV threads).
        retries: times a video is started again after the worker analysing it died (killed,
            out of memory, node lost); then it fails alone.
        classify_actors: classifier actors; None: one per `classify_gpus` of the cluster's
            free GPUs, so none on a CPU-only cluster; 0: video actors always classify.
        classify_gpus: GPUs each classifier actor reserves; a fraction lets several share
            one GPU (TensorFlow's memory growth is on), 0 runs them on CPUs.
        classify_cpus: CPUs each classifier actor reserves.
        classify_chunk_frames: a video actor's `chunk_frames` when the stage is split: the
            frames whose crops go to a classifier actor in one request.
    """

    actors: int | None = None
    actor_cpus: float = 1.0
    retries: int = 2
    classify_actors: int | None = None
    classify_gpus: float = 1.0
    classify_cpus: float = 1.0
    classify_chunk_frames: int = 256

    def __post_init__(self) -> None:
        checks = (
            ("actors", self.actors is None or self.actors >= 1, "an integer >= 1, or None"),
            ("actor_cpus", _positive(self.actor_cpus), "a number > 0"),
            ("retries", self.retries >= 0, "an integer >= 0"),
            (
                "classify_actors",
                self.classify_actors is None or self.classify_actors >= 0,
                "an integer >= 0, or None",
            ),
            ("classify_gpus", self.classify_gpus >= 0, "a number >= 0"),
            ("classify_cpus", self.classify_cpus >= 0, "a number >= 0"),
            ("classify_chunk_frames", self.classify_chunk_frames >= 1, "an integer >= 1"),
        )
        _check("RayConfig", self, checks)


@dataclass(frozen=True)
class CropSettings:
    """How a face crop is cut around a detector's box (`fervideo.crop`).

    Each detector frames faces its own way, while a model expects the framing it was trained
    on (FER2013's). `benchmarks/calibrate_crop.py` measures these on FER2013 PublicTest faces
    rendered into frames; `CROPS` holds the winners per detector.

    Attributes:
        side: crop side as a multiple of the box's longer side.
        shift: the crop's centre lies this multiple of the box's longer side below the box's
            centre (negative: above).
        square: cut a square (True), or a rectangle of the box's own aspect squeezed to 48x48.
        upright: rotate the crop about its centre so the eyes are level, when the detector
            gives eye landmarks.
        antialias: cut large faces at up to 4x the crop size and area-average them down
            (False: one bilinear warp straight to 48x48, which aliases).
    """

    side: float = 1.0
    shift: float = 0.0
    square: bool = True
    upright: bool = True
    antialias: bool = True

    def __post_init__(self) -> None:
        checks = (
            ("side", _positive(self.side), "a number > 0"),
            ("shift", math.isfinite(self.shift), "a finite number"),
        )
        _check("CropSettings", self, checks)


#: The calibrated crop of each detector, by (detector name, whether it gives landmarks); other
#: detectors get `CropSettings()`. Figures: benchmarks/CALIBRATION.md. RetinaFace could not be
#: calibrated (its weights cannot be had on the machine that ran it): it takes YuNet's crop.
CROPS: dict[tuple[str, bool], CropSettings] = {
    ("yunet", True): CropSettings(side=1.0, shift=-0.01),
    ("yunet", False): CropSettings(side=1.0, shift=-0.01),
    ("retinaface", True): CropSettings(side=1.0, shift=-0.01),
}


@dataclass(frozen=True)
class AnalyzeConfig:
    """Settings of one `analyze` run.

    Attributes:
        model: bundled model name, "default", or a path to a `.keras` file.
        detector: face detector back end ("yunet" or "retinaface").
        fps: frames sampled per second of video; None analyses every frame.
        min_score: detector confidence (0-1) below which a face is dropped.
        recheck_score: a face scoring from this up to `min_score` in the shrunk frame gets a
            second look in the full-size frame (the face scaled to `recheck_face` px, twice its
            box around it) and is kept when that look scores it `min_score` or more: faces the
            shrinking blurred are found, textures that look like faces only when shrunk are not.
            `min_score` or more turns the second look off.
        recheck_face: side in pixels a face is scaled to for its second look.
        min_face: smallest face to find, in pixels of the source frame: frames are shrunk
            before detection until such a face is the detector's smallest reliable face (YuNet:
            16 px), which makes detection cheaper in proportion to the area; faces smaller than
            this may be missed (their 48-px crops, upscaled, carry little expression anyway).
        max_side: frames are also shrunk to at most this long side (pixels) before detection.
        crop: how faces are cut from the detector's boxes; None: the calibrated `CROPS`
            entry of the detector in use.
        batch_size: face crops per classifier call.
        runtime: what runs the model: "onnx" (ONNX Runtime on the CPU, the model converted
            once and cached), "keras" (TensorFlow, on a GPU when it sees one) or "auto"
            ("keras" when an NVIDIA GPU is visible, else "onnx").
        classify_threads: CPU threads of the classifier; None: its runtime's default (every
            core). The engines set it for their worker processes.
        chunk_frames: frames decoded and detected before one batched classify.
        prefetch_frames: frames decoded, detected and cropped ahead of the classifier, in a
            thread of their own (only their crops are held); 0 runs the two stages in turn.
        tta: test-time augmentation: "none", "flip" (mirrored crop too, 2x classifier
            time) or "crops" (five shifted crops and their mirrors, 10x).
        iou_threshold: minimum IoU to continue a track between sampled frames.
        max_track_gap_s: seconds a track may go unseen before it ends.
        retinaface_weights: weights file for the retinaface detector (else
            .deepface/weights/retinaface.onnx under $DEEPFACE_HOME or the home folder).
        workers: worker processes of the local engine when several inputs are analysed: each
            loads the model once and analyses whole videos, one at a time; None: one per core
            of this machine; 1: everything in the calling process.
        ray: the Ray engine's layout (used only with `engine="ray"`).

    Raises:
        SettingError: a setting is out of its range (a `ValueError` and a `FervideoError`).
    """

    model: str | Path = "default"
    detector: str = "yunet"
    fps: float | None = 5.0
    min_score: float = 0.5
    recheck_score: float = 0.25
    recheck_face: int = 96
    min_face: int = 32
    max_side: int = 960
    crop: CropSettings | None = None
    batch_size: int = 256
    runtime: str = "auto"
    classify_threads: int | None = None
    chunk_frames: int = 32
    prefetch_frames: int = 64
    tta: str = "none"
    iou_threshold: float = 0.3
    max_track_gap_s: float = 1.0
    retinaface_weights: Path | None = None
    workers: int | None = None
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        checks = (
            ("fps", self.fps is None or _positive(self.fps), "a number > 0, or None for every frame"),
            ("min_face", self.min_face >= 1, "an integer >= 1 (pixels)"),
            ("max_side", self.max_side >= 1, "an integer >= 1 (pixels)"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("chunk_frames", self.chunk_frames >= 1, "an integer >= 1"),
            ("prefetch_frames", self.prefetch_frames >= 0, "an integer >= 0"),
            (
                "workers",
                self.workers is None or self.workers >= 1,
                "an integer >= 1, or None for one per core",
            ),
            ("min_score", 0 <= self.min_score <= 1, "a number in [0, 1]"),
            ("recheck_score", 0 <= self.recheck_score <= 1, "a number in [0, 1]"),
            ("recheck_face", self.recheck_face >= 1, "an integer >= 1 (pixels)"),
            ("tta", self.tta in TTA_MODES, f"one of {', '.join(TTA_MODES)}"),
            ("runtime", self.runtime in RUNTIMES, f"one of {', '.join(RUNTIMES)}"),
            (
                "classify_threads",
                self.classify_threads is None or self.classify_threads >= 1,
                "an integer >= 1, or None",
            ),
        )
        _check("AnalyzeConfig", self, checks)

    def crop_for(self, detector: str, landmarks: bool) -> CropSettings:
        """The crop for faces found by `detector` (with or without eye landmarks)."""
        if self.crop is not None:
            return self.crop
        return CROPS.get((detector, landmarks), CropSettings())


#: How `fervideo report` groups videos into audiences (see `fervideo.report.audience`).
GROUPINGS = ("auto", "folders", "none")


@dataclass(frozen=True)
class ReportConfig:
    """Settings of `fervideo report`.

    Attributes:
        groups: "auto" (an audience per folder when the videos form a folder of folders),
            "folders" (always one audience per parent folder) or "none".
        inline_videos: up to this many videos, every video's section is in the one HTML file;
            beyond, each video gets its own page and the file is an index.
        compare_videos: videos per comparison chart (a longer index gets several charts).
        edge_seconds: seconds of the opening and ending figures.
        moment_faces: face thumbnails shown per key moment.
        longest_tracks: tracks whose traces are drawn.
        thumb_width: pixels, the most a video's thumbnail is wide.
        thumb_height: pixels, the most a video's thumbnail is high.
        picture_width: pixels, the most a still image shown with its faces' boxes is wide or high.
        face_px: pixels, side of a face thumbnail.
        jpeg_quality: quality (0-100) of the embedded thumbnails.
        chart_dpi: resolution of the charts.
    """

    groups: str = "auto"
    inline_videos: int = 20
    compare_videos: int = 50
    edge_seconds: int = 3
    moment_faces: int = 4
    longest_tracks: int = 5
    thumb_width: int = 120
    thumb_height: int = 80
    picture_width: int = 640
    face_px: int = 96
    jpeg_quality: int = 80
    chart_dpi: int = 80

    def __post_init__(self) -> None:
        checks = (
            ("groups", self.groups in GROUPINGS, f"one of {', '.join(GROUPINGS)}"),
            ("inline_videos", self.inline_videos >= 0, "an integer >= 0"),
            ("compare_videos", self.compare_videos >= 1, "an integer >= 1"),
            ("edge_seconds", self.edge_seconds >= 1, "an integer >= 1"),
            ("jpeg_quality", 0 <= self.jpeg_quality <= 100, "an integer in [0, 100]"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise SettingError(f"ReportConfig.{name} must be {expected}, but got {getattr(self, name)!r}")


@dataclass(frozen=True)
class AnnotateConfig:
    """Settings of `fervideo annotate`'s output video.

    Attributes:
        video_codecs: encoders tried in order (the first PyAV's FFmpeg has is used).
        crf: libx264's constant rate factor (lower is better quality, larger files).
        mpeg4_qscale: the mpeg4 encoder's quantiser (2-31, lower is better) when x264 is missing.
        copy_audio: audio codecs copied into the MP4 as they are; others are re-encoded as AAC.
    """

    video_codecs: tuple[str, ...] = ("libx264", "mpeg4")
    crf: int = 20
    mpeg4_qscale: int = 3
    copy_audio: tuple[str, ...] = ("aac", "mp3", "ac3", "eac3", "alac", "opus", "flac")


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly training augmentation (the study's flip, zoom and rotation, plus shift,
    random erasing, and low resolution: the share of images shown as a small face, 20 or 32
    px, upscaled, as small faces in video reach the model)."""

    flip: bool = True
    zoom: float = 0.15
    rotation_deg: float = 15.0
    shift: float = 0.1
    erasing: float = 0.25
    low_resolution: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one `train` run.

    Attributes:
        architecture: a name from `fervideo.training.architectures.ARCHITECTURES`.
        data: FER2013 as the Kaggle CSV or the image-folder layout.
        out: run folder: checkpoints, history, plots, metrics and the final model.
        epochs: passes over the training split (the study trained 150).
        holdout: fraction of Training held out for validation; 0 validates on the data's
            `val/` folder if present, else on PublicTest.
        label_smoothing: cross-entropy label smoothing.
        mixed_precision: train in bfloat16; None chooses it where the hardware computes
            bfloat16 natively (see `fervideo.training.precision`: emulated, it was 6.7x slower).
        warmup_epochs: linear learning-rate warm-up before the cosine decay.
        imagenet_weights: ResNet-50 notop weights file for `resnet_imagenet`.
        recalibrate_bn: after training, re-estimate the batch-normalisation statistics on the
            un-augmented training split with the final weights (`fervideo.training.batchnorm`).
        class_balance: weight each class's loss by (its images)^-class_balance (0: unweighted,
            1: every class the same total weight), so rare classes such as disgust count.
        teacher: a model (bundled name or `.keras` path) to distil from; None trains on the
            labels alone.
        distill_weight: share of the teacher's term in the loss, 0-1.
        temperature: distillation temperature (>= 1).
    """

    architecture: str = "custom_cnn"
    data: Path = Path("fer2013")
    out: Path = Path("runs")
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    warmup_epochs: int = 1
    holdout: float = 0.0
    seed: int = 0
    mixed_precision: bool | None = None
    resume: bool = False
    imagenet_weights: Path | None = None
    recalibrate_bn: bool = False
    class_balance: float = 0.0
    teacher: str | Path | None = None
    distill_weight: float = 0.5
    temperature: float = 2.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
