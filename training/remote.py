"""Train the bundled models side by side on one accelerator and bring them back through a
size-limited channel (the GPU machine this project is sometimes lent returns at most 64 MiB,
in files of at most 16 MiB).

    python -m training.remote train --data fer2013 --runs runs --budget-s 380
    python -m training.remote pack --runs runs --dest $OUT
    python -m training.remote unpack --src DIR --runs runs   # here: rebuild float32 models

Weights travel as float16 (arrays under 10,000 values, such as batch-norm statistics, stay
float32), byte-shuffled and deflated; `unpack` rebuilds each float32 `model.keras`, and the
model cards report accuracy measured on that rebuilt file, not on the remote copy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

SMALL_FILES = ("history.csv", "state.json", "metadata.json", "curves.png")
CHUNK_BYTES = 15 * 2**20
LIMIT_BYTES = 62 * 2**20
_FP32_BELOW = 10_000


def train_all(data: Path, runs: Path, budget_s: float, names: list[str], deadline_s: float) -> None:
    """One process per recipe, all at once; stragglers are stopped at `deadline_s`."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    procs = {}
    for name in names:
        log = open(runs / f"{name}.log", "w")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "training.remote", "one", name, "--data", str(data),
             "--runs", str(runs), "--budget-s", str(budget_s)],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    start = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        if time.monotonic() - start > deadline_s:
            for p in procs.values():
                p.kill()
                p.wait()
            break
        time.sleep(5)
    for name, p in procs.items():
        print(f"{name}: exit {p.returncode}", flush=True)


def train_one(name: str, data: Path, runs: Path, budget_s: float) -> None:
    from training.fit import train
    from training.recipes import RECIPES

    recipe = RECIPES[name]
    import keras

    # Keras' torch backend runs eagerly: there, several steps per call buy nothing.
    steps = 1 if keras.backend.backend() == "torch" else 8
    train(replace(recipe, data=data, out=runs / name, steps_per_execution=steps, checkpoint_every=25,
                  resume=(runs / name / "checkpoint.keras").exists()),
          time_budget_s=budget_s)


def _weights(run: Path) -> list[np.ndarray]:
    import keras

    if (run / "model.keras").exists():
        return keras.saving.load_model(run / "model.keras", compile=False).get_weights()
    trained = keras.saving.load_model(run / "checkpoint.keras", compile=False)
    return trained.get_layer(run.name).get_weights()


def encode(weights: list[np.ndarray], drop_bits: int = 0) -> bytes:
    """float16 (big arrays) / float32 (small ones), byte-shuffled, deflated."""
    buffer = io.BytesIO()
    arrays = {}
    for i, w in enumerate(weights):
        w = np.asarray(w, np.float32)
        if w.size >= _FP32_BELOW and np.abs(w).max() < 60000:
            half = w.astype(np.float16).view(np.uint16)
            if drop_bits:
                half = half & np.uint16(0xFFFF ^ ((1 << drop_bits) - 1))
            arrays[f"h{i}"] = half.view(np.uint8).reshape(-1, 2).T.copy()
            arrays[f"s{i}"] = np.array(w.shape)
        else:
            arrays[f"f{i}"] = w
    np.savez(buffer, **arrays)
    return zlib.compress(buffer.getvalue(), 9)


def decode(blob: bytes) -> list[np.ndarray]:
    arrays = np.load(io.BytesIO(zlib.decompress(blob)))
    count = len({k[1:] for k in arrays.files if k[0] in "hf"})
    weights = []
    for i in range(count):
        if f"f{i}" in arrays.files:
            weights.append(arrays[f"f{i}"])
        else:
            raw = np.ascontiguousarray(arrays[f"h{i}"].T).view(np.float16)
            weights.append(raw.reshape(arrays[f"s{i}"]).astype(np.float32))
    return weights


def pack(runs: Path, dest: Path, names: list[str]) -> None:
    """One tar of every run's small files and encoded weights, split into chunks."""
    blobs = {}
    for name in names:
        run = runs / name
        if (run / "model.keras").exists() or (run / "checkpoint.keras").exists():
            blobs[name] = encode(_weights(run))
    drop = 0
    while sum(map(len, blobs.values())) > LIMIT_BYTES and drop < 8 and blobs:
        drop += 1  # keep the biggest model's precision as high as the limit allows
        biggest = max(blobs, key=lambda n: len(blobs[n]))
        blobs[biggest] = encode(_weights(runs / biggest), drop_bits=drop)
        print(f"{biggest}: dropped {drop} float16 mantissa bit(s) to fit", flush=True)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for name in names:
            run = runs / name
            files = [run / f for f in SMALL_FILES] + sorted(run.glob("metrics_*.json"))
            files.append(runs / f"{name}.log")
            for f in files:
                if f.is_file():
                    tar.add(f, arcname=f"{name}/{f.name}")
            if name in blobs:
                info = tarfile.TarInfo(f"{name}/weights.bin")
                info.size = len(blobs[name])
                tar.addfile(info, io.BytesIO(blobs[name]))
    data = tar_bytes.getvalue()
    dest.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(data), CHUNK_BYTES):
        (dest / f"runs.tar.{i // CHUNK_BYTES:02d}").write_bytes(data[i:i + CHUNK_BYTES])
    print(f"packed {len(data) / 2**20:.1f} MiB: {sorted(blobs)}", flush=True)


def unpack(src: Path, runs: Path) -> None:
    """Rebuild each run folder with a float32 `model.keras` from the packed weights."""
    import keras

    from training import architectures

    data = b"".join(p.read_bytes() for p in sorted(src.glob("runs.tar.*")))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(runs, filter="data")
    for weights_file in sorted(runs.glob("*/weights.bin")):
        run = weights_file.parent
        meta = json.loads((run / "metadata.json").read_text())
        norm = meta["normalisation"]
        options = {"weights": None} if meta["architecture"].startswith("resnet") else {}
        model = architectures.ARCHITECTURES[meta["architecture"]](norm["mean"], norm["std"], **options)
        model.set_weights(decode(weights_file.read_bytes()))
        model.save(run / "model.keras")
        weights_file.unlink()
        print(f"{run.name}: rebuilt model.keras ({keras.backend.backend()} backend)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("train", "one", "pack", "unpack"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--dest", type=Path)
    parser.add_argument("--src", type=Path)
    parser.add_argument("--budget-s", type=float, default=380)
    parser.add_argument("--deadline-s", type=float, default=480)
    parser.add_argument("--models", default="resvgg,custom_cnn,resnet")
    args = parser.parse_args()
    names = args.models.split(",")
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.action == "train":
        train_all(args.data, args.runs, args.budget_s, names, args.deadline_s)
    elif args.action == "one":
        train_one(args.name, args.data, args.runs, args.budget_s)
    elif args.action == "pack":
        pack(args.runs, args.dest, names)
    else:
        unpack(args.src, args.runs)


if __name__ == "__main__":
    main()
