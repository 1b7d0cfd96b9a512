"""`fervideo train`, `evaluate` and `models` through the CLI, as a new user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fervideo.catalog import resolve_model, user_models_dir
from fervideo.cli import app
from fervideo.config import DEFAULT_MODEL
from fervideo.training import fit
from fervideo.training.recipes import RECIPES

runner = CliRunner()


def test_train_forwards_options_over_the_recipe(monkeypatch, tmp_path: Path):
    calls = []
    monkeypatch.setattr(
        fit,
        "train",
        lambda config, time_budget_s=None, replan_epochs=None: (
            calls.append((config, time_budget_s, replan_epochs)) or tmp_path / "model.keras"
        ),
    )
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "resvgg",
            "--data",
            "d.csv",
            "--epochs",
            "7",
            "--lr",
            "0.02",
            "--time-budget",
            "3",
            "--resume",
            "--recalibrate-bn",
        ],
    )
    assert result.exit_code == 0, result.output
    config, budget, replan = calls[0]
    assert config.recalibrate_bn and not RECIPES["resvgg"].recalibrate_bn
    assert (config.architecture, config.epochs, config.learning_rate) == ("resvgg", 7, 0.02)
    assert config.resume and budget == 180 and config.out == user_models_dir() / "resvgg"
    assert replan == 7  # --epochs with --resume gives the run a new length
    # options not given come from the bundled recipe
    assert config.label_smoothing == RECIPES["resvgg"].label_smoothing
    assert config.augment == RECIPES["resvgg"].augment
    runner.invoke(app, ["train", "--model", "resvgg", "--data", "d.csv", "--epochs", "7"])
    assert calls[1][0].epochs == 7 and calls[1][2] is None  # a new run: no re-planning


def test_train_one_epoch_writes_every_output(fer_csv: Path, tmp_path: Path):
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "custom_cnn",
            "--data",
            str(fer_csv),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in (
        "model.keras",
        "metadata.json",
        "history.csv",
        "curves.png",
        "confusion_PublicTest.png",
        "metrics_PublicTest.json",
        "README.md",
    ):
        assert (out / name).is_file(), name

    evaluated = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(out / "model.keras"),
            "--data",
            str(fer_csv),
            "--tta",
            "flip",
            "--out",
            str(tmp_path / "eval"),
        ],
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy" in evaluated.output and "surprise" in evaluated.output
    metrics = json.loads((tmp_path / "eval" / "metrics_PublicTest_tta-flip.json").read_text())
    assert metrics["tta"] == "flip" and metrics["images"] == 14


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--model", "vgg", "--data", "{csv}"], "unknown architecture"),
        (["train", "--model", "resvgg", "--data", "{missing}"], "not found"),
        (["evaluate", "--model", "nope", "--data", "{csv}"], "no model named 'nope'"),
        (["evaluate", "--model", "{missing}.keras", "--data", "{csv}"], "does not exist"),
    ],
)
def test_errors_are_one_line_and_exit_1(args, message, fer_csv: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [a.format(csv=fer_csv, missing=tmp_path / "missing") for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_models_lists_the_bundled_ones(tiny_model: Path, tmp_path: Path, monkeypatch):
    folder = tmp_path / DEFAULT_MODEL
    folder.mkdir()
    (folder / "model.keras").write_bytes(tiny_model.read_bytes())
    (folder / "metadata.json").write_text(
        json.dumps(
            {
                "name": DEFAULT_MODEL,
                "architecture": "resvgg",
                "parameters": 1234,
                "metrics": {"accuracy": 0.6789, "split": "PublicTest"},
            }
        )
    )
    monkeypatch.setenv("FERVIDEO_MODELS", str(tmp_path))
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(DEFAULT_MODEL))
    assert "(default)" in line and "67.89%" in line and "1,234" in line


def test_models_without_any(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("FERVIDEO_MODELS", str(tmp_path))
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 1 and "no models found" in result.output


def test_a_model_trained_with_the_default_out_is_then_found_by_name(fer_csv: Path, tmp_path, monkeypatch):
    """Without --out the run goes to the user's models folder ($FERVIDEO_HOME/models), so the
    finished model is listed by `fervideo models` and selected by `--model NAME`, ahead of a
    bundled model of the same name."""
    monkeypatch.setenv("FERVIDEO_HOME", str(tmp_path / "home"))
    assert resolve_model("resvgg").source == "bundled"
    result = runner.invoke(
        app, ["train", "--model", "resvgg", "--data", str(fer_csv), "--epochs", "1", "--batch-size", "16"]
    )
    assert result.exit_code == 0, result.output
    info = resolve_model("resvgg")
    assert info.source == "user" and info.path == tmp_path / "home" / "models" / "resvgg" / "model.keras"
    assert resolve_model("default").source == "bundled"  # "default" is always the bundled one
    listing = runner.invoke(app, ["models"]).output.splitlines()
    assert any(line.startswith("resvgg ") and line.endswith("user") for line in listing)
