import errno
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from fervideo.config import DEFAULT_MODEL, AnalyzeConfig
from fervideo.core import EMOTIONS
from fervideo.crop import crop_faces
from fervideo.errors import FervideoError
from fervideo.pipeline import Analyzer, analyze, analyze_many, expand_inputs
from fervideo.store import ResultStore, read_results, video_id
from fervideo.tables import TABLES
from tests.conftest import REPO
from tests.helpers import FakeDetector, container_times, write_fake_retinaface, write_vfr_video, write_video


def parquet_files(out):
    """Every file under `out` but the writer locks (hidden, tiny and kept on purpose)."""
    locks = out / ".fervideo" / "locks"
    return sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and locks not in p.parents
    )


@pytest.fixture
def fake_analyzer(classifier):
    """The tiny model behind a detector that finds one fixed face per frame."""
    return Analyzer(AnalyzeConfig(fps=5.0), detector=FakeDetector(), classifier=classifier)


def test_one_video_gives_four_tables_in_one_file_each(tmp_path, fake_analyzer):
    video = write_video(tmp_path / "clip.mp4", 20, fps=10)
    out = tmp_path / "out"
    result = fake_analyzer.run(video, out)
    vid = video_id(video)
    assert (result.status, result.video, result.frames_analysed, result.faces, result.tracks) == (
        "done",
        vid,
        10,
        10,
        1,
    )
    assert parquet_files(out) == [f"videos/{vid}/{t}.parquet" for t in sorted(TABLES)]
    faces = read_results(out).faces
    assert faces["frame"].tolist() == list(range(0, 20, 2))
    np.testing.assert_allclose(faces["timestamp"], np.arange(0, 2, 0.2), atol=1e-6)
    assert (faces["track"] == 0).all() and (faces["video"] == vid).all()
    assert faces[["x", "y", "w", "h"]].iloc[0].tolist() == [10, 8, 30, 30]
    np.testing.assert_allclose(faces[list(EMOTIONS)].sum(axis=1), 1, atol=1e-5)
    metadata = pq.read_schema(out / "videos" / vid / "faces.parquet").metadata
    assert metadata[b"fervideo.model"] == b"tiny" and metadata[b"fervideo.sampling"] == b"5 fps"
    assert metadata[b"fervideo.tta"] == b"none"
    summary = read_results(out).summary.iloc[0]
    assert (summary["frames"], summary["frames_analysed"], summary["faces"]) == (20, 10, 10)
    assert (summary["frames_decoded"], summary["complete"]) == (20, True)
    assert summary["duration"] == pytest.approx(2.0)


def test_probabilities_are_the_classifiers_on_the_crops(tmp_path, classifier):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), image)
    detector = FakeDetector()
    result = Analyzer(AnalyzeConfig(), detector=detector, classifier=classifier).run(path, tmp_path / "out")
    probs = ResultStore(tmp_path / "out").read(result.video).faces[list(EMOTIONS)].to_numpy()
    expected = classifier.predict(crop_faces(image, detector.detect(image)))
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_frames_without_faces_count_in_the_timeline(tmp_path, classifier):
    video = write_video(tmp_path / "clip.mp4", 30, fps=10)
    analyzer = Analyzer(
        AnalyzeConfig(fps=None), detector=FakeDetector(empty=range(10, 20)), classifier=classifier
    )
    tables = ResultStore(tmp_path).read(analyzer.run(video, tmp_path).video)
    assert tables.timeline["frames"].tolist() == [10, 10, 10]
    assert tables.timeline["faces"].tolist() == [10, 0, 10]
    assert tables.timeline.loc[1, list(EMOTIONS)].isna().all()
    # the face is gone 1.1 s > max_track_gap_s = 1 s: a new track
    assert tables.tracks["frames"].tolist() == [10, 10] and tables.tracks["track"].tolist() == [0, 1]


def test_chunking_does_not_change_the_results(tmp_path, classifier):
    video = write_video(tmp_path / "clip.mp4", 25, fps=10)
    results = []
    for chunk in (3, 32):
        analyzer = Analyzer(
            AnalyzeConfig(fps=None, chunk_frames=chunk), FakeDetector(empty=[4, 5]), classifier
        )
        out = tmp_path / f"out{chunk}"
        results.append(ResultStore(out).read(analyzer.run(video, out).video))
    pd.testing.assert_frame_equal(results[0].faces, results[1].faces)
    pd.testing.assert_frame_equal(results[0].tracks, results[1].tracks)


def test_the_prefetch_thread_gives_the_tables_of_the_stages_in_turn(tmp_path, classifier):
    video = write_video(tmp_path / "clip.mp4", 95, fps=10)
    tables = []
    for ahead in (0, 4):
        config = AnalyzeConfig(fps=None, chunk_frames=8, prefetch_frames=ahead)
        analyzer = Analyzer(config, FakeDetector(empty=[4, 5, 40]), classifier)
        out = tmp_path / f"out{ahead}"
        tables.append(ResultStore(out).read(analyzer.run(video, out).video))
    for name, sequential, threaded in zip(TABLES, *tables, strict=True):
        pd.testing.assert_frame_equal(sequential, threaded, obj=name)


def test_a_detector_error_in_the_prefetch_thread_fails_the_video(tmp_path, classifier):
    class Failing(FakeDetector):
        def detect(self, image, frame_index=0):
            if frame_index == 7:
                raise FervideoError("detector broke")
            return super().detect(image, frame_index)

    video = write_video(tmp_path / "clip.mp4", 20, fps=10)
    analyzer = Analyzer(AnalyzeConfig(fps=None, prefetch_frames=2), Failing(), classifier)
    with pytest.raises(FervideoError, match="detector broke"):
        analyzer.run(video, tmp_path / "out")
    assert not ResultStore(tmp_path / "out").is_done(video_id(video))


def test_memory_does_not_grow_with_the_length_of_the_video(tmp_path, classifier):
    """Frames are not kept: ten times as many frames need about the same peak memory."""
    analyzer = Analyzer(AnalyzeConfig(fps=None), detector=FakeDetector(), classifier=classifier)
    peaks = []
    for n in (100, 1000):
        video = write_video(tmp_path / f"clip{n}.mp4", n, size=(160, 120), fps=25)
        analyzer.run(video, tmp_path / "warm-up", overwrite=True)  # first calls allocate caches
        tracemalloc.start()
        analyzer.run(video, tmp_path / "out")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks  # keeping the frames would take 57 MB more


def test_progress_reaches_the_last_frame(tmp_path, fake_analyzer):
    calls = []
    fake_analyzer.run(
        write_video(tmp_path / "clip.mp4", 12, fps=10), tmp_path, on_progress=lambda *a: calls.append(a)
    )
    # 5 of 10 fps samples frames 0, 2, ..., 10; the last call says all 12 were decoded
    assert calls == [(i + 1, 12) for i in range(0, 12, 2)] + [(12, 12)]


def test_progress_ends_at_the_frames_decoded_when_the_count_was_an_estimate(tmp_path, fake_analyzer):
    calls = []
    video = write_vfr_video(tmp_path / "clip.webm", [0, 40, 80, 500, 540, 1500, 1540, 1580, 3000, 3033])
    fake_analyzer.run(video, tmp_path, on_progress=lambda *a: calls.append(a))
    assert calls[0][1] > 10 and calls[-1] == (10, 10)  # WebM estimates duration x rate


def test_finished_videos_are_skipped_unless_overwrite(tmp_path, fake_analyzer):
    video = write_video(tmp_path / "clip.mp4", 10)
    out = tmp_path / "out"
    fake_analyzer.run(video, out)
    summary = out / "videos" / video_id(video) / "summary.parquet"
    before = summary.stat().st_mtime_ns
    assert fake_analyzer.run(video, out).status == "skipped"
    assert summary.stat().st_mtime_ns == before
    time.sleep(0.01)
    assert fake_analyzer.run(video, out, overwrite=True).status == "done"
    assert summary.stat().st_mtime_ns > before


class FailingDetector(FakeDetector):
    def detect(self, image, frame_index=0):
        if frame_index >= 6:
            raise FervideoError("simulated failure half-way")
        return super().detect(image, frame_index)


def test_a_failure_half_way_leaves_no_files_and_keeps_the_earlier_result(tmp_path, fake_analyzer, classifier):
    video = write_video(tmp_path / "clip.mp4", 10)
    out = tmp_path / "out"
    fake_analyzer.run(video, out)
    before = parquet_files(out)
    failing = Analyzer(AnalyzeConfig(fps=None), detector=FailingDetector(), classifier=classifier)
    with pytest.raises(FervideoError, match="half-way"):
        failing.run(video, out, overwrite=True)
    assert parquet_files(out) == before  # no temporary files either
    other = write_video(tmp_path / "other.mp4", 10)
    with pytest.raises(FervideoError):
        failing.run(other, out)
    assert parquet_files(out) == before


def test_a_finished_video_made_with_other_settings_fails_instead_of_being_skipped(
    tmp_path, fake_analyzer, classifier
):
    video = write_video(tmp_path / "clip.mp4", 10)
    other = write_video(tmp_path / "other.mp4", 10)
    out = tmp_path / "out"
    fake_analyzer.run(video, out)  # 5 fps
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    every_frame = Analyzer(AnalyzeConfig(fps=None), detector=FakeDetector(), classifier=classifier)
    results = analyze_many([video, other], out, analyzer=every_frame)
    assert [r.status for r in results] == ["failed", "done"]
    assert results[0].message == (
        f"{video} was analysed with other settings (sampling 5 fps; this run: sampling every frame); "
        "pass --overwrite to redo it or choose another --out."
    )
    assert {p: p.stat().st_mtime_ns for p in before} == before  # untouched
    assert fake_analyzer.run(video, out).status == "skipped"  # the same settings
    assert every_frame.run(video, out, overwrite=True).status == "done"
    assert read_results(out).summary["sample_fps"].isna().all()


def test_an_output_folder_that_cannot_be_written_fails_each_input_in_one_line(tmp_path, fake_analyzer):
    videos = [write_video(tmp_path / f"clip{i}.mp4", 5) for i in range(2)]
    out = tmp_path / "out"
    out.write_text("a file, not a folder")
    results = analyze_many(videos, out, analyzer=fake_analyzer)
    assert [r.status for r in results] == ["failed", "failed"]
    assert results[0].message == f"{videos[0]}: cannot write {out / '.fervideo' / 'locks'}: Not a directory."


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path, fake_analyzer, monkeypatch):
    """Arrow's own error ("Error writing bytes to file. Detail: [errno 28] ...") is reduced to
    its reason; the faces table is written to /dev/full, where every write fails with ENOSPC."""
    import fervideo.store

    writer = fervideo.store.pq.ParquetWriter
    monkeypatch.setattr(fervideo.store.pq, "ParquetWriter", lambda path, schema: writer("/dev/full", schema))
    video = write_video(tmp_path / "clip.mp4", 5)
    out = tmp_path / "out"
    with pytest.raises(FervideoError) as error:
        fake_analyzer.run(video, out)
    faces = out / "videos" / video_id(video) / "faces.parquet"
    assert str(error.value) == f"{video}: cannot write {faces}: No space left on device."
    assert parquet_files(out) == []


def test_a_failed_rename_is_one_line_and_leaves_no_temporary_files(tmp_path, fake_analyzer, monkeypatch):
    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "rename", full)
    video = write_video(tmp_path / "clip.mp4", 5)
    out = tmp_path / "out"
    results = analyze_many([video], out, analyzer=fake_analyzer)
    assert results[0].status == "failed"
    assert results[0].message == (
        f"{video}: cannot write {out / 'videos' / video_id(video)}: No space left on device."
    )
    assert parquet_files(out) == []


class RecordingCapture:
    """Wraps a `cv2.VideoCapture` and records whether it was released."""

    released: ClassVar[list[bool]] = []

    def __init__(self, capture):
        self._capture = capture
        self.released.append(False)

    def __getattr__(self, name):
        return getattr(self._capture, name)

    def release(self):
        self.released[-1] = True
        self._capture.release()


@pytest.mark.parametrize("stage", ["detect", "write"])
def test_the_video_is_closed_as_soon_as_its_analysis_fails(tmp_path, classifier, monkeypatch, stage):
    """Not at garbage collection: the traceback, kept here, holds the frames of the generators
    that raised (and so their local variables)."""
    import fervideo.decode
    import fervideo.pipeline

    opened = fervideo.decode._open
    monkeypatch.setattr(fervideo.decode, "_open", lambda path: RecordingCapture(opened(path)))
    RecordingCapture.released = []
    if stage == "write":

        def refuse(*args):
            raise FervideoError("simulated write failure")

        monkeypatch.setattr(fervideo.pipeline, "faces_batch", refuse)
    detector = FailingDetector() if stage == "detect" else FakeDetector()
    analyzer = Analyzer(AnalyzeConfig(fps=None, chunk_frames=2), detector=detector, classifier=classifier)
    with pytest.raises(FervideoError) as error:
        analyzer.run(write_video(tmp_path / "clip.mp4", 10), tmp_path / "out")
    assert error.traceback  # still alive
    assert RecordingCapture.released == [True, True]  # probe's and the decoder's


def test_the_python_api_without_an_output_folder(tmp_path, bundled, monkeypatch):
    video = write_video(tmp_path / "clip.mp4", 10, fps=10)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # where the tables go for a while
    faces, timeline, _, summary = analyze(video, fps=2.0)  # yunet finds no face in grey frames
    assert len(faces) == 0 and list(faces.columns)[:4] == ["video", "frame", "timestamp", "track"]
    assert timeline["frames"].tolist() == [2] and summary["model"].tolist() == [DEFAULT_MODEL]
    assert summary["sample_fps"].tolist() == [2.0]
    assert parquet_files(tmp_path) == ["clip.mp4"]
    assert list(temp.iterdir()) == []


def test_expand_inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    for name in ("b.mp4", "a.JPG", "sub/c.mov", "notes.txt", ".hidden/d.mp4", ".e.mp4"):
        (folder / name).write_bytes(b"")
    empty = tmp_path / "empty"
    empty.mkdir()
    single = tmp_path / "x.txt"
    assert expand_inputs([folder, single, empty, folder / "b.mp4"]) == [
        folder / "a.JPG",
        folder / "b.mp4",
        folder / "sub" / "c.mov",
        single,
        empty,
    ]


def test_bad_inputs_are_reported_and_never_stop_the_batch(tmp_path, classifier, example_video):
    good = tmp_path / "good.mp4"
    good.write_bytes(example_video.read_bytes())
    no_faces = write_video(tmp_path / "grey.mp4", 10)
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("hello")
    data = write_vfr_video(tmp_path / "full.mp4", range(0, 4000, 40), faststart=True).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    (tmp_path / "full.mp4").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    inputs = [tmp_path / "missing.mp4", not_video, truncated, empty, no_faces, good]
    seen = []
    analyzer = Analyzer(AnalyzeConfig(), classifier=classifier)
    results = analyze_many(inputs, tmp_path / "out", on_result=seen.append, analyzer=analyzer)
    assert seen == results
    assert [r.status for r in results] == ["failed", "failed", "done", "failed", "done", "done"]
    assert [r.complete for r in results] == [True, True, False, True, True, True]
    messages = [r.message for r in results[:4]]
    for message, expected in zip(
        messages,
        [
            "does not exist",
            "not a video",
            "is truncated or damaged: decoding stopped at",
            "folder with no video",
        ],
        strict=True,
    ):
        assert expected in message and "\n" not in message
    store = ResultStore(tmp_path / "out")
    grey = store.read(video_id(no_faces))
    assert len(grey.faces) == 0 and grey.summary["faces"].tolist() == [0]
    assert store.read(video_id(good)).summary["faces"].item() == 20  # 4 s at 5 fps, one face each
    cut = store.read(video_id(truncated)).summary.iloc[0]  # what decoded, flagged incomplete
    assert not cut["complete"] and cut["frames_decoded"] < cut["frames"] == 100
    assert parquet_files(tmp_path / "out") == sorted(
        f"videos/{video_id(p)}/{t}.parquet" for t in TABLES for p in (no_faces, good, truncated)
    )


def test_same_file_names_in_different_folders_do_not_collide(tmp_path, fake_analyzer):
    first = write_video((tmp_path / "a").mkdir() or tmp_path / "a" / "clip.mp4", 5)
    second = write_video((tmp_path / "b").mkdir() or tmp_path / "b" / "clip.mp4", 8)
    results = analyze_many([tmp_path / "a", tmp_path / "b"], tmp_path / "out", analyzer=fake_analyzer)
    assert len({r.video for r in results}) == 2 and all(r.video.startswith("clip-") for r in results)
    summary = read_results(tmp_path / "out").summary.set_index("path")
    assert summary.loc[[str(first), str(second)], "frames"].tolist() == [5, 8]


def test_a_still_with_two_people_reports_both_faces(media, classifier):
    tables = analyze(media / "two_people.jpg", model=classifier.info.path)
    assert len(tables.faces) == 2 and tables.faces["track"].tolist() == [0, 1]
    assert tables.summary[["frames_analysed", "faces", "duration"]].iloc[0].tolist() == [1, 2, 0.0]


def test_real_clip_at_the_default_sampling(media, classifier, tmp_path):
    path = media / "woman.mp4"
    analyzer = Analyzer(AnalyzeConfig(), classifier=classifier)
    tables = ResultStore(tmp_path).read(analyzer.run(path, tmp_path).video)
    frames = tables.timeline["frames"].sum()
    assert frames == tables.summary["frames_analysed"].item() == 78  # 15.5 s at 5 fps
    assert tables.faces["frame"].nunique() >= 0.95 * frames
    times = tables.faces.drop_duplicates("frame")["timestamp"].to_numpy()
    assert np.all(np.diff(times) > 0)
    container = np.array(container_times(path))
    np.testing.assert_allclose(times, container[tables.faces.drop_duplicates("frame")["frame"]], atol=1e-6)
    assert set(EMOTIONS) <= set(tables.faces.columns)
    np.testing.assert_allclose(tables.faces[list(EMOTIONS)].sum(axis=1), 1, atol=1e-5)
    assert tables.tracks["frames"].max() >= 0.9 * frames  # one person, one track


def test_retinaface_and_keras_models_share_a_process(tmp_path, classifier):
    pytest.importorskip(
        "retinaface", reason="the retinaface extra is not installed: pip install -e '.[retinaface]'"
    )
    weights = write_fake_retinaface(tmp_path / "retinaface.onnx")
    image = np.zeros((256, 256, 3), np.uint8)
    image[80:88, 96:104] = 255
    cv2.imwrite(str(tmp_path / "still.png"), image)
    tables = analyze(
        tmp_path / "still.png",
        detector="retinaface",
        retinaface_weights=weights,
        model=classifier.info.path,
        min_face=16,  # the fake network's blob at full size
    )
    assert tables.faces[["x", "y", "w", "h"]].iloc[0].tolist() == [72, 56, 63, 63]
    assert tables.summary["detector"].item().startswith("retinaface (retina-face")
    assert "TF_USE_LEGACY_KERAS" not in os.environ


RUN_CLI = [sys.executable, "-m", "fervideo", "analyze", "--every-frame", "--quiet"]


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (an orphan's zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_resume_after_a_killed_run(tmp_path, tiny_model):
    """Kill the command (SIGKILL) while it works on the second of two videos: the first stays
    finished and is skipped by the re-run, nothing of the second is visible, and the re-run
    completes it."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    first = write_video(inputs / "a.mp4", 5, size=(64, 48))
    second = write_video(inputs / "b.mp4", 200, size=(640, 480), fps=30)
    out = tmp_path / "out"
    command = [*RUN_CLI, "--model", str(tiny_model), "--out", str(out), "--workers", "2", str(inputs)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
    done_marker = out / "videos" / video_id(first) / "summary.parquet"
    second_faces = out / ".fervideo" / "staging"
    deadline = time.monotonic() + 120
    # the first video is finished (each has its worker) and the second's faces table is being
    # written: the kill lands in the middle of it
    while (
        not (done_marker.exists() and list(second_faces.glob(f"{video_id(second)}~*/faces.parquet")))
        and process.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be killed"
    workers = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert workers  # the folder's two videos went to worker processes
    process.send_signal(signal.SIGKILL)
    process.wait()
    # the workers end with their driver instead of waiting for its next task for ever
    deadline = time.monotonic() + 10
    while any(_running(int(pid)) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(int(pid)) for pid in workers)
    finished = out / "videos" / video_id(second)
    assert done_marker.exists() and not finished.exists()
    first_mtime = done_marker.stat().st_mtime_ns
    assert read_results(out).summary["video"].tolist() == [video_id(first)]

    rerun = subprocess.run(command, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert done_marker.stat().st_mtime_ns == first_mtime
    assert sorted(read_results(out).summary["video"]) == sorted([video_id(first), video_id(second)])
    assert list(second_faces.iterdir()) == []  # the killed run's staging folder is gone
