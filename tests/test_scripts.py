"""The example and benchmark scripts: importable, and built on the library's own names."""

import importlib.util
import sys
from types import SimpleNamespace

import pytest

from fervideo.config import AnalyzeConfig
from fervideo.core import EMOTIONS
from fervideo.pipeline import Analyzer
from fervideo.tables import RunInfo
from tests.conftest import REPO
from tests.helpers import FakeDetector, write_video


def load_script(relative: str):
    path = REPO / relative
    name = f"script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed_benchmark():
    return load_script("benchmarks/analyze_speed.py")


def test_read_results_example_reads_an_output_folder(tmp_path, classifier, capsys):
    read_results = load_script("examples/read_results.py")
    analyzer = Analyzer(AnalyzeConfig(), detector=FakeDetector(), classifier=classifier)
    analyzer.run(write_video(tmp_path / "clip.mp4", 10), tmp_path / "out")
    read_results.main(tmp_path / "out")
    printed = capsys.readouterr().out
    assert "Top class per track:" in printed and "fervideo.tta: none" in printed
    header = next(line for line in printed.splitlines() if "_peak" in line)
    assert header.split() == [f"{e}_peak" for e in EMOTIONS]  # the classes in the tables' order


@pytest.mark.parametrize("tta", ["none", "flip", "crops"])
def test_speed_benchmark_reports_the_tta_mode(speed_benchmark, tta):
    run = RunInfo("m", "s", "yunet (yuface 1)", 5.0, "1", tta)
    analyzer = SimpleNamespace(config=AnalyzeConfig(tta=tta, batch_size=8), run_info=run)
    line = speed_benchmark.settings_line(analyzer)
    assert line == f"- settings: detector `yunet (yuface 1)`, sampling 5 fps, batch size 8, TTA {tta}"


def test_speed_benchmark_defaults_are_the_analyze_defaults(speed_benchmark):
    defaults, args = AnalyzeConfig(), speed_benchmark.parse_args([])
    assert (args.model, args.detector, args.fps) == (defaults.model, defaults.detector, defaults.fps)
