from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fervideo.annotation import annotate
from fervideo.cli import app
from fervideo.config import AnalyzeConfig
from fervideo.errors import FervideoError
from fervideo.pipeline import Analyzer
from fervideo.store import ResultStore
from fervideo.testing import write_tables
from tests.helpers import FakeDetector, one_hot, synthetic_faces, write_clip_with_audio

av = pytest.importorskip("av")
runner = CliRunner()
BOX = (20, 10, 60, 50)  # x0, y0, x1, y1 in the 96x64 clip


def decoded(path: Path) -> tuple[list[np.ndarray], object, dict]:
    """Every video frame (BGR), the video's average rate, and the audio stream's codec,
    samples and dominant frequency (Hz), as PyAV decodes them."""
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    audio = {}
    with av.open(str(path)) as container:
        if container.streams.audio:
            stream = container.streams.audio[0]
            samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
            spectrum = np.abs(np.fft.rfft(samples))
            peak = np.fft.rfftfreq(len(samples), 1 / stream.rate)[spectrum.argmax()]
            audio = {
                "codec": stream.codec_context.name,
                "samples": len(samples),
                "rate": stream.rate,
                "peak": peak,
            }
    return frames, rate, audio


def box_edge(image: np.ndarray) -> np.ndarray:
    """The pixels of the box's left edge (x 20-21, y 20-45)."""
    return image[20:45, BOX[0] : BOX[0] + 2].astype(np.int16)


def clip_tables(clip: Path, out: Path, sample_fps: float | None) -> None:
    """Tables of the 12-frame, 10 fps clip: faces at `BOX` on every analysed frame but frame 6."""
    step = 2 if sample_fps else 1
    frames = [i for i in range(0, 12, step) if i != 6]
    faces, times = synthetic_faces([(i / 10, 0, one_hot("happy")) for i in frames], fps=10, box=BOX)
    analysed = np.arange(0, 12, step) / 10
    write_tables(out, clip, faces, times, analysed, fps=10, size=(96, 64), sample_fps=sample_fps)


@pytest.mark.parametrize(
    ("container", "audio_codec", "sample_fps", "boxed"),
    [
        # analysed at 5 fps: a face holds over the next frame; frame 6 (sampled, no face) and 7 show none
        ("mp4", "aac", 5.0, [0, 1, 2, 3, 4, 5, 8, 9, 10, 11]),
        ("mkv", "pcm_s16le", None, [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11]),  # every frame: only frame 6 is bare
    ],
)
def test_annotated_clip_keeps_frames_rate_and_audio(tmp_path, container, audio_codec, sample_fps, boxed):
    clip = write_clip_with_audio(tmp_path / f"clip.{container}", audio_codec=audio_codec)
    clip_tables(clip, tmp_path / "out", sample_fps)
    out = annotate(clip, tmp_path / "annotated.mp4", tables=tmp_path / "out")
    source, source_rate, source_audio = decoded(clip)
    frames, rate, audio = decoded(out)
    assert len(frames) == len(source) == 12 and rate == source_rate == 10
    changed = [
        i
        for i, (a, b) in enumerate(zip(frames, source, strict=True))
        if np.abs(box_edge(a) - box_edge(b)).mean() > 30
    ]
    assert changed == boxed
    # the audio is there (copied as AAC, or the PCM re-encoded as AAC) and is still the 440 Hz tone
    assert audio["codec"] == "aac" and audio["rate"] == source_audio["rate"]
    assert abs(audio["samples"] - source_audio["samples"]) <= 0.1 * source_audio["rate"]
    assert audio["peak"] == pytest.approx(440, abs=10)
    assert not list(tmp_path.glob("annotated.tmp*"))


def test_annotate_analyses_the_video_when_there_are_no_tables(tmp_path, classifier):
    clip = write_clip_with_audio(tmp_path / "clip.mp4")
    analyzer = Analyzer(AnalyzeConfig(fps=5.0), detector=FakeDetector(BOX), classifier=classifier)
    stages = set()
    out = annotate(clip, tmp_path / "a.mp4", analyzer=analyzer, on_progress=lambda s, d, t: stages.add(s))
    frames, _, audio = decoded(out)
    source, _, _ = decoded(clip)
    assert len(frames) == 12 and audio["codec"] == "aac" and stages == {"analyse", "draw"}
    assert all(np.abs(box_edge(a) - box_edge(b)).mean() > 30 for a, b in zip(frames, source, strict=True))


def test_tables_of_another_video_are_one_clear_error(tmp_path):
    clip = write_clip_with_audio(tmp_path / "clip.mp4")
    (tmp_path / "out").mkdir()
    with pytest.raises(FervideoError, match="holds no tables of"):
        annotate(clip, tmp_path / "a.mp4", tables=tmp_path / "out")
    result = runner.invoke(
        app, ["annotate", str(clip), "--tables", str(tmp_path / "out"), "-o", str(tmp_path / "a.mp4")]
    )
    assert (
        result.exit_code == 1 and result.output.startswith("error: ") and len(result.output.splitlines()) == 1
    )
    assert not (tmp_path / "a.mp4").exists()


def test_tables_of_other_frame_sizes_are_refused(tmp_path):
    clip = write_clip_with_audio(tmp_path / "clip.mp4")
    faces, times = synthetic_faces([(0.0, 0, one_hot("sad"))], fps=10, box=BOX)
    write_tables(tmp_path / "out", clip, faces, times, [0.0], fps=10, size=(640, 480), sample_fps=5.0)
    with pytest.raises(FervideoError, match="describe another video"):
        annotate(clip, tmp_path / "a.mp4", tables=tmp_path / "out")
    assert not list(tmp_path.glob("a*.mp4"))


def test_annotate_command(tmp_path, monkeypatch):
    clip = write_clip_with_audio(tmp_path / "clip.mp4")
    clip_tables(clip, tmp_path / "out", 5.0)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["annotate", str(clip), "--tables", "out"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("annotated video: clip-annotated.mp4")
    assert len(decoded(tmp_path / "clip-annotated.mp4")[0]) == 12


def test_annotated_real_clip(media: Path, tmp_path: Path, classifier):
    """woman.mp4 (no audio track): every frame kept at 29.97 fps, the face boxed where found."""
    analyzer = Analyzer(AnalyzeConfig(fps=2.0), classifier=classifier)
    video = analyzer.run(media / "woman.mp4", tmp_path / "out").video
    faces = ResultStore(tmp_path / "out").read(video).faces
    out = annotate(media / "woman.mp4", tmp_path / "woman.mp4", tables=tmp_path / "out")
    frames, rate, audio = decoded(out)
    source, _, _ = decoded(media / "woman.mp4")
    assert len(frames) == len(source) == 464 and rate == pytest.approx(29.97, abs=0.01) and not audio
    assert len(faces) >= 25  # one face on (nearly) every analysed frame
    for face in faces.itertuples():
        x, y0, y1 = round(face.x), round(face.y + 0.3 * face.h), round(face.y + 0.7 * face.h)
        edge = (slice(y0, y1), slice(x, x + 2))
        assert np.abs(frames[face.frame][edge].astype(int) - source[face.frame][edge]).mean() > 30


def test_annotate_detects_as_analyze_does(tmp_path, monkeypatch):
    configs = []

    def recording_analyzer(config):
        configs.append(config)
        raise FervideoError("recorded")

    monkeypatch.setattr("fervideo.pipeline.Analyzer", recording_analyzer)
    clip = write_clip_with_audio(tmp_path / "clip.mp4")
    args = ["annotate", str(clip), "--min-face", "40", "--min-score", "0.7", "--every-frame"]
    assert runner.invoke(app, args).output == "error: recorded\n"
    assert configs == [AnalyzeConfig(fps=None, min_face=40, min_score=0.7)]
    assert runner.invoke(app, ["annotate", str(clip), "--min-score", "2"]).exit_code == 2
