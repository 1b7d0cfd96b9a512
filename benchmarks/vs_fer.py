"""fervideo against the `fer` package, whole process against whole process; writes VS_FER.md.

    python benchmarks/fer_env.py        # once: fer in .devdata/ferenv
    python benchmarks/vs_fer.py         # about 5 minutes on 2 cores (run it under /work/tools/heavy)

Clips, made once under .devdata/clips from ../shared/media (never committed):

- woman_x6.mp4: woman.mp4 six times over (93 s, one face), its packets copied;
- audience.mp4: 66 s, 640x360 at 29.97 fps, slow pans and zooms over two_faces_outdoor.jpg
  (3 faces) and two_people.jpg (2), 2-3 faces of 30-200 px in view;
- hd.mp4: 10 s at 1920x1080 over two_faces_outdoor.jpg, for the per-frame cost at 1080p.

Each tool runs as a whole process, alternately, `--runs` times per clip, on every 6th frame
(fer: its README's frame loop, `benchmarks/fer_loop.py`; fervideo: `analyze --fps 5` of a
29.97 fps clip). CPU-seconds (user + system, every thread) and peak RSS come from `os.wait4`;
the medians are reported. Detection recall and per-stage costs are measured in this process.

fervideo's ONNX files are converted first, into an emptied .devdata/onnx-cache (that one-time
cost is measured and reported apart), so the timed runs are those of a user's second run on.
Then a folder of 4 clips (woman.mp4 and audience.mp4, twice each) runs with `--workers 1`
and `--workers 2`, alternately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from fervideo.config import AnalyzeConfig

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
CLIPS = REPO / ".devdata" / "clips"
FER_PYTHON = REPO / ".devdata" / "ferenv" / "bin" / "python"
REPORT = Path(__file__).with_name("VS_FER.md")
ONNX_CACHE = REPO / ".devdata" / "onnx-cache"
RATE = Fraction(30000, 1001)
EVERY = 6  # every 6th frame of 29.97 fps: fervideo's --fps 5
FPS = 5.0
#: Minimum faces compared; 16 px is the detector input before --min-face: full size up to 960 px.
MIN_FACES = (16, 32, 48, 64)
#: The recall table's column of the default minimum face without the detector's second look.
NO_SECOND_LOOK = f"{AnalyzeConfig().min_face}, no second look"


@dataclass
class Run:
    cpu_s: float
    wall_s: float
    rss_mib: float
    frames: int
    faces: int
    frames_with_faces: int


def measured(command: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float, float]:
    """Run a command; its stdout, CPU-seconds (its whole process tree), wall seconds, peak RSS MiB."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed with {process.returncode}")
    # os.wait4 counts the process and its waited-for children; RSS is the largest one's
    return text, usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024


def run_fer(clip: Path) -> Run:
    text, cpu, wall, rss = measured(
        [str(FER_PYTHON), str(REPO / "benchmarks" / "fer_loop.py"), str(clip), str(EVERY)]
    )
    found = json.loads(text.strip().splitlines()[-1])
    return Run(cpu, wall, rss, found["frames"], found["faces"], found["frames_with_faces"])


def run_fervideo(target: Path, options: list[str]) -> Run:
    """`fervideo analyze --fps 5` on a clip or a folder of clips, as a whole process."""
    from fervideo.store import read_results

    with tempfile.TemporaryDirectory(prefix="vs-fer-") as out:
        command = [sys.executable, "-m", "fervideo", "analyze", str(target), "--fps", str(FPS), "-q"]
        _, cpu, wall, rss = measured([*command, "--out", out, *options], fervideo_env())
        tables = read_results(out)
        seen = len(tables.faces[["video", "frame"]].drop_duplicates())
        frames, faces = (int(tables.summary[column].sum()) for column in ("frames_analysed", "faces"))
        return Run(cpu, wall, rss, frames, faces, seen)


def startup() -> dict[str, tuple[float, float]]:
    """(CPU-s, wall s) of each tool's start-up alone: imports and model loading, no frame."""
    analyzer = "from fervideo.pipeline import Analyzer; from fervideo.config import AnalyzeConfig; Analyzer"
    commands = {
        "fer": [str(FER_PYTHON), "-c", "from fer.fer import FER; FER()"],
        "fervideo": [sys.executable, "-c", f"{analyzer}()"],
        "fervideo --runtime keras": [sys.executable, "-c", f"{analyzer}(AnalyzeConfig(runtime='keras'))"],
    }
    return {tool: measured(command, fervideo_env())[1:3] for tool, command in commands.items()}


def fervideo_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "FERVIDEO_CACHE": str(ONNX_CACHE)}


def convert_models() -> dict[str, tuple[float, float]]:
    """Empty the benchmark's ONNX cache and convert each of `CONVERTED` in a process of its own:
    {model: (CPU-s, wall s)}, start-up included (a user's first run of that model)."""
    import shutil

    shutil.rmtree(ONNX_CACHE, ignore_errors=True)
    code = "from fervideo.classify import ExpressionClassifier; ExpressionClassifier({!r}, runtime='onnx')"
    env = fervideo_env()
    return {model: measured([sys.executable, "-c", code.format(model)], env)[1:3] for model in CONVERTED}


def make_folder(clips: dict[str, Path]) -> Path:
    folder = CLIPS / "folder"
    folder.mkdir(exist_ok=True)
    for copy in (1, 2):
        for name, source in (("woman", MEDIA / "woman.mp4"), ("audience", clips["audience"])):
            target = folder / f"{name}{copy}.mp4"
            if not target.exists():
                target.write_bytes(source.read_bytes())
    return folder


def make_clips() -> dict[str, Path]:
    CLIPS.mkdir(parents=True, exist_ok=True)
    clips = {"woman_x6": CLIPS / "woman_x6.mp4", "audience": CLIPS / "audience.mp4", "hd": CLIPS / "hd.mp4"}
    if not clips["woman_x6"].exists():
        concatenate(MEDIA / "woman.mp4", 6, clips["woman_x6"])
    if not clips["audience"].exists():
        outdoor, people = (
            cv2.imread(str(MEDIA / name)) for name in ("two_faces_outdoor.jpg", "two_people.jpg")
        )
        # (image, seconds, window (x, y, width) at the start, at the end): pans and zooms
        shots = [
            (outdoor, 12, (0, 200, 2000), (0, 300, 1200)),
            (outdoor, 12, (0, 300, 1200), (800, 250, 1200)),
            (people, 10, (0, 0, 1126), (150, 60, 800)),
            (outdoor, 12, (800, 250, 1200), (300, 150, 1600)),
            (people, 10, (150, 60, 800), (0, 40, 1000)),
            (outdoor, 10, (300, 150, 1600), (0, 200, 2000)),
        ]
        write_shots(clips["audience"], shots, (640, 360))
    if not clips["hd"].exists():
        outdoor = cv2.imread(str(MEDIA / "two_faces_outdoor.jpg"))
        write_shots(clips["hd"], [(outdoor, 10, (0, 150, 2000), (200, 250, 1700))], (1920, 1080))
    return clips


def concatenate(source: Path, times: int, target: Path) -> None:
    """`source` `times` times over, its video packets copied (no re-encoding)."""
    import av

    with av.open(str(source)) as first:
        stream = first.streams.video[0]
        length = max(p.pts + p.duration for p in first.demux(stream) if p.pts is not None)
    with av.open(str(target), "w") as out:
        copy = out.add_stream_from_template(av.open(str(source)).streams.video[0])
        for n in range(times):
            with av.open(str(source)) as inp:
                for packet in inp.demux(inp.streams.video[0]):
                    if packet.dts is None:
                        continue
                    packet.pts += n * length
                    packet.dts += n * length
                    packet.stream = copy
                    out.mux(packet)


def write_shots(target: Path, shots: list, size: tuple[int, int]) -> None:
    """An H.264 clip of `size` at 29.97 fps moving a window linearly over each shot's image."""
    import av

    width, height = size
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image, seconds, start, end in shots:
            n = round(seconds * RATE)
            for i in range(n):
                x, y, w = (a + (b - a) * i / max(n - 1, 1) for a, b in zip(start, end, strict=True))
                h = w * height / width
                x, y = min(max(x, 0), image.shape[1] - w), min(max(y, 0), max(image.shape[0] - h, 0))
                matrix = np.float32([[width / w, 0, -x * width / w], [0, width / w, -y * width / w]])
                frame = cv2.warpAffine(
                    image, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT
                )
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def stage_costs(clip: Path, analyzer) -> tuple[int, int, dict[str, float]]:
    """Frames, faces and ms per analysed frame of each stage, in this process (sequential, so
    that the stages' times are their own)."""
    with tempfile.TemporaryDirectory() as out:
        result = analyzer.run(clip, out)
    per_frame = {stage: 1000 * s / max(result.frames_analysed, 1) for stage, s in result.seconds.items()}
    return result.frames_analysed, result.faces, per_frame


#: fervideo's rows: its defaults; the same in TensorFlow (the runtime before ONNX Runtime, and
#: the one used on a GPU); the single network the default ensemble averages two of (half the
#: classifier's cost, 1.2 points of PublicTest accuracy less: benchmarks/ACCURACY.md).
VARIANTS = {
    "fervideo": [],
    "fervideo --runtime keras": ["--runtime", "keras"],
    "fervideo --model resvgg": ["--model", "resvgg"],
}
#: The models VARIANTS classify with through ONNX Runtime, converted before the timed runs.
CONVERTED = ("default", "resvgg")
WORKERS = (1, 2)


def size_of(path: Path) -> str:
    from fervideo.decode import probe

    info = probe(path)
    return f"{info.width}x{info.height}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not FER_PYTHON.exists():
        raise SystemExit(f"{FER_PYTHON} missing: run python benchmarks/fer_env.py first")
    clips = make_clips()
    converted = convert_models()

    runs: dict[str, dict[str, list[Run]]] = {}
    for name in ("woman_x6", "audience"):
        runs[name] = {tool: [] for tool in ("fer", *VARIANTS)}
        for _ in range(args.runs):  # alternately
            runs[name]["fer"].append(run_fer(clips[name]))
            for tool, options in VARIANTS.items():
                runs[name][tool].append(run_fervideo(clips[name], options))
            print(name, {tool: r[-1] for tool, r in runs[name].items()}, flush=True)
    folder = make_folder(clips)
    folders: dict[int, list[Run]] = {n: [] for n in WORKERS}
    for _ in range(args.runs):
        for n in WORKERS:
            folders[n].append(run_fervideo(folder, ["--workers", str(n)]))
        print("folder", {n: r[-1] for n, r in folders.items()}, flush=True)

    from fervideo.pipeline import Analyzer

    # detection recall and cost per minimum face, stages in turn so that each has its own time
    os.environ["FERVIDEO_CACHE"] = str(ONNX_CACHE)
    base = AnalyzeConfig(fps=FPS, prefetch_frames=0)
    classifier = Analyzer(base).classifier
    analyzers: dict[int | str, Analyzer] = {
        face: Analyzer(replace(base, min_face=face), classifier=classifier) for face in MIN_FACES
    }
    analyzers[NO_SECOND_LOOK] = Analyzer(replace(base, recheck_score=1.0), classifier=classifier)
    inputs = {**clips, **{p.stem: p for p in sorted(MEDIA.glob("*.jpg"))}}
    recall = {
        name: ({face: stage_costs(path, a) for face, a in analyzers.items()}, size_of(path))
        for name, path in inputs.items()
    }
    started = startup()
    write_report(runs, folders, recall, started, converted, AnalyzeConfig(), args.runs, os.getloadavg())


def median(runs: list[Run], field: str) -> float:
    return statistics.median(getattr(r, field) for r in runs)


def per_frame(tools: dict[str, list[Run]], started: dict[str, tuple[float, float]]) -> str:
    """Each tool's CPU-ms per analysed frame, its start-up taken off."""
    costs = []
    for tool, results in tools.items():
        startup_cpu = started[tool if tool in started else "fervideo"][0]
        costs.append(f"{tool} {1000 * (median(results, 'cpu_s') - startup_cpu) / results[0].frames:.0f}")
    return ", ".join(costs)


def write_report(
    runs: dict,
    folders: dict,
    recall: dict,
    started: dict,
    converted: dict,
    config,
    n_runs: int,
    load: tuple[float, ...],
) -> None:
    from importlib import metadata

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    lines = [
        "# fervideo against fer",
        "",
        f"Written by `python benchmarks/vs_fer.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: "
        f"{cpu}, {os.cpu_count()} cores (shared: load average {load[0]:.1f} at the end). fer 25.10.3's "
        f"default `FER()` (Haar cascade, its TFLite model in TensorFlow {metadata.version('tensorflow')}) "
        f"against fervideo's defaults (`{config.model}` model in ONNX Runtime "
        f"{metadata.version('onnxruntime')}, YuNet, min face {config.min_face} px with a second look at "
        f"faces scoring {config.recheck_score}-{config.min_score}, "
        f"{config.prefetch_frames} frames prefetched, workers irrelevant for one video). Whole "
        "processes, start-up and model loading included, run alternately; medians of "
        f"{n_runs} runs each, on every 6th frame of 29.97 fps. CPU-s: user + system of every thread. "
        "fervideo's models were converted to ONNX before these runs (a user's first run of a model "
        "does it once: "
        + ", ".join(f"{model} {cpu:.1f} CPU-s, {wall:.1f} s wall" for model, (cpu, wall) in converted.items())
        + ", start-up included).",
        "",
        "| clip | tool | CPU-s | wall s | peak RSS MiB | frames | faces | frames with a face | CPU vs fer "
        "| wall vs fer |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, tools in runs.items():
        fer = tools["fer"]
        for tool, results in tools.items():
            lines.append(
                f"| {name} | {tool} | {median(results, 'cpu_s'):.1f} | {median(results, 'wall_s'):.1f} | "
                f"{median(results, 'rss_mib'):.0f} | {results[0].frames} | {results[0].faces} | "
                f"{results[0].frames_with_faces} | "
                f"{median(results, 'cpu_s') / median(fer, 'cpu_s'):.2f}x | "
                f"{median(results, 'wall_s') / median(fer, 'wall_s'):.2f}x |"
            )
    lines += [
        "",
        "Start-up alone (imports and model loading, no frame; one run each): "
        + ", ".join(f"{tool} {cpu:.1f} CPU-s, {wall:.1f} s wall" for tool, (cpu, wall) in started.items())
        + ". Beyond it, CPU-ms per analysed frame (each fervideo row's own start-up taken off): "
        + "; ".join(f"{name}: {per_frame(tools, started)}" for name, tools in runs.items())
        + ".",
        "",
        "## A folder with `--workers`",
        "",
        "4 clips (woman.mp4 and the audience clip, twice each: 163 s of video), `analyze --fps 5` on "
        f"the folder; medians of {n_runs} alternate runs.",
        "",
        "| workers | CPU-s | wall s | faces | wall vs 1 worker |",
        "|---|---|---|---|---|",
        *(
            f"| {n} | {median(results, 'cpu_s'):.1f} | {median(results, 'wall_s'):.1f} | "
            f"{results[0].faces} | {median(results, 'wall_s') / median(folders[1], 'wall_s'):.2f}x |"
            for n, results in folders.items()
        ),
        "",
        "## Detection at the minimum face's scale",
        "",
        "`--min-face` F shrinks frames by 16/F (YuNet finds faces from 16 px at its input), at most to "
        "960 px; F = 16 is the detector input before `--min-face` (full size up to 960 px). Faces "
        f"found, and detection ms per analysed frame; decode and classify ms at the default "
        f"{config.min_face} px. One process, stages in turn (no prefetch); ms are wall time, which "
        "is CPU time here but for the detector's and the decoder's own threads. Every column has "
        f"the detector's second look at faces scoring {config.recheck_score}-{config.min_score} "
        f"but the last, {NO_SECOND_LOOK!r}.",
        "",
        "| input | size | "
        + " | ".join(f"faces at {face} | detect ms at {face}" for face in [*MIN_FACES, NO_SECOND_LOOK])
        + " | decode ms | classify ms |",
        "|---|---|" + "---|---|" * (len(MIN_FACES) + 1) + "---|---|",
    ]
    for name, (costs, size) in recall.items():
        default = costs[config.min_face][2]
        cells = " | ".join(f"{faces} | {cost['detect']:.1f}" for _, faces, cost in costs.values())
        lines.append(f"| {name} | {size} | {cells} | {default['decode']:.1f} | {default['classify']:.1f} |")
    costs, _ = recall["hd"]
    frames, faces, hd = costs[config.min_face]
    lines += [
        "",
        f"At 1080p (hd.mp4, about {faces / max(frames, 1):.1f} faces per frame), an analysed frame costs "
        f"{hd['decode']:.1f} ms to decode (the 5 frames skipped before it included), {hd['detect']:.1f} ms "
        f"to detect at min face {config.min_face} px ({costs[48][2]['detect']:.1f} at 48 px, "
        f"{costs[64][2]['detect']:.1f} at 64 px), {hd['crop']:.1f} ms to crop and {hd['classify']:.1f} ms "
        "to classify, one stage after the other.",
    ]
    REPORT.write_text("\n".join(lines) + "\n")
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
