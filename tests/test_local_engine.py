"""The local multi-process engine (`--workers`): the tables of one process, the progress and
results callbacks, and a worker killed in the middle of a video failing only that video."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import partial

import pandas as pd
import pytest
from typer.testing import CliRunner

from fervideo.cli import app
from fervideo.config import AnalyzeConfig
from fervideo.engines.local import analyze_in_workers
from fervideo.errors import FervideoError
from fervideo.pipeline import analyze_many, expand_inputs, local_workers
from fervideo.store import read_results
from fervideo.tables import TABLES
from tests.ray_helpers import DyingAnalyzer

runner = CliRunner()


def test_workers_give_the_tables_and_results_of_one_process(tmp_path, clips, tiny_model):
    missing = tmp_path / "missing.mp4"
    config = AnalyzeConfig(model=tiny_model)
    one = analyze_many([clips, missing], tmp_path / "one", replace(config, workers=1))
    seen, progress = [], {}
    two = analyze_many(
        [clips, missing],
        tmp_path / "two",
        replace(config, workers=2),
        on_result=seen.append,
        on_progress=lambda path, done, total: progress.__setitem__(path, (done, total)),
    )
    assert [replace(r, seconds={}) for r in two] == [replace(r, seconds={}) for r in one]
    assert [r.status for r in two] == ["done"] * 3 + ["failed"]
    assert sorted(map(str, (r.path for r in seen))) == sorted(str(r.path) for r in two)
    assert progress == {clips / "ad.mp4": (60, 60), clips / "again.mp4": (60, 60), clips / "grey.mp4": (5, 5)}
    for name, a, b in zip(
        TABLES, read_results(tmp_path / "one"), read_results(tmp_path / "two"), strict=True
    ):
        pd.testing.assert_frame_equal(a, b, obj=name)


def test_a_worker_that_dies_fails_only_its_video(tmp_path, clips, tiny_model):
    paths = expand_inputs([clips])
    dying = partial(DyingAnalyzer, after=3, markers=tmp_path, always={"again.mp4"})
    results = analyze_in_workers(
        paths, tmp_path / "out", AnalyzeConfig(model=tiny_model), 2, make_analyzer=dying
    )
    assert [(r.path.name, r.status) for r in results] == [
        ("ad.mp4", "done"),
        ("again.mp4", "failed"),
        ("grey.mp4", "done"),
    ]
    assert results[1].message == f"{paths[1]}: the worker process analysing it died (exit code -9)."
    assert sorted(read_results(tmp_path / "out").summary["path"].map(lambda p: p.rsplit("/", 1)[-1])) == [
        "ad.mp4",
        "grey.mp4",
    ]


def test_a_model_that_cannot_load_is_one_error_before_any_video(tmp_path, clips):
    with pytest.raises(FervideoError, match=r"does not exist|unknown|not found"):
        analyze_many([clips], tmp_path / "out", AnalyzeConfig(model=tmp_path / "none.keras", workers=2))


def test_one_input_or_one_worker_stays_in_this_process():
    assert local_workers(AnalyzeConfig(workers=4), 1) == 1
    assert local_workers(AnalyzeConfig(workers=1), 9) == 1
    assert local_workers(AnalyzeConfig(workers=3), 9) == 3
    assert local_workers(AnalyzeConfig(workers=8), 2) == 2
    assert local_workers(AnalyzeConfig(), 99) == (os.cpu_count() or 1)


def test_the_command_takes_workers_and_prints_every_video(tmp_path, clips, tiny_model):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["analyze", str(clips), "--model", str(tiny_model), "--out", str(out), "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("frames analysed") == 3
    assert (
        result.stdout.splitlines()[-1] == f"3 inputs: 3 analysed, 0 already done, 0 failed; tables in {out}/"
    )
