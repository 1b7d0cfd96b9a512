"""The Ray engine's start-up and per-video overhead against the local engine, and the split
(GPU) layout's throughput with its classify stage on a CPU; writes benchmarks/RAY.md.

    python benchmarks/ray_overhead.py      # copies of ../shared/media/woman.mp4
    python benchmarks/ray_overhead.py --videos 3 --repeats 1 --no-write

Every run is a fresh Python process, timed from outside: interpreter, imports, Ray's
start and stop, actors and model loading included, and progress reported to a callback (through
Ray's queue on the Ray engine), as a user's command would be. Each
scenario runs on 1 video and on K copies of the clip; with wall time t(n) = start-up +
n x per-video, per-video = (t(K) - t(1)) / (K - 1) and start-up = t(1) - per-video. Of
`--repeats` runs, the fastest counts.

Scenarios (same clip, model, detector and settings):
- local: `analyze_many` in the process, as `fervideo analyze` runs it;
- ray 1x2: one video actor with both CPUs: the local engine's compute, so the difference is
  Ray's own cost;
- ray 2x1: two video actors with one CPU each, two videos at a time;
- ray split: one video actor (decode, detect, crop; 1 CPU) sending its crops to one classifier
  actor (0 GPU, 1 CPU): the GPU layout, measured on CPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "media" / "woman.mp4"
REPORT = Path(__file__).with_name("RAY.md")

NOTES = """
How to read it:
- *against local*: the scenario's start-up and per-video time minus the local engine's. With
  the same compute (1 actor with both CPUs), the difference is Ray's own cost: starting Ray,
  an actor process that imports fervideo and loads the model, and stopping them, plus the
  per-video round trips (task, progress queue, result).
- 2 actors: the 1-video run starts one actor (never more actors than inputs), the 6-video run
  two, which load the model at the same time; per-video time is then two videos at a time on
  the two cores.
- split: the video actor waits for each chunk's probabilities, so with one video actor its
  decoding and detection never overlap with classification; the layout pays off where many
  video actors (CPUs) share one classifier actor on a GPU, which this machine does not have.
"""

SCENARIOS = {
    "local": "local engine (`analyze_many` in the process)",
    "ray-1x2": "Ray: 1 video actor x 2 CPUs",
    "ray-2x1": "Ray: 2 video actors x 1 CPU",
    "ray-split": "Ray split layout: 1 video actor (1 CPU) + 1 classifier actor (0 GPU, 1 CPU)",
}


def run_child(scenario: str, folder: Path, out: Path, model: str) -> None:
    """One timed run (in its own process): prints its results as JSON."""
    from fervideo.config import AnalyzeConfig, RayConfig
    from fervideo.pipeline import analyze_many, expand_inputs

    layouts = {
        "ray-1x2": RayConfig(actors=1, actor_cpus=2, classify_actors=0),
        "ray-2x1": RayConfig(actors=2, actor_cpus=1, classify_actors=0),
        "ray-split": RayConfig(actors=1, actor_cpus=1, classify_actors=1, classify_gpus=0, classify_cpus=1),
    }
    config = AnalyzeConfig(model=model, ray=layouts.get(scenario, RayConfig()))
    callbacks = {"on_progress": lambda path, done, total: None}  # the command's always have one
    started = time.perf_counter()
    if scenario == "local":
        results = analyze_many([folder], out, config, **callbacks)
    else:
        from fervideo.engines.ray import analyze_on_ray

        results = analyze_on_ray(expand_inputs([folder]), out, config, **callbacks)
    run_s = time.perf_counter() - started
    statuses = {r.status for r in results}
    assert statuses == {"done"}, [r.message for r in results]
    frames = sum(r.frames_analysed for r in results)
    print(json.dumps({"run_s": run_s, "frames": frames, "videos": len(results)}))


@dataclass
class Timing:
    wall_s: float  # the whole process, measured from outside
    run_s: float  # the engine call alone (Ray: its start and stop included)
    frames: int


def timed_process(scenario: str, folder: Path, out: Path, model: str) -> Timing:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, __file__, "--child", scenario, "--folder", str(folder), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.perf_counter()
    done = subprocess.run([*command, "--model", model], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{scenario} failed:\n{done.stderr[-3000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    return Timing(wall, child["run_s"], child["frames"])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, default=CLIP)
    parser.add_argument("--videos", type=int, default=6, help="K: copies of the clip in the larger run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="default")
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave RAY.md alone")
    parser.add_argument("--child", choices=list(SCENARIOS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args.child, args.folder, args.out, args.model)
        return
    if not args.video.is_file():
        raise SystemExit(f"{args.video} not found (pass --video)")
    k = args.videos
    measured: dict[str, dict[int, Timing]] = {}
    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as tmp:
        folders = {1: Path(tmp, "one"), k: Path(tmp, "many")}
        for n, folder in folders.items():
            folder.mkdir()
            for i in range(n):  # copies, not links: a video's id comes from its real path
                shutil.copyfile(args.video, folder / f"clip{i}{args.video.suffix}")
        load_avg = os.getloadavg()[0]
        for repeat in range(args.repeats):
            for scenario in args.scenarios:
                for n, folder in folders.items():
                    timing = timed_process(scenario, folder, Path(tmp, "out"), args.model)
                    print(f"repeat {repeat + 1} {scenario} {n} video(s): {timing}", flush=True)
                    best = measured.setdefault(scenario, {}).get(n)
                    if best is None or timing.wall_s < best.wall_s:
                        measured[scenario][n] = timing
    report = render(args, measured, load_avg)
    print(report)
    if not args.no_write:
        REPORT.write_text(report)
        print(f"written to {REPORT}")


def render(args: argparse.Namespace, measured: dict[str, dict[int, Timing]], load_avg: float) -> str:
    import ray

    import fervideo
    from fervideo.catalog import resolve_model

    k = args.videos
    info = fervideo.probe(args.video)
    model = resolve_model(args.model)
    local = measured.get("local")
    rows = []
    for scenario, timings in measured.items():
        one, many = timings[1], timings[k]
        per_video = (many.wall_s - one.wall_s) / (k - 1)
        startup = one.wall_s - per_video
        cells = [
            SCENARIOS[scenario],
            f"{one.wall_s:.1f}",
            f"{many.wall_s:.1f}",
            f"{startup:.1f}",
            f"{per_video:.2f}",
            f"{many.frames / many.wall_s:.1f}",
            f"{many.frames / k / per_video:.1f}",
        ]
        if local and scenario != "local":
            local_per_video = (local[k].wall_s - local[1].wall_s) / (k - 1)
            local_startup = local[1].wall_s - local_per_video
            cells.append(f"{startup - local_startup:+.1f} s, {per_video - local_per_video:+.2f} s/video")
        else:
            cells.append("")
        rows.append("| " + " | ".join(cells) + " |")
    command = "python benchmarks/ray_overhead.py" + (f" --videos {k}" if k != 6 else "")
    return "\n".join(
        [
            "# Ray engine overhead",
            "",
            f"Latest run of `{command}`, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; fastest of {args.repeats} runs each.",
            "",
            f"- clip: `{args.video.name}`, {info.width}x{info.height}, {info.duration_s:.1f} s; "
            f"1 and {k} copies of it",
            f"- model `{model.name}`, detector yunet, sampling 5 fps, batch size 256, TTA none",
            f"- machine: {platform.machine()}, {os.cpu_count()} logical CPUs, load average {load_avg:.1f} "
            f"when the runs started; Python {platform.python_version()}, Ray {ray.__version__}; no GPU",
            "- each run is a fresh process (`t(n)`: wall time of the whole process on n videos): "
            "imports, model loading, Ray's start and stop included",
            f"- start-up = t(1) - per-video; per-video = (t({k}) - t(1)) / {k - 1}",
            "",
            f"| scenario | t(1) s | t({k}) s | start-up s | per video s | frames/s over t({k}) "
            "| frames/s once started | against local |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            NOTES,
        ]
    )


if __name__ == "__main__":
    main()
