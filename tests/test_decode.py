import cv2
import numpy as np
import pytest

from fervideo.decode import probe, read_frames
from fervideo.errors import FervideoError
from tests.helpers import container_times, write_vfr_video, write_video

VFR_MS = [0, 40, 80, 500, 540, 1500, 1540, 1580, 3000, 3033]


def test_probe_reports_container_metadata(tmp_path):
    info = probe(write_video(tmp_path / "clip.mp4", 25, size=(64, 48), fps=10))
    assert (info.width, info.height, info.frame_count) == (64, 48, 25)
    assert info.codec in {"FMP4", "mp4v"}  # FFmpeg's tag for MPEG-4 part 2
    assert info.fps == pytest.approx(10)
    assert info.duration_s == pytest.approx(2.5)
    assert not info.is_still


def test_every_frame_has_its_index_and_container_timestamp(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 12, fps=8)
    frames = list(read_frames(probe(path)))
    assert [f.index for f in frames] == list(range(12))
    np.testing.assert_allclose([f.time_s for f in frames], container_times(path), atol=1e-6)
    assert frames[3].image.shape == (48, 64, 3) and frames[3].image.dtype == np.uint8


def test_variable_frame_rate_timestamps_come_from_the_container(tmp_path):
    path = write_vfr_video(tmp_path / "vfr.mp4", VFR_MS)
    frames = list(read_frames(probe(path)))
    np.testing.assert_allclose([f.time_s for f in frames], np.array(VFR_MS) / 1000, atol=1e-6)


@pytest.mark.parametrize(
    ("fps", "expected_ms"),
    [
        (5.0, [0, 500, 1500, 3000]),  # first frame of each 0.2 s slot that has one
        (1.0, [0, 1500, 3000]),
        (100.0, VFR_MS),  # faster than the source: every frame
        (None, VFR_MS),
    ],
)
def test_sampling_follows_real_time_on_variable_frame_rate(tmp_path, fps, expected_ms):
    path = write_vfr_video(tmp_path / "vfr.mp4", VFR_MS)
    frames = list(read_frames(probe(path), fps=fps))
    assert [round(f.time_s * 1000) for f in frames] == expected_ms
    assert [f.index for f in frames] == [VFR_MS.index(ms) for ms in expected_ms]


def test_a_stream_without_timestamps_is_timed_at_its_nominal_rate(tmp_path):
    import av

    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(8):
            image = np.full((48, 64, 3), i * 30, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    info = probe(path)
    frames = list(read_frames(info))
    assert len(frames) == 8 and info.fps == pytest.approx(25)
    np.testing.assert_allclose([f.time_s for f in frames], np.arange(8) / 25, atol=1e-9)


def test_sampling_a_constant_frame_rate_video(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 30, fps=30)
    assert [f.index for f in read_frames(probe(path), fps=5)] == [0, 6, 12, 18, 24]


def test_a_still_image_is_a_one_frame_video(tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.full((30, 40, 3), 99, np.uint8))
    info = probe(path)
    assert (info.is_still, info.frame_count, info.width, info.height, info.codec) == (True, 1, 40, 30, "png")
    assert info.duration_s == 0 and info.fps == 0
    frames = list(read_frames(info, fps=5))
    assert [(f.index, f.time_s) for f in frames] == [(0, 0.0)]
    assert frames[0].image[0, 0].tolist() == [99, 99, 99]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.mp4", None, "does not exist"),
        ("notes.mp4", b"just some text, not a video\n" * 10, "not a video OpenCV can open"),
        ("notes.txt", b"just some text\n", "not a video OpenCV can open"),
        ("broken.jpg", b"\xff\xd8 not really a jpeg", "not an image OpenCV can decode"),
    ],
)
def test_bad_inputs_raise_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(FervideoError, match=message):
        probe(path)


def test_a_folder_is_not_a_video(tmp_path):
    with pytest.raises(FervideoError, match="is not a file"):
        probe(tmp_path)


def test_a_video_cut_before_its_index_does_not_open(tmp_path):
    data = write_video(tmp_path / "clip.mp4", 40).read_bytes()  # OpenCV writes the index last
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FervideoError, match="corrupt, truncated or not a video"):
        probe(cut)


def _decode(info):
    """Every frame and how decoding ended."""
    frames = read_frames(info)
    decoded = []
    with pytest.raises(StopIteration) as end:
        while True:
            decoded.append(next(frames))
    return decoded, end.value.value


@pytest.mark.parametrize("share", [0.5, 0.97])
def test_a_truncated_mp4_is_decoded_up_to_its_cut_and_reported_incomplete(tmp_path, share):
    """The index is at the front (faststart), so the cut file opens and announces every frame;
    a cut at 97% of the bytes loses the last ~0.1 s."""
    data = write_vfr_video(tmp_path / "clip.mp4", range(0, 4000, 40), faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * share)])
    info = probe(cut)
    assert info.frame_count == 100
    decoded, end = _decode(info)
    assert 0 < len(decoded) == end.frames < 100 and not end.complete
    assert end.last_time_s == decoded[-1].time_s
    assert "is truncated or damaged: decoding stopped at" in end.describe(info)


def test_a_variable_frame_rate_webm_whose_frame_count_is_an_estimate_is_complete(tmp_path):
    info = probe(write_vfr_video(tmp_path / "vfr.webm", VFR_MS))
    assert info.frame_count > 2 * len(VFR_MS)  # duration x nominal rate: Matroska has no count
    decoded, end = _decode(info)
    assert [round(f.time_s * 1000) for f in decoded] == VFR_MS and end.complete


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_a_truncated_webm_is_reported_incomplete(tmp_path, share):
    data = write_vfr_video(tmp_path / "clip.webm", range(0, 4000, 40)).read_bytes()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(data[: int(len(data) * share)])
    decoded, end = _decode(probe(cut))
    assert len(decoded) < 100 and not end.complete


def test_complete_videos_are_complete(tmp_path):
    for path in (
        write_video(tmp_path / "clip.mp4", 12),
        write_vfr_video(tmp_path / "clip.webm", range(0, 400, 40)),
    ):
        assert _decode(probe(path))[1].complete, path


def test_read_frames_returns_the_number_of_frames_decoded(tmp_path):
    frames = read_frames(probe(write_video(tmp_path / "clip.mp4", 12, fps=10)), fps=1)
    with pytest.raises(StopIteration) as end:
        while True:
            next(frames)
    assert end.value.value.frames == 12


def test_an_image_named_like_a_video_is_a_still(tmp_path):
    """FFmpeg opens a JPEG called .mp4 as a 25 fps stream of 0 or 1 frames."""
    path = tmp_path / "photo.mp4"
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "photo.jpg"), image)
    (tmp_path / "photo.jpg").rename(path)
    info = probe(path)
    assert (info.is_still, info.fps, info.frame_count, info.codec, info.width) == (True, 0.0, 1, "jpeg", 60)


def test_a_symlink_loop_is_one_clear_error(tmp_path):
    (tmp_path / "a.mp4").symlink_to(tmp_path / "b.mp4")
    (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")
    with pytest.raises(FervideoError, match=r"a.mp4 cannot be read: Too many levels of symbolic links"):
        probe(tmp_path / "a.mp4")


def test_real_clip_timestamps_increase_and_match_the_container(media):
    path = media / "woman.mp4"
    info = probe(path)
    assert (info.width, info.height, info.frame_count, info.codec) == (596, 336, 464, "h264")
    assert info.fps == pytest.approx(29.97)
    times = [f.time_s for f in read_frames(info)]
    assert np.all(np.diff(times) > 0)
    np.testing.assert_allclose(times, container_times(path), atol=1e-6)
