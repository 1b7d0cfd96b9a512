import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from fervideo import __version__, pipeline
from fervideo.cli import app
from fervideo.cli.analyze import Detector
from fervideo.config import DEFAULT_OUT, AnalyzeConfig
from fervideo.detect import DETECTORS
from fervideo.errors import FervideoError
from fervideo.pipeline import VideoResult
from tests.helpers import FakeDetector, write_video

runner = CliRunner()


class RecordingAnalyzer:
    """Stands in for `pipeline.Analyzer`: records the config, analyses nothing."""

    configs: ClassVar[list[AnalyzeConfig]] = []

    def __init__(self, config):
        self.configs.append(config)


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    RecordingAnalyzer.configs = []

    def fake_analyze_many(paths, out, **kwargs):
        calls.append({"paths": paths, "out": out, **kwargs})
        return [VideoResult(Path(p), "done", "v", frames_analysed=3) for p in paths]

    monkeypatch.setattr(pipeline, "Analyzer", RecordingAnalyzer)
    monkeypatch.setattr(pipeline, "analyze_many", fake_analyze_many)
    return RecordingAnalyzer.configs, calls


def test_help_is_instant_and_imports_nothing_heavy():
    code = (
        "import sys; from typer.testing import CliRunner; from fervideo.cli import app; "
        "r = CliRunner().invoke(app, ['analyze', '--help']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'cv2', 'pyarrow', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"fervideo {__version__}"


def test_detector_choices_are_the_registry():
    assert {d.value for d in Detector} == set(DETECTORS)


def test_defaults_come_from_the_config(recorded):
    configs, calls = recorded
    result = runner.invoke(app, ["analyze", "a.mp4"])
    assert result.exit_code == 0, result.output
    assert configs == [AnalyzeConfig()]
    assert calls[0]["paths"] == [Path("a.mp4")] and calls[0]["out"] == DEFAULT_OUT
    assert calls[0]["overwrite"] is False


def test_options_are_forwarded(recorded, tmp_path):
    configs, calls = recorded
    args = [
        "analyze",
        "a.mp4",
        "b.mp4",
        "--out",
        str(tmp_path),
        "--fps",
        "2.5",
        "--model",
        "resnet",
        "--detector",
        "retinaface",
        "--batch-size",
        "8",
        "--tta",
        "crops",
        "--overwrite",
        "--retinaface-weights",
        "w.onnx",
        "--min-face",
        "40",
        "--min-score",
        "0.7",
        "--workers",
        "1",
    ]
    assert runner.invoke(app, args).exit_code == 0
    assert configs == [
        AnalyzeConfig(
            model="resnet",
            detector="retinaface",
            fps=2.5,
            batch_size=8,
            tta="crops",
            retinaface_weights=Path("w.onnx"),
            min_face=40,
            min_score=0.7,
            workers=1,
        )
    ]
    assert calls[0]["paths"] == [Path("a.mp4"), Path("b.mp4")] and calls[0]["out"] == tmp_path
    assert calls[0]["overwrite"] is True


def test_every_frame_turns_sampling_off(recorded):
    configs, _ = recorded
    runner.invoke(app, ["analyze", "a.mp4", "--every-frame", "--fps", "3"])
    assert configs[0].fps is None


@pytest.mark.parametrize(
    "args", [["--fps", "0"], ["--batch-size", "0"], ["--detector", "haar"], ["--min-score", "1.5"]]
)
def test_bad_option_values_are_refused(recorded, args):
    assert runner.invoke(app, ["analyze", "a.mp4", *args]).exit_code == 2


def test_a_library_error_is_one_line_and_exit_1(monkeypatch):
    def refuse(config):
        raise FervideoError("no bundled model named 'x'; bundled models are: none.")

    monkeypatch.setattr(pipeline, "Analyzer", refuse)
    result = runner.invoke(app, ["analyze", "a.mp4", "--model", "x", "--quiet"])
    assert result.exit_code == 1
    assert result.stderr == "error: no bundled model named 'x'; bundled models are: none.\n"


def test_output_problems_are_error_lines_not_tracebacks(tmp_path, classifier, monkeypatch):
    real = pipeline.Analyzer
    monkeypatch.setattr(
        pipeline, "Analyzer", lambda config: real(config, detector=FakeDetector(), classifier=classifier)
    )
    videos = [str(write_video(tmp_path / f"clip{i}.mp4", 5)) for i in range(2)]
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    one = ["--workers", "1"]  # the patched Analyzer exists in this process only
    result = runner.invoke(app, ["analyze", *videos, "--out", str(not_a_folder), "--quiet", *one])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not an OSError
    locks = not_a_folder / ".fervideo" / "locks"
    assert result.stderr == "".join(f"error: {v}: cannot write {locks}: Not a directory.\n" for v in videos)

    out = tmp_path / "out"
    assert runner.invoke(app, ["analyze", *videos, "--out", str(out), *one]).exit_code == 0
    again = runner.invoke(app, ["analyze", *videos, "--out", str(out), "--fps", "1", "--quiet", *one])
    assert again.exit_code == 1
    assert again.stderr.splitlines() == [
        f"error: {video} was analysed with other settings (sampling 5 fps; this run: sampling 1 fps); "
        "pass --overwrite to redo it or choose another --out."
        for video in videos
    ]
    redo = runner.invoke(app, ["analyze", *videos, "--out", str(out), "--fps", "1", "--overwrite", *one])
    assert redo.exit_code == 0 and "2 analysed" in redo.stdout


def test_end_to_end_with_bad_inputs_then_resume(tmp_path, tiny_model, example_video):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "ad.mp4").write_bytes(example_video.read_bytes())
    write_video(folder / "grey.mp4", 5)
    (folder / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    args = [
        "analyze",
        str(folder),
        str(tmp_path / "missing.mov"),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
    ]

    first = runner.invoke(app, args)
    assert first.exit_code == 1
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert "broken.mp4 is not a video" in errors[0] and "missing.mov does not exist" in errors[1]
    assert "ad.mp4: 20 frames analysed, 20 faces, 1 track (video id" in first.stdout
    assert "grey.mp4: 3 frames analysed, 0 faces, 0 tracks" in first.stdout  # 0.5 s at 5 fps
    assert (
        first.stdout.splitlines()[-1] == f"4 inputs: 2 analysed, 0 already done, 2 failed; tables in {out}/"
    )
    assert len(list((out / "videos").glob("*/summary.parquet"))) == 2

    again = runner.invoke(app, [*args[:2], *args[3:], "--quiet"])  # only the folder, quietly
    assert again.exit_code == 1 and again.stdout == ""
    assert again.stderr.count("error:") == 1

    (folder / "broken.mp4").unlink()
    resumed = runner.invoke(app, [*args[:2], *args[3:]])
    assert resumed.exit_code == 0, resumed.output
    assert resumed.stdout.count("already analysed, skipped") == 2


def test_the_first_use_of_a_model_says_it_is_being_converted(
    tmp_path, tiny_model, example_video, monkeypatch
):
    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    args = ["analyze", str(example_video), "--model", str(tiny_model), "--out", str(tmp_path / "out")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0 and first.stderr.count("preparing the model for ONNX Runtime") == 1
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0 and "preparing the model" not in again.stderr
    keras = runner.invoke(app, [*args, "--overwrite", "--runtime", "keras"])
    assert keras.exit_code == 0 and "preparing the model" not in keras.stderr


def test_a_model_onnx_runtime_cannot_run_is_one_warning_line(
    tmp_path, tiny_model, example_video, monkeypatch
):
    def unconvertible(model):
        raise ValueError("tf2onnx: unsupported op Foo\nand more")

    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr("fervideo.onnx_export.to_onnx", unconvertible)
    args = ["analyze", str(example_video), "--model", str(tiny_model), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warned == [
        f"warning: running {tiny_model} with TensorFlow: ONNX Runtime cannot (tf2onnx: unsupported op Foo)"
    ]
    again = runner.invoke(app, [*args, "--overwrite"])  # the handler is added once per process
    assert sum(line.startswith("warning:") for line in again.stderr.splitlines()) == 1
