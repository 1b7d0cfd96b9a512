"""The report's charts, as PNG bytes (matplotlib's Agg canvas, no pyplot state, no display)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from fervideo.core import EMOTIONS
from fervideo.palette import COLORS
from fervideo.tables import SHARES

_WIDTH = 9.0  # inches


def _png(fig: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _steps(seconds: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each second's value held over [second, second + 1): x and y for a step-shaped area."""
    x = np.stack([seconds, seconds + 1], axis=1).ravel()
    return x, np.repeat(values, 2, axis=-1)


def _share_area(ax, seconds: np.ndarray, shares: np.ndarray, ylabel: str) -> None:
    """Stacked area of (n, 7) shares per second; seconds without data stay empty."""
    x, y = _steps(seconds, np.nan_to_num(shares).T)
    ax.stackplot(x, y, colors=[COLORS[e] for e in EMOTIONS], labels=EMOTIONS, linewidth=0)
    ax.set(ylim=(0, 1), xlim=(0, max(len(seconds), 1)), ylabel=ylabel)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, reverse=True)


def _count_steps(ax, seconds: np.ndarray, counts: np.ndarray, ylabel: str, color: str = "#444444") -> None:
    x, y = _steps(seconds, counts)
    ax.fill_between(x, y, color=color, alpha=0.35, linewidth=0)
    ax.plot(x, y, color=color, linewidth=1)
    ax.set(ylim=(0, max(1.0, float(np.max(counts, initial=0)) * 1.15)), ylabel=ylabel, xlabel="second")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)


def timeline_chart(timeline: pd.DataFrame, dpi: int) -> bytes:
    """Share of faces showing each expression per second (stacked area) over faces on screen
    per second (`timeline` needs the `on_screen` column of `report.data`)."""
    fig = Figure(figsize=(_WIDTH, 4.2))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2.2, 1))
    seconds = timeline["second"].to_numpy()
    _share_area(top, seconds, timeline[list(SHARES)].to_numpy(np.float64), "share of faces")
    top.set_title("Expression shown, share of faces per second", loc="left", fontsize=10)
    _count_steps(bottom, seconds, timeline["on_screen"].to_numpy(), "faces on screen")
    return _png(fig, dpi)


def audience_chart(audience: pd.DataFrame, dpi: int) -> bytes:
    """Share of viewers showing each expression per second over viewers present per second
    (an `audience` table of `report.audience`)."""
    fig = Figure(figsize=(_WIDTH, 4.2))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2.2, 1))
    seconds = audience["second"].to_numpy()
    _share_area(top, seconds, audience[list(SHARES)].to_numpy(np.float64), "share of viewers")
    top.set_title("Expression shown, share of viewers present per second", loc="left", fontsize=10)
    _count_steps(bottom, seconds, audience["viewers"].to_numpy(), "viewers present")
    x, y = _steps(seconds, audience["recordings"].to_numpy())
    bottom.plot(x, y, color="#999999", linestyle="--", linewidth=1, label="recordings")
    bottom.set_ylim(0, max(1.0, float(audience["recordings"].to_numpy().max(initial=0)) * 1.15))
    bottom.legend(loc="lower left", fontsize=8, frameon=False)
    return _png(fig, dpi)


def tracks_chart(faces: pd.DataFrame, tracks: pd.DataFrame, duration: float, dpi: int) -> bytes:
    """One row per track: its face's expression probabilities over time (stacked)."""
    fig = Figure(figsize=(_WIDTH, 0.4 + 1.1 * len(tracks)))
    axes = np.atleast_1d(fig.subplots(len(tracks), 1, sharex=True, squeeze=False)[:, 0])
    for ax, track in zip(axes, tracks.itertuples(), strict=True):
        rows = faces[faces["track"] == track.track].sort_values("timestamp")
        ax.stackplot(
            rows["timestamp"].to_numpy(),
            rows[list(EMOTIONS)].to_numpy(np.float64).T,
            colors=[COLORS[e] for e in EMOTIONS],
            linewidth=0,
        )
        ax.set(ylim=(0, 1), xlim=(0, max(duration, 1e-3)), yticks=[])
        ax.set_ylabel(f"track {track.track}", rotation=0, ha="right", va="center", fontsize=9)
    axes[0].set_title("Longest tracks: probability of each expression shown", loc="left", fontsize=10)
    axes[-1].set_xlabel("second")
    fig.legend(
        [Patch(color=COLORS[e]) for e in reversed(EMOTIONS)],
        list(reversed(EMOTIONS)),
        loc="upper left",
        bbox_to_anchor=(0.91, 0.9),
        fontsize=8,
        frameon=False,
    )
    return _png(fig, dpi)


def compare_chart(names: Sequence[str], shares: pd.DataFrame, dpi: int) -> bytes:
    """One horizontal bar per video: the share of its faces showing each expression
    (`shares`: one row per video, the `EMOTIONS` columns)."""
    fig = Figure(figsize=(_WIDTH, 0.8 + 0.24 * len(names)))
    ax = fig.subplots()
    y = np.arange(len(names))
    left = np.zeros(len(names))
    for emotion in EMOTIONS:
        values = np.nan_to_num(shares[emotion].to_numpy(np.float64))
        ax.barh(y, values, left=left, color=COLORS[emotion], label=emotion, height=0.8)
        left += values
    ax.set(yticks=y, xlim=(0, 1), ylim=(len(names) - 0.5, -0.5))
    ax.set_yticklabels([_short(n) for n in names], fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_title("Expression shown, share of all faces per video", loc="left", fontsize=10)
    ax.legend(
        loc="lower left", bbox_to_anchor=(0.0, 1.02 + 0.4 / len(names)), ncols=7, fontsize=8, frameon=False
    )
    return _png(fig, dpi)


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"
