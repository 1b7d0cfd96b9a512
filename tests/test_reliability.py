"""The batch promise under hostile conditions: concurrent runs on one output folder, odd paths,
odd models, damaged videos, kills mid-publication, and a bounded fuzz of a real clip.

Each test here reproduces a case that once broke (issue 20): a traceback, a lost or
half-published result, or a misleading message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

import fervideo
from fervideo.config import AnalyzeConfig
from fervideo.errors import FervideoError
from fervideo.pipeline import Analyzer, analyze_many
from fervideo.store import ResultStore, read_results, video_id
from fervideo.tables import TABLES
from tests.conftest import REPO
from tests.helpers import FakeDetector, write_vfr_video, write_video

CLI = [sys.executable, "-m", "fervideo", "analyze"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run_cli(*args: object, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [*prefix, *CLI, *map(str, args)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def no_traceback(result: subprocess.CompletedProcess) -> bool:
    return "Traceback" not in result.stderr and "Traceback" not in result.stdout


def assert_consistent(out: Path) -> None:
    """Every published video has its four readable tables; nothing is left in staging."""
    store = ResultStore(out)
    for video in store.finished():
        assert sorted(p.name for p in store.video_dir(video).iterdir()) == sorted(
            f"{t}.parquet" for t in TABLES
        )
        store.read(video)
    staging = out / ".fervideo" / "staging"
    assert not staging.exists() or list(staging.iterdir()) == []


@pytest.fixture
def fake_analyzer(classifier):
    return Analyzer(AnalyzeConfig(fps=None), detector=FakeDetector(), classifier=classifier)


def test_two_processes_on_one_output_folder_split_the_videos(tmp_path, tiny_model):
    """Each video is analysed by exactly one of them; the other skips it (or waits for it);
    both succeed, and every video is published whole."""
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(6):
        write_video(clips / f"clip{i}.mp4", 120, size=(320, 240), fps=30)
    out = tmp_path / "o"
    args = [*CLI, clips, "--every-frame", "--model", tiny_model, "--out", out]
    processes = [
        subprocess.Popen(
            list(map(str, args)), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    analysed = sum(stdout.count("frames analysed") for stdout, _ in outputs)
    skipped = sum(stdout.count("already analysed, skipped") for stdout, _ in outputs)
    assert (analysed, skipped) == (6, 6)  # one writer per video
    summary = read_results(out).summary
    assert sorted(summary["path"]) == sorted(str(p.resolve()) for p in clips.iterdir())
    assert (summary["frames_analysed"] == 120).all()
    assert_consistent(out)


def test_a_video_held_by_another_writer_is_put_off_then_skipped(tmp_path, fake_analyzer):
    """Another writer (a thread here, with its own lock) holds the first video until this run
    has done the second one, then publishes it: this run goes on, then waits, then skips it."""
    first, second = (write_video(tmp_path / f"clip{i}.mp4", 5) for i in range(2))
    out = tmp_path / "out"
    store = ResultStore(out)
    held, second_done = threading.Event(), threading.Event()

    def other_writer():
        with store.claim(video_id(first)) as mine:
            assert mine
            held.set()
            assert second_done.wait(60)
            with store.writing(video_id(first), fake_analyzer.run_info) as pending:
                pending.commit(*_empty_tables(fake_analyzer, first))

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert held.wait(60)
    order = []

    def on_result(result):
        order.append(result.path)
        if result.path == second:
            second_done.set()

    results = analyze_many([first, second], out, analyzer=fake_analyzer, on_result=on_result)
    thread.join()
    assert [r.status for r in results] == ["skipped", "done"]
    assert order == [second, first]  # the held one was put off to the end


def _empty_tables(analyzer, path):
    from fervideo.aggregate import Aggregates
    from fervideo.tables import VideoMeta

    aggregates = Aggregates()
    meta = VideoMeta(video_id(path), str(path), 0.5, 10.0, 64, 48, "mp4v", 5, 5, True)
    return (
        aggregates.timeline(meta.video, 0.5),
        aggregates.tracks(meta.video),
        aggregates.summary(meta, analyzer.run_info),
    )


def test_a_symlink_loop_fails_alone_in_one_line(tmp_path, tiny_model):
    (tmp_path / "a.mp4").symlink_to(tmp_path / "b.mp4")
    (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((64, 64, 3), 128, np.uint8))
    result = run_cli(tmp_path / "a.mp4", good, "--model", tiny_model, "--out", tmp_path / "o")
    assert result.returncode == 1 and no_traceback(result)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "a.mp4" in errors[0] and "symbolic link" in errors[0]
    assert result.stdout.splitlines()[-1].startswith("2 inputs: 1 analysed, 0 already done, 1 failed")
    with pytest.raises(FervideoError, match="symbolic link"):
        fervideo.analyze(tmp_path / "a.mp4", model=tiny_model)


@pytest.mark.skipif(
    shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop root's file access"
)
def test_unreadable_files_and_folders_say_permission_denied(tmp_path, tiny_model):
    """Run as root without the capabilities that bypass file permissions, as a normal user would."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "good.mp4", 5)
    write_video(folder / "locked.mp4", 5).chmod(0)
    write_video(folder / "sub" / "x.mp4", 5)
    (folder / "sub").chmod(0)
    alone = write_video(tmp_path / "alone.mp4", 5)
    alone.chmod(0)
    caps = "-dac_override,-dac_read_search"
    prefix = ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")
    try:
        result = run_cli(folder, alone, "--model", tiny_model, "--out", tmp_path / "o", prefix=prefix)
    finally:
        (folder / "sub").chmod(0o755)
    assert result.returncode == 1 and no_traceback(result), result.stderr
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert errors == sorted(
        f"error: {path} cannot be read: permission denied."
        for path in (folder / "locked.mp4", folder / "sub", alone)
    )
    assert "good.mp4: 3 frames analysed" in result.stdout


def test_a_model_file_that_is_not_a_keras_model_is_one_line(tmp_path):
    fake = tmp_path / "model.zip"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr("weights.bin", b"\0" * 10)
    text = tmp_path / "text.keras"
    text.write_text("not a model")
    video = write_video(tmp_path / "clip.mp4", 5)
    renamed = tmp_path / "renamed.keras"
    shutil.copyfile(fake, renamed)
    cases = (
        (fake, "is not a Keras model file: fervideo needs a .keras file"),
        (renamed, "is a zip archive but not a Keras model"),
        (text, "is not a Keras model file: a .keras file is a zip archive"),
    )
    for model, message in cases:
        result = run_cli(video, "--model", model, "--out", tmp_path / "o", "--quiet")
        assert result.returncode == 1 and no_traceback(result), result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "five"])
def test_bad_fps_values_are_refused_in_one_line(value, tmp_path):
    result = run_cli(tmp_path / "x.mp4", "--fps", value)
    assert result.returncode == 2 and no_traceback(result), result.stderr
    assert "fps" in result.stderr


def test_a_truncated_video_is_analysed_up_to_its_cut_with_a_warning(tmp_path, tiny_model):
    data = write_vfr_video(tmp_path / "full.mp4", range(0, 4000, 40), faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.97)])
    out = tmp_path / "o"
    result = run_cli(cut, "--every-frame", "--model", tiny_model, "--out", out)
    assert result.returncode == 0 and no_traceback(result)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "is truncated or damaged" in warnings[0]
    assert "(1 of them incomplete)" in result.stdout
    summary = read_results(out).summary.iloc[0]
    assert not summary["complete"] and summary["frames_decoded"] < summary["frames"] == 100


def test_a_replaced_result_is_never_half_published(tmp_path, fake_analyzer, monkeypatch):
    """--overwrite moves the old folder out and the new one in; a kill between the two leaves
    the video absent, never a mix, and the next run publishes it again."""
    video = write_video(tmp_path / "clip.mp4", 5)
    out = tmp_path / "out"
    fake_analyzer.run(video, out)
    calls = []
    real_rename = os.rename

    def killed_after_first(source, target):
        calls.append(target)
        real_rename(source, target)
        if len(calls) == 1:
            raise KeyboardInterrupt  # as if killed right after the old folder moved out

    monkeypatch.setattr(os, "rename", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        fake_analyzer.run(video, out, overwrite=True)
    monkeypatch.setattr(os, "rename", real_rename)
    assert (
        not ResultStore(out).is_done(video_id(video))
        and not ResultStore(out).video_dir(video_id(video)).exists()
    )
    assert fake_analyzer.run(video, out).status == "done"
    assert_consistent(out)


def test_a_full_disk_leaves_no_hidden_files_and_a_dead_writers_are_cleaned(
    tmp_path, fake_analyzer, monkeypatch
):
    import fervideo.store

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    video = write_video(tmp_path / "clip.mp4", 5)
    out = tmp_path / "out"
    monkeypatch.setattr(fervideo.store.pq, "write_table", full)
    results = analyze_many([video], out, analyzer=fake_analyzer)
    assert results[0].status == "failed" and "No space left on device" in results[0].message
    monkeypatch.undo()
    assert_consistent(out)
    # a writer killed with -9 leaves its staging folder; the next run of any video sweeps it
    stale = out / ".fervideo" / "staging" / f"{video_id(video)}~dead"
    stale.mkdir(parents=True)
    (stale / "faces.parquet").write_bytes(b"")
    other = write_video(tmp_path / "other.mp4", 5)
    assert [r.status for r in analyze_many([other], out, analyzer=fake_analyzer)] == ["done"]
    assert not stale.exists()


def test_the_library_keeps_ffmpeg_and_tensorflow_chatter_to_itself(tmp_path, tiny_model):
    data = write_video(tmp_path / "clip.mp4", 40).read_bytes()  # OpenCV writes its index last
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # "moov atom not found"
    code = (
        "import fervideo, sys\n"
        f"try: fervideo.analyze({str(tmp_path / 'cut.mp4')!r}, model={str(tiny_model)!r})\n"
        "except fervideo.FervideoError as err: print('error', err)\n"
        f"fervideo.analyze({str(tmp_path / 'clip.mp4')!r}, model={str(tiny_model)!r})\n"
    )
    # an empty model cache: the model's first use converts it for ONNX Runtime, which TensorFlow's
    # own deprecation notices would announce
    env = {**ENV, "FERVIDEO_CACHE": str(tmp_path / "cache")}
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout.startswith("error"), quiet.stderr
    assert quiet.stderr == ""
    loud = subprocess.run(
        [sys.executable, "-c", code], env={**env, "FERVIDEO_NATIVE_LOGS": "1"}, capture_output=True, text=True
    )
    assert loud.stderr != ""  # the same run, with the native logs asked for


def test_small_cases(tmp_path, fake_analyzer):
    # a folder given to fervideo.analyze points to analyze_many
    with pytest.raises(FervideoError, match=r"use fervideo\.analyze_many"):
        fervideo.analyze(tmp_path)
    # ids keep letters of any script
    assert video_id(tmp_path / "日本 ad.mp4").startswith("日本_ad-")
    # a JPEG named .mp4 is a still, not a 0-frame 25 fps video
    cv2.imwrite(str(tmp_path / "photo.jpg"), np.full((48, 64, 3), 90, np.uint8))
    (tmp_path / "photo.jpg").rename(tmp_path / "photo.mp4")
    result = fake_analyzer.run(tmp_path / "photo.mp4", tmp_path / "out")
    summary = ResultStore(tmp_path / "out").read(result.video).summary.iloc[0]
    assert (summary["frames"], summary["frames_analysed"], summary["fps"], summary["codec"]) == (
        1,
        1,
        0.0,
        "jpeg",
    )


def _corruptions(data: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    n = len(data)
    cases = []
    for _ in range(12):
        flipped = bytearray(data)
        for at in rng.integers(0, n, rng.integers(1, 64)):
            flipped[at] ^= int(rng.integers(1, 256))
        cases.append(("flip", bytes(flipped)))
    cases += [("cut", data[: int(rng.integers(1, n))]) for _ in range(12)]
    for _ in range(6):
        a, b = sorted(rng.integers(0, n, 2))
        cases.append(("swap", data[b : b + 512] + data[512:a] + data[:512] + data[a:]))
    cases.append(("header-only", data[:4096]))
    cases.append(("zeros", bytes(n)))
    return cases


def test_fuzz_a_damaged_real_clip_never_breaks_the_batch(tmp_path, classifier, example_video):
    """Byte flips, cuts at random offsets and swapped blocks of the example clip, analysed in
    one batch with the real detector: every input ends done or failed in one line, nothing
    is lost, and the output folder stays consistent after every video."""
    rng = np.random.default_rng(20)
    data = example_video.read_bytes()
    out = tmp_path / "out"
    analyzer = Analyzer(AnalyzeConfig(fps=5.0), classifier=classifier)
    assert analyzer.run(example_video, out).status == "done"
    kept = ResultStore(out).read(video_id(example_video))
    paths = []
    for i, (kind, content) in enumerate(_corruptions(data, rng)):
        path = tmp_path / "in" / f"{i:02d}-{kind}.mp4"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        paths.append(path)

    def check(result):
        assert result.status in ("done", "failed"), result
        assert "\n" not in result.message and "unexpected error" not in result.message, result.message
        assert_consistent(out)

    results = analyze_many(paths, out, analyzer=analyzer, on_result=check)
    assert len(results) == len(paths)
    statuses = {r.status for r in results}
    assert statuses == {"done", "failed"}  # the fuzz reaches both outcomes
    again = ResultStore(out).read(video_id(example_video))  # the finished result is untouched
    assert again.faces.equals(kept.faces) and again.summary.equals(kept.summary)
    for result in results:
        if result.status == "done":
            summary = ResultStore(out).read(result.video).summary.iloc[0]
            assert summary["complete"] == result.complete
            assert pq.read_schema(ResultStore(out).path("summary", result.video)).metadata
