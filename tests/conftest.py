"""Fixtures: the tiny model and a classifier on it, a bundled-models folder, the example
clip, and the real media in ../shared/media (skipped with a reason when absent)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fervideo.core import EMOTIONS
from fervideo.testing import save_tiny_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The user's own models folder (~/.fervideo/models) must not leak into the tests, nor the tests
# into it: every test, and every process a test starts, gets an empty one.
os.environ["FERVIDEO_HOME"] = tempfile.mkdtemp(prefix="fervideo-home-")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_VIDEO = REPO / "examples" / "astronaut.mp4"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.keras")


@pytest.fixture(scope="session")
def classifier(tiny_model: Path):
    from fervideo.classify import ExpressionClassifier

    return ExpressionClassifier(tiny_model)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A $FERVIDEO_MODELS folder bundling the tiny model under the default model's name."""
    from fervideo.config import DEFAULT_MODEL

    root = tmp_path_factory.mktemp("models")
    folder = root / DEFAULT_MODEL
    folder.mkdir()
    (folder / "model.keras").write_bytes(tiny_model.read_bytes())
    (folder / "metadata.json").write_text(json.dumps({"name": DEFAULT_MODEL, "classes": list(EMOTIONS)}))
    return root


@pytest.fixture
def bundled(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> Path:
    """Point fervideo at `models_dir`, so the default model resolves by name."""
    monkeypatch.setenv("FERVIDEO_MODELS", str(models_dir))
    return models_dir


@pytest.fixture(scope="session")
def media() -> Path:
    """../shared/media (or $FERVIDEO_TEST_MEDIA): real clips and photos, never copied here."""
    folder = Path(os.environ.get("FERVIDEO_TEST_MEDIA", REPO.parent / "shared" / "media"))
    if not (folder / "woman.mp4").is_file():
        pytest.skip(f"real test media not found at {folder} (set FERVIDEO_TEST_MEDIA to its folder)")
    return folder


@pytest.fixture(scope="session")
def example_video() -> Path:
    assert EXAMPLE_VIDEO.is_file(), "examples/astronaut.mp4 is part of the repo"
    return EXAMPLE_VIDEO


@pytest.fixture
def clips(tmp_path: Path, example_video: Path) -> Path:
    """A folder of two copies of the example clip (one face, 4 s) and a grey clip (no face)."""
    from tests.helpers import write_video

    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("ad.mp4", "again.mp4"):
        (folder / name).write_bytes(example_video.read_bytes())
    write_video(folder / "grey.mp4", 5)
    return folder


@pytest.fixture(scope="session")
def ads_analysed(tmp_path_factory: pytest.TempPathFactory, classifier) -> Path:
    """An output folder of the real pipeline (fake detector, tiny model) over a folder of
    folders: ads/ad_a/ and ads/ad_b/, two 2-second recordings each (128x96, 10 fps)."""
    from fervideo.config import AnalyzeConfig
    from fervideo.pipeline import Analyzer, analyze_many
    from tests.helpers import FakeDetector, write_video

    root = tmp_path_factory.mktemp("ads")
    rng = np.random.default_rng(0)
    for ad in ("ad_a", "ad_b"):
        (root / "ads" / ad).mkdir(parents=True)
        for viewer in ("viewer1", "viewer2"):
            noise = rng.integers(0, 256, (20, 96, 128, 3), np.uint8)
            write_video(
                root / "ads" / ad / f"{viewer}.mp4", 20, (128, 96), 10.0, lambda i, noise=noise: noise[i]
            )
    analyzer = Analyzer(
        AnalyzeConfig(fps=5.0), detector=FakeDetector((30, 20, 80, 70)), classifier=classifier
    )
    out = root / "out"
    results = analyze_many([root / "ads"], out, analyzer=analyzer)
    assert [r.status for r in results] == ["done"] * 4
    return out
