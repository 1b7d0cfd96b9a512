"""fervideo: facial expressions in videos, as Parquet tables.

Example:
    >>> import fervideo
    >>> faces, timeline, tracks, summary = fervideo.analyze("ad.mp4", "fervideo-out", fps=5)
    >>> faces[["timestamp", "track", "emotion"]].head()
    >>> timeline.plot(x="second", y=["happy", "neutral"])
    >>> results = fervideo.analyze_many(["clips/"], "fervideo-out")  # one bad file stops nothing
    >>> faces, timeline, tracks, summary = fervideo.read_results("fervideo-out")  # every video
    >>> fervideo.write_report("fervideo-out")  # fervideo-out/report.html, offline HTML
    >>> fervideo.annotate("ad.mp4", "ad-annotated.mp4", tables="fervideo-out")

`import fervideo` is instant: the public names below load their modules (and TensorFlow,
OpenCV, Arrow) on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The library reports through logging and return values only; output is the caller's choice.
logging.getLogger(__name__).addHandler(logging.NullHandler())

_EXPORTS = {
    "analyze": "fervideo.pipeline",
    "analyze_many": "fervideo.pipeline",
    "expand_inputs": "fervideo.pipeline",
    "Analyzer": "fervideo.pipeline",
    "VideoResult": "fervideo.pipeline",
    "AnalyzeConfig": "fervideo.config",
    "RayConfig": "fervideo.config",
    "EMOTIONS": "fervideo.core",
    "Faces": "fervideo.core",
    "FervideoError": "fervideo.errors",
    "probe": "fervideo.decode",
    "read_frames": "fervideo.decode",
    "VideoInfo": "fervideo.decode",
    "DETECTORS": "fervideo.detect",
    "FaceDetector": "fervideo.detect",
    "get_detector": "fervideo.detect",
    "crop_faces": "fervideo.crop",
    "ExpressionClassifier": "fervideo.classify",
    "IoUTracker": "fervideo.track",
    "Tables": "fervideo.tables",
    "ResultStore": "fervideo.store",
    "read_results": "fervideo.store",
    "list_models": "fervideo.catalog",
    "resolve_model": "fervideo.catalog",
    "write_report": "fervideo.report",
    "read_audience": "fervideo.report",
    "annotate": "fervideo.annotation",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from fervideo.annotation import annotate
    from fervideo.catalog import list_models, resolve_model
    from fervideo.classify import ExpressionClassifier
    from fervideo.config import AnalyzeConfig, RayConfig
    from fervideo.core import EMOTIONS, Faces
    from fervideo.crop import crop_faces
    from fervideo.decode import VideoInfo, probe, read_frames
    from fervideo.detect import DETECTORS, FaceDetector, get_detector
    from fervideo.errors import FervideoError
    from fervideo.pipeline import Analyzer, VideoResult, analyze, analyze_many, expand_inputs
    from fervideo.report import read_audience, write_report
    from fervideo.store import ResultStore, read_results
    from fervideo.tables import Tables
    from fervideo.track import IoUTracker


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fervideo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
