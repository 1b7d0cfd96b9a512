import json
import math
import subprocess
import sys
from contextlib import ExitStack as DoesNotRaise

import numpy as np
import pytest

from fervideo import tta
from fervideo.config import TTA_MODES, AnalyzeConfig
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("fps", 0, "a number > 0, or None"),
        ("fps", -2.0, "a number > 0, or None"),
        ("fps", math.nan, "a number > 0, or None"),
        ("batch_size", 0, "an integer >= 1"),
        ("chunk_frames", 0, "an integer >= 1"),
        ("min_score", -0.01, r"a number in \[0, 1\]"),
        ("min_score", 1.5, r"a number in \[0, 1\]"),
        ("tta", "rotate", "one of none, flip, crops"),
        ("tta", True, "one of none, flip, crops"),  # the old boolean setting
    ],
)
def test_out_of_range_settings_say_what_was_expected(field, value, expected):
    with pytest.raises(ValueError, match=rf"AnalyzeConfig\.{field} must be {expected}.*but got {value!r}"):
        AnalyzeConfig(**{field: value})


@pytest.mark.parametrize(
    "fields",
    [{}, {"fps": None}, {"fps": 0.01}, {"min_score": 0.0}, {"min_score": 1.0}]
    + [{"tta": mode} for mode in TTA_MODES],
)
def test_settings_at_the_edges_of_their_range_are_valid(fields):
    with DoesNotRaise():
        AnalyzeConfig(**fields)


def test_every_tta_mode_the_config_accepts_is_one_the_cli_offers_and_tta_computes():
    from fervideo.cli.analyze import TTA

    assert [mode.value for mode in TTA] == list(TTA_MODES)
    crops = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48)
    assert [len(tta.tta_views(crops, mode)) for mode in TTA_MODES] == [1, 2, 10]
    with pytest.raises(ValueError, match="unknown TTA mode"):
        tta.tta_views(crops, "rotate")


def test_module_defaults_are_read_from_the_config():
    """Change every default in `fervideo.config` (in a fresh interpreter), then import the
    modules: their own defaults, the CLI's and the speed benchmark's must follow."""
    code = f"""
import dataclasses, importlib.util, inspect, json, sys
from pathlib import Path
import fervideo.config as config

@dataclasses.dataclass(frozen=True)
class Changed(config.AnalyzeConfig):
    model: str = "other"
    detector: str = "retinaface"
    fps: float = 2.0
    min_score: float = 0.5
    recheck_score: float = 0.3
    recheck_face: int = 80
    min_face: int = 48
    max_side: int = 640
    batch_size: int = 8
    tta: str = "flip"
    runtime: str = "keras"
    classify_threads: int = 3
    iou_threshold: float = 0.4
    max_track_gap_s: float = 2.5

config.AnalyzeConfig = Changed
config.DEFAULT_OUT = Path("elsewhere")
from fervideo import classify, detect, track
from fervideo.cli import analyze as cli

spec = importlib.util.spec_from_file_location("bench", {str(REPO / "benchmarks" / "analyze_speed.py")!r})
bench = sys.modules["bench"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
args = bench.parse_args([])

def defaults(fn):
    parameters = inspect.signature(fn).parameters.items()
    return {{n: str(p.default) for n, p in parameters if p.default is not p.empty}}

print(json.dumps({{
    "ExpressionClassifier": defaults(classify.ExpressionClassifier),
    "YuNetDetector": defaults(detect.YuNetDetector),
    "RetinaFaceDetector": defaults(detect.RetinaFaceDetector),
    "get_detector": defaults(detect.get_detector),
    "IoUTracker": defaults(track.IoUTracker),
    "cli out": str(inspect.signature(cli.analyze).parameters["out"].default),
    "benchmark": [args.model, args.detector, args.fps],
}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["ExpressionClassifier"] == {
        "model": "other",
        "batch_size": "8",
        "tta": "flip",
        "runtime": "keras",
        "threads": "3",
    }
    scale = {
        "min_score": "0.5",
        "max_side": "640",
        "min_face": "48",
        "recheck_score": "0.3",
        "recheck_face": "80",
    }
    assert found["YuNetDetector"] == scale
    assert found["RetinaFaceDetector"] == {**scale, "weights": "None"}
    assert found["get_detector"] == {"detector": "retinaface"}
    assert found["IoUTracker"] == {"iou_threshold": "0.4", "max_gap_s": "2.5"}
    assert found["cli out"] == "elsewhere"
    assert found["benchmark"] == ["other", "retinaface", 2.0]
