"""The bundled models' cards tell the truth: evaluating each shipped file on the real FER2013
PublicTest split (../shared/datasets) gives the accuracy its card records."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from fervideo.catalog import list_models
from fervideo.training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[2]
ARCHIVE = Path(
    os.environ.get(
        "FERVIDEO_TEST_FER2013", REPO.parent / "shared" / "datasets" / "fer2013-train-publictest.tar.gz"
    )
)


@pytest.fixture(scope="module")
def public_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not ARCHIVE.is_file():
        pytest.skip(f"FER2013 archive not found at {ARCHIVE} (set FERVIDEO_TEST_FER2013 to it)")
    root = tmp_path_factory.mktemp("fer2013")
    with tarfile.open(ARCHIVE) as archive:
        members = [m for m in archive if "/test/" in m.name]
        archive.extractall(root, members=members, filter="data")
    return root / "fer2013"


MODELS = list_models()


@pytest.mark.skipif(not MODELS, reason="no bundled models in models/")
@pytest.mark.parametrize("info", MODELS, ids=[m.name for m in MODELS])
def test_card_accuracy_is_reproduced(info, public_test: Path):
    recorded = info.metadata["metrics"]
    assert recorded["split"] == "PublicTest"
    metrics = evaluate(info.path, public_test, "PublicTest")
    assert metrics.images == 3589
    assert metrics.accuracy == pytest.approx(recorded["accuracy"], abs=2 / 3589)
    card_metrics = json.loads((info.path.parent / "metrics_PublicTest.json").read_text())
    assert card_metrics["accuracy"] == recorded["accuracy"]
    assert f"{recorded['accuracy']:.2%}" in (info.path.parent / "README.md").read_text()
