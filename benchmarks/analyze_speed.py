"""Time `analyze` on a real clip and record the result in benchmarks/RESULTS.md.

    python benchmarks/analyze_speed.py                         # ../shared/media/woman.mp4, default model
    python benchmarks/analyze_speed.py --model path/to.keras   # another model
    python benchmarks/analyze_speed.py --tiny-model            # a random stand-in (pipeline cost only)

Reports analysed frames per wall-clock second and per CPU-second (all threads), the time per
stage, and the process's peak resident memory. Model loading is timed apart from the run.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import cv2

import fervideo
from fervideo.classify import ExpressionClassifier
from fervideo.config import AnalyzeConfig
from fervideo.pipeline import Analyzer
from fervideo.testing import save_tiny_model

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "media" / "woman.mp4"
RESULTS = Path(__file__).with_name("RESULTS.md")
T = TypeVar("T")


@dataclass
class Timing:
    wall_s: float
    cpu_s: float


def timed(fn: Callable[[], T]) -> tuple[T, Timing]:
    """Run fn(); return its result and the wall and CPU (user + system, all threads) time."""
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    result = fn()
    return result, Timing(time.perf_counter() - wall0, _cpu_s() - cpu0)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = AnalyzeConfig()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=CLIP)
    parser.add_argument("--model", default=str(defaults.model))
    parser.add_argument("--tiny-model", action="store_true", help="use a random stand-in model")
    parser.add_argument("--fps", type=float, default=defaults.fps)
    parser.add_argument("--every-frame", action="store_true")
    parser.add_argument("--detector", default=defaults.detector)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    return parser.parse_args(argv)


def settings_line(analyzer: Analyzer) -> str:
    """The report's line on the run's settings."""
    config, run = analyzer.config, analyzer.run_info
    return (
        f"- settings: detector `{run.detector}`, sampling {run.sampling}, "
        f"batch size {config.batch_size}, TTA {config.tta}"
    )


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # read when TensorFlow loads, with the model
    args = parse_args()
    if not args.video.is_file():
        raise SystemExit(f"{args.video} not found (pass --video)")

    with tempfile.TemporaryDirectory() as tmp:
        model = save_tiny_model(Path(tmp) / "tiny-random.keras") if args.tiny_model else args.model
        fps = None if args.every_frame else args.fps
        config = AnalyzeConfig(model=model, detector=args.detector, fps=fps)
        import keras  # noqa: F401 (so that "model load" times the model file, not TensorFlow's import)

        classifier, load = timed(lambda: ExpressionClassifier(config.model, config.batch_size, config.tta))
        analyzer = Analyzer(config, classifier=classifier)
        load_avg = os.getloadavg()[0]
        result, run = timed(lambda: analyzer.run(args.video, Path(tmp) / "out"))
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info = fervideo.probe(args.video)

    frames = result.frames_analysed
    rows = [
        ("analysed frames", f"{frames} of {info.frame_count} ({info.duration_s:.1f} s of video)"),
        ("faces found", f"{result.faces} in {result.tracks} track(s)"),
        ("wall time", f"{run.wall_s:.2f} s ({info.duration_s / run.wall_s:.1f}x real time)"),
        ("analysed frames per second", f"{frames / run.wall_s:.1f}"),
        ("analysed frames per CPU-second", f"{frames / run.cpu_s:.1f} ({run.cpu_s:.2f} CPU-s)"),
        ("peak resident memory", f"{peak_rss_mib:.0f} MiB (whole process, TensorFlow included)"),
        ("model load (TensorFlow already imported)", f"{load.wall_s:.2f} s"),
        *(
            (f"{stage} (ms per analysed frame)", f"{1000 * s / max(frames, 1):.1f}")
            for stage, s in result.seconds.items()
        ),
    ]
    model_line = (
        "**a tiny random stand-in model (Flatten + Dense)**: these numbers measure decoding, detection, "
        "cropping, tracking and writing, but not a real model's classification cost; rerun with the "
        "default model once it is bundled"
        if args.tiny_model
        else f"`{classifier.info.name}` (sha256 `{classifier.info.sha256()[:12]}…`)"
    )
    import tensorflow as tf

    command = "python benchmarks/analyze_speed.py" + (" --tiny-model" if args.tiny_model else "")
    versions = f"Python {platform.python_version()}, TensorFlow {tf.__version__}, OpenCV {cv2.__version__}"
    report = "\n".join(
        [
            "# analyze speed",
            "",
            f"Latest run of `{command}`, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
            "",
            f"- clip: `{args.video.name}`, {info.width}x{info.height}, {info.fps:.2f} fps, {info.codec}",
            settings_line(analyzer),
            f"- model: {model_line}",
            f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs, load average {load_avg:.1f} "
            f"when the run started; {versions}; GPUs visible: {len(tf.config.list_physical_devices('GPU'))}",
            "",
            "| measure | value |",
            "|---|---|",
            *(f"| {name} | {value} |" for name, value in rows),
            "",
        ]
    )
    print(report)
    if not args.no_write:
        RESULTS.write_text(report)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
