"""`fervideo ensemble`: trained models packed into one that averages their probabilities."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

from fervideo.classify import ExpressionClassifier
from fervideo.cli import app
from fervideo.errors import FervideoError
from fervideo.training.data import load_split
from fervideo.training.ensemble import build_ensemble
from fervideo.training.evaluate import evaluate

runner = CliRunner()


@pytest.fixture(scope="module")
def members(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The finished tiny run, and a copy of it whose output layer was re-drawn at random, so
    the two members disagree."""
    other = tmp_path_factory.mktemp("other_member")
    for name in ("metadata.json", "curves.png"):
        shutil.copyfile(finished_run / name, other / name)
    model = keras.saving.load_model(finished_run / "model.keras", compile=False)
    logits = model.get_layer("logits")
    rng = np.random.default_rng(3)
    logits.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in logits.get_weights()])
    model.save(other / "model.keras")
    return [finished_run / "model.keras", other / "model.keras"]


@pytest.fixture(scope="module")
def packed(members: list[Path], fer_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ensemble") / "duo"
    build_ensemble(members, out, "duo", data=fer_folder)
    return out


def test_the_ensemble_outputs_the_mean_of_its_members(members: list[Path], packed: Path, fer_folder: Path):
    crops = load_split(fer_folder, "PublicTest").x[..., 0]
    each = [ExpressionClassifier(path).predict(crops) for path in members]
    assert np.abs(each[0] - each[1]).max() > 0.05  # the members disagree, so the mean is a real test
    together = ExpressionClassifier(packed / "model.keras").predict(crops)
    np.testing.assert_allclose(together, (each[0] + each[1]) / 2, atol=1e-5)


def test_metadata_records_members_and_the_measured_accuracy(
    members: list[Path], packed: Path, fer_folder: Path
):
    meta = json.loads((packed / "metadata.json").read_text())
    assert meta["name"] == "duo" and meta["architecture"] == "ensemble"
    assert [m["source"] for m in meta["members"]] == [str(p) for p in members]
    assert all(len(m["sha256"]) == 64 and m["recipe"]["epochs"] == 2 for m in meta["members"])
    member_meta = json.loads(members[0].with_name("metadata.json").read_text())
    assert meta["parameters"] == 2 * member_meta["parameters"]
    assert evaluate(packed / "model.keras", fer_folder).accuracy == meta["metrics"]["accuracy"]
    card = (packed / "README.md").read_text()
    assert "Ensemble of 2 models" in card and card.count("fervideo train --model resvgg") == 2
    assert "`fervideo ensemble MEMBER1.keras MEMBER2.keras --name duo --out models/duo --data " in card
    assert f"{meta['metrics']['accuracy']:.2%}" in card
    assert "curves_member1.png" in card and "curves_member2.png" in card


def test_evaluating_into_the_folder_adds_a_row_to_its_card(packed: Path, fer_folder: Path):
    metrics = evaluate(packed / "model.keras", fer_folder, tta="flip", out=packed)
    card = (packed / "README.md").read_text()
    assert (packed / "metrics_PublicTest_tta-flip.json").is_file()
    assert f"| PublicTest | flip | {metrics.accuracy:.2%} |" in card


def test_the_cli_packs_members_and_explains_failures(members: list[Path], tmp_path: Path):
    result = runner.invoke(app, ["ensemble", *map(str, members), "--out", str(tmp_path / "pair")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "pair" / "metadata.json").read_text())["name"] == "pair"
    result = runner.invoke(app, ["ensemble", *map(str, members), "--out", str(tmp_path / "pair")])
    assert result.exit_code == 1 and "already holds a model" in result.output  # nothing overwritten
    result = runner.invoke(app, ["ensemble", str(members[0]), "--out", str(tmp_path / "one")])
    assert result.exit_code == 1 and "at least two member models" in result.output
    missing = tmp_path / "missing.keras"
    result = runner.invoke(app, ["ensemble", str(members[0]), str(missing), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and f"model file {missing} does not exist" in result.output


def test_a_member_with_other_classes_is_refused(members: list[Path], tmp_path: Path):
    odd = tmp_path / "odd"
    odd.mkdir()
    shutil.copyfile(members[0], odd / "model.keras")
    meta = json.loads(members[0].with_name("metadata.json").read_text())
    (odd / "metadata.json").write_text(json.dumps({**meta, "classes": list(reversed(meta["classes"]))}))
    with pytest.raises(FervideoError, match="predicts classes"):
        build_ensemble([members[0], odd / "model.keras"], tmp_path / "out", "odd")
    assert not (tmp_path / "out").exists()


def test_bad_data_or_an_untrained_member_fail_before_anything_is_written(members: list[Path], tmp_path: Path):
    with pytest.raises(FervideoError, match="not found"):
        build_ensemble(members, tmp_path / "out", "duo", data=tmp_path / "no-fer2013")
    bare = tmp_path / "bare.keras"  # a model file without the metadata fervideo train writes
    shutil.copyfile(members[0], bare)
    with pytest.raises(FervideoError, match="no training record"):
        build_ensemble([members[0], bare], tmp_path / "out", "duo")
    assert not (tmp_path / "out").exists()  # so a corrected rerun is not refused


def test_evaluate_does_not_write_into_another_models_folder(members: list[Path], packed: Path, fer_folder):
    card = (packed / "README.md").read_text()
    with pytest.raises(FervideoError, match="holds another model's card"):
        evaluate(members[0], fer_folder, tta="crops", out=packed)
    assert not (packed / "metrics_PublicTest_tta-crops.json").exists()
    assert (packed / "README.md").read_text() == card


def test_a_linked_ensemble_names_its_members_and_averages_them(
    members: list[Path], fer_folder: Path, tmp_path: Path, monkeypatch
):
    """Members found by name (here: a user models folder); the ensemble stores no weights, and
    a member that changes afterwards is refused by its sha256."""
    home = tmp_path / "home"
    for index, member in enumerate(members, start=1):
        shutil.copytree(member.parent, home / "models" / f"member{index}")
    monkeypatch.setenv("FERVIDEO_HOME", str(home))
    out = home / "models" / "pair"
    with pytest.raises(FervideoError, match="is a file path, not a model name"):
        build_ensemble([str(members[0]), "member2"], out, "pair", link=True)
    build_ensemble(["member1", "member2"], out, "pair", data=fer_folder, link=True)
    assert not (out / "model.keras").exists()
    meta = json.loads((out / "metadata.json").read_text())
    assert [m["model"] for m in meta["linked_members"]] == ["member1", "member2"]
    crops = load_split(fer_folder, "PublicTest").x[..., 0]
    each = [ExpressionClassifier(path).predict(crops) for path in members]
    together = ExpressionClassifier("pair").predict(crops)  # found by name, like any model
    np.testing.assert_allclose(together, (each[0] + each[1]) / 2, atol=1e-5)
    assert meta["metrics"]["accuracy"] == evaluate("pair", fer_folder).accuracy
    assert "--link" in (out / "README.md").read_text()

    # an ensemble member counts as its networks: the mean is over every network inside
    build_ensemble(["pair", "member2"], home / "models" / "nested", "nested", link=True)
    nested = ExpressionClassifier("nested").predict(crops)
    np.testing.assert_allclose(nested, (each[0] + 2 * each[1]) / 3, atol=1e-5)

    shutil.copyfile(members[1], home / "models" / "member1" / "model.keras")  # member1 changes
    with pytest.raises(FervideoError, match=r"averages member1 with sha256 .* but .* has another"):
        ExpressionClassifier("pair")
