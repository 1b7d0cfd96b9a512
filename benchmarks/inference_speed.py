"""Classifier speed of every architecture: face crops per second at batch 256 on this CPU.

    python benchmarks/inference_speed.py

Speed does not depend on the weights, so each architecture is built with random ones; bundled
ensembles are timed from their files. The result goes to benchmarks/SPEED.md. Run it on an
otherwise idle machine.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np

from fervideo.catalog import list_models
from fervideo.training.architectures import build
from fervideo.training.ensemble import ARCHITECTURE as ENSEMBLE

RESULTS = Path(__file__).with_name("SPEED.md")
BATCH = 256


def cpu_description() -> str:
    """'2-core AVX-512 x86_64 CPU': the widest vector unit decides most of these speeds."""
    flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    vector = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    return f"{os.cpu_count()}-core {vector} {platform.machine()} CPU"


def crops_per_second(predict: Callable[[np.ndarray], object], seconds: float = 10.0) -> float:
    """Calls per second x BATCH of `predict` on a (BATCH, 48, 48, 1) uint8 batch."""
    batch = np.random.default_rng(0).integers(0, 256, (BATCH, 48, 48, 1), dtype=np.uint8)
    predict(batch)  # warm-up: tracing and allocation
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or runs < 3:
        predict(batch)
        runs += 1
    return runs * BATCH / (time.perf_counter() - start)


def main() -> None:
    rows = []
    models = {f"`{name}`": build(name, 129.4, 65.1) for name in ("resvgg", "custom_cnn", "resnet")}
    for info in list_models():
        if info.metadata.get("architecture") == ENSEMBLE:
            members = " + ".join(m["architecture"] for m in info.metadata["members"])
            models[f"`{info.name}` ({members})"] = keras.saving.load_model(info.path, compile=False)
    for name, model in models.items():
        speed = crops_per_second(lambda batch, model=model: model.predict_on_batch(batch.astype(np.float32)))
        rows.append((name, model.count_params(), speed))
        print(f"{name}: {speed:,.0f} crops/s", flush=True)
    lines = [
        "# Classifier speed",
        "",
        f"Written by `python benchmarks/inference_speed.py` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC: {platform.machine()} CPU with {os.cpu_count()} cores, Keras {keras.__version__} "
        f"({keras.backend.backend()}), float32, `predict_on_batch` on batches of {BATCH} crops.",
        "",
        "| architecture or bundled ensemble | parameters | crops/s |",
        "|---|---|---|",
        *(f"| {name} | {params:,} | {speed:,.0f} |" for name, params, speed in rows),
    ]
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
