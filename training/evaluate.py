"""Score a model on a FER2013 split: accuracy, loss, per-class precision/recall/F1,
macro-F1 and the confusion matrix, with optional test-time augmentation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from fervideo.catalog import resolve_model
from fervideo.core import EMOTIONS
from fervideo.tta import tta_views
from training.data import Split, load_split
from training.plots import plot_confusion


@dataclass(frozen=True)
class Metrics:
    split: str
    images: int
    tta: str
    accuracy: float
    loss: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # class -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true class, columns: predicted, EMOTIONS order

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def predict(model: keras.Model, x: np.ndarray, tta: str = "none", batch_size: int = 256) -> np.ndarray:
    """Class probabilities (n, 7) for uint8 (n, 48, 48, 1) images, averaged over TTA views."""
    views = tta_views(x, tta)
    total = sum(model.predict(v.astype(np.float32), batch_size=batch_size, verbose=0) for v in views)
    return (total / len(views)).astype(np.float32)


def score(probs: np.ndarray, y: np.ndarray, split: str, tta: str) -> Metrics:
    """Metrics of predicted probabilities against true labels."""
    n_classes = len(EMOTIONS)
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_class = {}
    for i, name in enumerate(EMOTIONS):
        tp = confusion[i, i]
        precision = tp / max(confusion[:, i].sum(), 1)
        recall = tp / max(confusion[i].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[i].sum()),
        }
    loss = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)).mean()
    return Metrics(
        split=split,
        images=len(y),
        tta=tta,
        accuracy=float((predicted == y).mean()),
        loss=float(loss),
        macro_f1=float(np.mean([c["f1"] for c in per_class.values()])),
        per_class=per_class,
        confusion=confusion.tolist(),
    )


def evaluate_split(model: keras.Model, data: Split, tta: str = "none") -> Metrics:
    return score(predict(model, data.x, tta), data.y, data.name, tta)


def evaluate(
    model: str | Path,
    data: str | Path,
    split: str = "PublicTest",
    tta: str = "none",
    out: str | Path | None = None,
) -> Metrics:
    """Evaluate a bundled model name or `.keras` path on `split` of the FER2013 at `data`;
    with `out`, also write metrics.json and confusion.png there."""
    info = resolve_model(model)
    keras_model = keras.saving.load_model(info.path, compile=False)
    metrics = evaluate_split(keras_model, load_split(data, split), tta)
    if out is not None:
        write_metrics(metrics, Path(out), title=f"{info.name} on {split}")
    return metrics


def write_metrics(metrics: Metrics, out: Path, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if metrics.tta == "none" else f"_tta-{metrics.tta}"
    (out / f"metrics_{metrics.split}{suffix}.json").write_text(metrics.to_json())
    plot_confusion(
        np.array(metrics.confusion),
        out / f"confusion_{metrics.split}{suffix}.png",
        title=f"{title} (accuracy {metrics.accuracy:.1%})",
    )
