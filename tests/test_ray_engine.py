"""The Ray engine against the local one, on a Ray instance that this module starts inside the
test process (2 CPUs, nothing external): the same results, tables, lines and failures; a worker
killed in the middle of a video; the classify stage split off onto its own actor (on a CPU)."""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from fervideo import pipeline
from fervideo.cli import app
from fervideo.config import AnalyzeConfig, RayConfig
from fervideo.errors import FervideoError, SettingError
from fervideo.pipeline import VideoResult, analyze_many
from fervideo.store import ResultStore, read_results, video_id
from fervideo.tables import TABLES
from tests.ray_helpers import DyingAnalyzer, remotely_classifying_analyzer

try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="the ray extra is not installed: pip install -e '.[ray]'")
runner = CliRunner()


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance for this module's tests (the engine uses it instead of its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


def without_timings(results: list[VideoResult]) -> list[VideoResult]:
    return [replace(r, seconds={}) for r in results]


def assert_same_tables(first: Path, second: Path) -> None:
    for name, a, b in zip(TABLES, read_results(first), read_results(second), strict=True):
        assert len(a), f"{name}: no rows to compare"
        pd.testing.assert_frame_equal(a, b, obj=name)


@needs_ray
def test_same_results_progress_and_tables_as_the_local_engine_then_skips(
    ray_instance, tmp_path, clips, tiny_model
):
    bad = [tmp_path / "missing.mp4", tmp_path / "notes.mp4", tmp_path / "empty"]
    bad[1].write_text("hello")
    bad[2].mkdir()
    inputs = [clips, *bad]
    config = AnalyzeConfig(model=tiny_model, ray=RayConfig(actors=2))
    local = analyze_many(inputs, tmp_path / "local", config)

    seen, progress = [], {}
    remote = analyze_many(
        inputs,
        tmp_path / "ray",
        config,
        engine="ray",
        on_result=seen.append,
        on_progress=lambda path, done, total: progress.__setitem__(path, (done, total)),
    )
    assert without_timings(remote) == without_timings(local)
    assert [r.status for r in remote] == ["done"] * 3 + ["failed"] * 3
    assert "does not exist" in remote[3].message and "not a video" in remote[4].message
    assert sorted(seen, key=lambda r: str(r.path)) == sorted(remote, key=lambda r: str(r.path))
    assert progress == {clips / "ad.mp4": (60, 60), clips / "again.mp4": (60, 60), clips / "grey.mp4": (5, 5)}
    assert_same_tables(tmp_path / "local", tmp_path / "ray")

    again = analyze_many(inputs, tmp_path / "ray", config, engine="ray")
    assert [r.status for r in again] == ["skipped"] * 3 + ["failed"] * 3
    assert [r.message for r in again[3:]] == [r.message for r in local[3:]]


@needs_ray
def test_the_command_prints_what_the_local_engine_prints(ray_instance, tmp_path, clips, tiny_model):
    def run(engine: str):
        args = ["analyze", str(clips / "ad.mp4"), str(tmp_path / "missing.mp4"), "--model", str(tiny_model)]
        return runner.invoke(app, [*args, "--out", str(tmp_path / engine), "--engine", engine])

    local, remote = run("local"), run("ray")
    assert local.exit_code == remote.exit_code == 1
    assert sorted(remote.stdout.splitlines()) == sorted(
        line.replace(str(tmp_path / "local"), str(tmp_path / "ray")) for line in local.stdout.splitlines()
    )
    assert f"{clips / 'ad.mp4'}: 20 frames analysed, 20 faces, 1 track" in remote.stdout
    errors = [re.findall(r"error: .*", r.stderr) for r in (local, remote)]  # between progress bars
    assert errors[0] == errors[1] == [f"error: {tmp_path / 'missing.mp4'} does not exist."]


@needs_ray
def test_a_worker_killed_mid_video_is_retried_and_its_tables_are_a_clean_runs(
    ray_instance, tmp_path, clips, tiny_model
):
    """Each actor process kills itself (SIGKILL) after 10 of a video's 20 sampled frames, with
    two 4-frame chunks of faces already in staging: once for ad.mp4, at every attempt for
    again.mp4 (so it fails after its retry), never for grey.mp4."""
    from fervideo.engines.ray import analyze_on_ray

    markers = tmp_path / "kills"
    markers.mkdir()
    dying = partial(DyingAnalyzer, after=10, markers=markers, once={"ad.mp4"}, always={"again.mp4"})
    config = AnalyzeConfig(model=tiny_model, chunk_frames=4, ray=RayConfig(actors=2, retries=1))
    paths = pipeline.expand_inputs([clips])
    out = tmp_path / "ray"
    results = analyze_on_ray(paths, out, config, make_analyzer=dying)

    ad, again, grey = results
    assert (markers / "ad.mp4").exists()  # it was killed once
    assert [ad.status, grey.status] == ["done", "done"] and ad.faces == 20
    assert again.status == "failed"
    assert re.fullmatch(
        rf"{re.escape(str(clips / 'again.mp4'))}: the Ray worker analysing it died 2 times \(\w+Error\); "
        "see the cluster's worker logs.",
        again.message,
    )
    assert ResultStore(out).finished() == sorted(video_id(p) for p in (clips / "ad.mp4", clips / "grey.mp4"))
    assert list((out / ".fervideo" / "staging").iterdir()) == []  # what the killed writers left is gone

    (clips / "again.mp4").unlink()
    analyze_many([clips], tmp_path / "local", config)
    assert_same_tables(tmp_path / "local", out)


@needs_ray
def test_the_classify_stage_on_its_own_actor_gives_the_local_tables(
    ray_instance, tmp_path, clips, tiny_model
):
    """The GPU layout, tried on CPUs: one video actor sends its crops to one classifier actor."""
    from fervideo.engines.ray import analyze_on_ray

    layout = RayConfig(actors=1, classify_actors=1, classify_gpus=0)
    config = AnalyzeConfig(model=tiny_model, ray=layout)
    paths = pipeline.expand_inputs([clips])
    results = analyze_on_ray(paths, tmp_path / "split", config, make_analyzer=remotely_classifying_analyzer)
    assert [r.status for r in results] == ["done"] * 3
    analyze_many([clips], tmp_path / "local", config)
    assert_same_tables(tmp_path / "local", tmp_path / "split")


@needs_ray
def test_the_remote_classifier_returns_the_models_probabilities(ray_instance, tiny_model, classifier):
    from fervideo.engines.ray import ClassifyWorker, RemoteClassifier

    config = AnalyzeConfig(model=tiny_model)
    actor = ray.remote(ClassifyWorker).options(num_cpus=1).remote(config)
    try:
        assert ray.get(actor.ready.remote()) is None
        remote = RemoteClassifier([actor], config)
        crops = np.random.default_rng(0).integers(0, 256, (300, 48, 48), dtype=np.uint8)
        np.testing.assert_allclose(remote.predict(crops), classifier.predict(crops), rtol=1e-5, atol=1e-7)
        assert remote.predict(crops[:0]).shape == (0, 7)
        assert (remote.info.path, remote.tta) == (classifier.info.path, classifier.tta)
    finally:
        ray.kill(actor)


@needs_ray
def test_a_model_that_cannot_load_stops_the_run_before_any_input(ray_instance, tmp_path, clips):
    config = AnalyzeConfig(model=tmp_path / "nowhere.keras", ray=RayConfig(actors=1))
    with pytest.raises(FervideoError, match=r"^model file .*nowhere.keras does not exist\.$"):
        analyze_many([clips], tmp_path / "out", config, engine="ray")
    assert not (tmp_path / "out").exists()


@needs_ray
def test_classifier_actors_asking_for_gpus_on_a_cpu_cluster_are_refused(ray_instance, tmp_path, clips):
    config = AnalyzeConfig(ray=RayConfig(classify_actors=1))
    expected = r"need 1 GPU each, but the Ray cluster has 0; pass --classify-gpus 0"
    with pytest.raises(FervideoError, match=expected):
        analyze_many([clips], tmp_path / "out", config, engine="ray")


def test_an_address_where_nothing_answers_fails_at_once():
    from fervideo.engines.ray import check_reachable

    with pytest.raises(
        FervideoError, match=r"^cannot connect to the Ray cluster at 127\.0\.0\.1:1: Connection refused"
    ):
        check_reachable("127.0.0.1:1")
    check_reachable("auto")  # left to Ray


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(FervideoError, match=r"pip install 'fervideo\[ray\]'"):
        analyze_many(["a.mp4"], tmp_path, engine="ray")
    result = runner.invoke(app, ["analyze", "a.mp4", "--engine", "ray", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "error: the Ray engine needs Ray: pip install 'fervideo[ray]'."


def test_the_command_forwards_the_ray_options(monkeypatch, tmp_path):
    calls = []

    def fake_analyze_many(paths, out, **kwargs):
        calls.append(kwargs)
        return [VideoResult(Path(p), "done", "v") for p in paths]

    monkeypatch.setattr(pipeline, "analyze_many", fake_analyze_many)
    args = ["analyze", "a.mp4", "--engine", "ray", "--address", "head:6379", "--retries", "4"]
    result = runner.invoke(app, [*args, "--classify-actors", "3", "--classify-gpus", "0.5"])
    assert result.exit_code == 0, result.output
    assert calls[0]["engine"] == "ray" and calls[0]["address"] == "head:6379"
    assert calls[0]["analyzer"] is None  # the actors load the models, not the driver
    assert calls[0]["config"].ray == RayConfig(retries=4, classify_actors=3, classify_gpus=0.5)
    assert runner.invoke(app, ["analyze", "a.mp4", "--address", "head:6379"]).exit_code == 2


def test_engine_settings_are_checked():
    with pytest.raises(SettingError, match="engine must be one of local, ray"):
        analyze_many([], "out", engine="spark")
    with pytest.raises(SettingError, match=r"RayConfig\.retries must be an integer >= 0"):
        RayConfig(retries=-1)


@pytest.mark.parametrize(
    ("free", "layout", "inputs", "expected"),
    [
        ({"CPU": 16.0, "GPU": 1.0}, RayConfig(), 100, (15, 1)),  # one GPU feeds 15 CPU actors
        ({"CPU": 16.0, "GPU": 1.0}, RayConfig(classify_gpus=0.5), 100, (14, 2)),
        ({"CPU": 16.0, "GPU": 1.0}, RayConfig(classify_actors=0), 100, (16, 0)),
        ({"CPU": 2.0}, RayConfig(), 100, (2, 0)),  # CPU-only: actors classify themselves
        ({"CPU": 2.0}, RayConfig(), 1, (1, 0)),  # never more actors than inputs
        ({"CPU": 2.0}, RayConfig(classify_actors=1, classify_gpus=0), 9, (1, 1)),
        ({"CPU": 0.0}, RayConfig(), 9, (1, 0)),  # a busy cluster: one actor waits for a CPU
        ({"CPU": 8.0}, RayConfig(actors=3, actor_cpus=2), 9, (3, 0)),
    ],
)
def test_the_pool_is_sized_to_the_cluster(free, layout, inputs, expected):
    from fervideo.engines.ray import pool_sizes

    assert pool_sizes(free, layout, inputs) == expected
