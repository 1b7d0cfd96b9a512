"""The study's figures: accuracy and loss curves (train vs validation) and the confusion
matrix with per-class normalised rates."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fervideo.core import EMOTIONS
from fervideo.training.atomic import replace_atomically


def plot_history(history: pd.DataFrame, path: Path, title: str) -> None:
    """Accuracy and loss per epoch, train vs validation, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = history["epoch"] + 1
    for ax, metric in zip(axes, ("accuracy", "loss"), strict=True):
        ax.plot(epochs, history[metric], label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], label="validation")
        ax.set(xlabel="epoch", ylabel=metric, title=metric.capitalize())
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure(fig, path, title)


def plot_confusion(confusion: np.ndarray, path: Path, title: str) -> None:
    """Raw counts and per-class (row) normalised rates, side by side."""
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for ax, matrix, fmt, label in (
        (axes[0], confusion, "d", "count"),
        (axes[1], rates, ".2f", "share of true class"),
    ):
        image = ax.imshow(matrix, cmap="Blues")
        ax.set(
            xticks=range(len(EMOTIONS)),
            yticks=range(len(EMOTIONS)),
            xticklabels=EMOTIONS,
            yticklabels=EMOTIONS,
            xlabel="predicted",
            ylabel="true",
            title=label,
        )
        ax.tick_params(axis="x", rotation=45)
        threshold = matrix.max() / 2
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                format(value, fmt),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > threshold else "black",
            )
        fig.colorbar(image, ax=ax, fraction=0.046)
    _save_figure(fig, path, title)


def _save_figure(fig: plt.Figure, path: Path, title: str) -> None:
    """Title, lay out and write `fig` atomically; the figure is closed even if the write fails."""
    try:
        fig.suptitle(title)
        fig.tight_layout()
        replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
