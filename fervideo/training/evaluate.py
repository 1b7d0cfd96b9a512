"""Score a model on a FER2013 split: accuracy, loss, per-class precision/recall/F1,
macro-F1 and the confusion matrix, with optional test-time augmentation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fervideo.catalog import METADATA_FILE
from fervideo.classify import ExpressionClassifier
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.training.atomic import write_text_atomically
from fervideo.training.card import write_card
from fervideo.training.data import Split, load_split
from fervideo.training.plots import plot_confusion


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

    def summary(self) -> dict:
        """The headline figures a model's metadata records."""
        return {
            "split": self.split,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "macro_f1": self.macro_f1,
            "recall": {k: v["recall"] for k, v in self.per_class.items()},
        }


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


def evaluate_split(classifier: ExpressionClassifier, data: Split) -> Metrics:
    """Score a classifier (with its TTA mode) on a loaded split."""
    probs = classifier.predict(data.x[..., 0])
    return score(probs, data.y, data.name, classifier.tta)


def evaluate(
    model: str | Path,
    data: str | Path,
    split: str = "PublicTest",
    tta: str = "none",
    out: str | Path | None = None,
) -> Metrics:
    """Evaluate a bundled model name or `.keras` path on `split` of the FER2013 at `data`,
    the way `analyze` runs it; with `out`, also write `metrics_<split>[_tta-<mode>].json` and
    the matching confusion PNG there, and refresh the model card if `out` holds one."""
    classifier = ExpressionClassifier(model, tta=tta)
    model_folder = out is not None and (Path(out) / METADATA_FILE).is_file()
    if model_folder and classifier.info.path.resolve().parent != Path(out).resolve():
        raise FervideoError(f"{out} holds another model's card: write these metrics elsewhere.")
    metrics = evaluate_split(classifier, load_split(data, split))
    if out is not None:
        write_metrics(metrics, Path(out), title=f"{classifier.info.name} on {split}")
        if model_folder and (Path(out) / "README.md").is_file():
            write_card(Path(out))
    return metrics


def write_metrics(metrics: Metrics, out: Path, title: str) -> None:
    suffix = "" if metrics.tta == "none" else f"_tta-{metrics.tta}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out / f"metrics_{metrics.split}{suffix}.json", metrics.to_json())
        plot_confusion(
            np.array(metrics.confusion),
            out / f"confusion_{metrics.split}{suffix}.png",
            title=f"{title} (accuracy {metrics.accuracy:.1%})",
        )
    except OSError as err:
        raise FervideoError(f"cannot write the metrics into {out}: {err.strerror}.") from None
