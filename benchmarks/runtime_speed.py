"""The classifier's two runtimes side by side: ONNX Runtime and TensorFlow; writes RUNTIME.md.

    python benchmarks/runtime_speed.py     # about 3 minutes on 2 cores; run it on an idle machine

For each model: start-up of a fresh process that builds the classifier (imports, model loading,
first call; the ONNX file already converted), its peak memory, and
crops per second and CPU-ms per crop at batches of 256 and 32 (`ExpressionClassifier.predict`
on random 48x48 crops, 5 s each), in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from inference_speed import cpu_description  # this folder's speed benchmark

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("RUNTIME.md")
MODELS = ("default", "resvgg", "custom_cnn", "accurate")
RUNTIMES = ("onnx", "keras")
BATCHES = (256, 32)
SECONDS = 5.0

#: A fresh process: build the classifier, classify one crop, print CPU-s, wall s and peak MiB.
_CHILD = """
import resource, sys, time
started = time.perf_counter()
import numpy as np
from inference_speed import cpu_description  # this folder's speed benchmark
from fervideo.classify import ExpressionClassifier
ExpressionClassifier(sys.argv[1], runtime=sys.argv[2]).predict(np.zeros((1, 48, 48), np.uint8))
usage = resource.getrusage(resource.RUSAGE_SELF)
print(usage.ru_utime + usage.ru_stime, time.perf_counter() - started, usage.ru_maxrss / 1024)
"""


def fresh_process(model: str, runtime: str) -> tuple[float, float, float]:
    """(CPU-s, wall s, peak RSS MiB) of a process that builds the classifier and classifies once."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, model, runtime], capture_output=True, text=True, check=True, env=env
    ).stdout
    cpu, wall, rss = (float(v) for v in out.split()[-3:])
    return cpu, wall, rss


def throughput(classifier, batch: int) -> tuple[float, float]:
    """(crops/s, CPU-ms per crop) of `classifier.predict` on batches of `batch` crops."""
    crops = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), np.uint8)
    classifier.predict(crops)
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < SECONDS:
        classifier.predict(crops)
        done += batch
    return done / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / done


def main() -> None:
    # every fresh process first, while this one is small: a child's peak RSS counts its parent's
    # at the fork (Linux keeps the high-water mark across exec)
    for model in MODELS:
        fresh_process(model, "onnx")  # converts the model, or finds it converted, before timing
    started = {(model, runtime): fresh_process(model, runtime) for model in MODELS for runtime in RUNTIMES}
    from fervideo.classify import ExpressionClassifier

    rows = []
    for (model, runtime), (cpu, wall, rss) in started.items():
        classifier = ExpressionClassifier(model, runtime=runtime)
        speeds = [throughput(classifier, batch) for batch in BATCHES]
        rows.append((model, runtime, cpu, wall, rss, speeds))
        print(rows[-1], flush=True)
    lines = [
        "# The classifier's runtimes",
        "",
        f"Written by `python benchmarks/runtime_speed.py` on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {cpu_description()} (load "
        f"average {os.getloadavg()[0]:.1f} at the end), ONNX Runtime {metadata.version('onnxruntime')}, "
        f"TensorFlow {metadata.version('tensorflow')}, float32. "
        "Start-up: a fresh process that imports fervideo, builds the classifier (the ONNX file already "
        "converted) and classifies one crop. Then `predict` on random crops, "
        f"{SECONDS:.0f} s per batch size, in one process. Peak memory in MiB (RSS).",
        "",
        "| model | runtime | start-up CPU-s | start-up s | peak MiB | "
        + " | ".join(f"crops/s at {b} | CPU-ms/crop at {b}" for b in BATCHES)
        + " |",
        "|---|---|---|---|---|" + "---|---|" * len(BATCHES),
    ]
    for model, runtime, cpu, wall, rss, speeds in rows:
        cells = " | ".join(f"{rate:.0f} | {ms:.2f}" for rate, ms in speeds)
        lines.append(f"| {model} | {runtime} | {cpu:.1f} | {wall:.1f} | {rss:.0f} | {cells} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
