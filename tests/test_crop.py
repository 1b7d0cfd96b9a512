import math

import cv2
import numpy as np
import pytest

from fervideo.config import CROPS, AnalyzeConfig, CropSettings
from fervideo.core import Faces
from fervideo.crop import crop_faces, eye_angle
from tests.helpers import make_faces


def white_square(side: int, at: tuple[int, int], shape=(600, 800)) -> np.ndarray:
    image = np.zeros((*shape, 3), np.uint8)
    x, y = at
    image[y : y + side, x : x + side] = 255
    return image


def test_no_faces_gives_no_crops():
    crops = crop_faces(np.zeros((20, 20, 3), np.uint8), Faces.empty())
    assert crops.shape == (0, 48, 48) and crops.dtype == np.uint8


@pytest.mark.parametrize("side", [40, 100, 400])  # upsampled, mildly and strongly downsampled
def test_crop_is_the_box_times_side(side):
    image = white_square(side, (150, 100))
    faces = make_faces([[150, 100, 150 + side, 100 + side]])
    crop = crop_faces(image, faces, CropSettings(side=1.25))[0]
    assert crop.shape == (48, 48)
    white = (crop[24] > 127).sum()  # the box is 1 / 1.25 of the crop's width
    assert white == pytest.approx(48 / 1.25, abs=1.5)
    assert crop[24, 24] == 255 and crop[1, 1] == 0 and crop[46, 46] == 0
    np.testing.assert_allclose(crop, crop[::-1, ::-1], atol=2)  # centred: symmetric


def test_the_square_follows_the_longer_side_and_stays_centred():
    image = white_square(100, (300, 200))
    faces = make_faces([[320, 200, 380, 300]])  # 60 wide, 100 high, centred on the square
    crop = crop_faces(image, faces, CropSettings(side=1.0))[0]
    assert (crop[24] > 127).sum() == 48  # the 100 px square fills the 100 px crop


def test_outside_the_frame_is_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_faces(image, make_faces([[0, 0, 40, 40]]), CropSettings(side=1.5))[0]
    assert crop[0, 0] == 0 and crop[47, 47] == 200


def test_colour_becomes_gray():
    image = np.zeros((60, 60, 3), np.uint8)
    image[:, :] = (255, 0, 0)  # pure blue in BGR
    crop = crop_faces(image, make_faces([[10, 10, 50, 50]]), CropSettings(side=1.0))[0]
    assert crop[24, 24] == round(0.114 * 255)


@pytest.mark.parametrize(
    ("eyes", "expected"),
    [
        ([[0, 0], [10, 0]], 0.0),
        ([[0, 0], [10, 10]], 45.0),  # right-hand eye lower: the face leans clockwise
        ([[0, 10], [10, 0]], -45.0),
    ],
)
def test_eye_angle(eyes, expected):
    landmarks = np.array([*eyes, [5, 5], [2, 9], [8, 9]], np.float32)
    assert eye_angle(landmarks) == pytest.approx(expected)


def blob_centres(crop: np.ndarray) -> list[tuple[float, float]]:
    """(x, y) centres of the bright blobs, left to right."""
    count, _, _, centres = cv2.connectedComponentsWithStats((crop > 127).astype(np.uint8))
    return sorted(map(tuple, centres[1:count]))


@pytest.mark.parametrize("tilt", [-30.0, 20.0])
def test_eye_landmarks_turn_the_crop_upright(tilt):
    centre = np.array([200.0, 150.0])
    offset = 30 * np.array([math.cos(math.radians(tilt)), math.sin(math.radians(tilt))])
    eyes = [centre - offset, centre + offset]
    image = np.zeros((300, 400, 3), np.uint8)
    for eye in eyes:
        cv2.circle(image, tuple(int(v) for v in np.round(eye)), 6, (255, 255, 255), -1)
    box = [[centre[0] - 50, centre[1] - 50, centre[0] + 50, centre[1] + 50]]
    landmarks = np.array(
        [[*eyes, centre, centre + np.array([-15, 30]), centre + np.array([15, 30])]], np.float32
    )

    upright = crop_faces(image, make_faces(box).with_(landmarks=landmarks))[0]
    (lx, ly), (rx, ry) = blob_centres(upright)
    assert ly == pytest.approx(ry, abs=0.5)
    assert (lx + rx) / 2 == pytest.approx(23.5, abs=0.5) and ly == pytest.approx(23.5, abs=0.5)

    (_, ly), (_, ry) = blob_centres(crop_faces(image, make_faces(box))[0])  # without landmarks
    assert abs(ly - ry) > 5

    not_turned = crop_faces(image, make_faces(box).with_(landmarks=landmarks), CropSettings(upright=False))[0]
    (_, ly), (_, ry) = blob_centres(not_turned)
    assert abs(ly - ry) > 5


def test_shift_moves_the_crop_down_along_the_face():
    image = white_square(10, (195, 145))  # a dot 10 px below the box's centre (200, 140)
    box = [[150, 90, 250, 190]]  # 100 px
    ((x, y),) = blob_centres(crop_faces(image, make_faces(box), CropSettings(side=1.0, shift=0.1))[0])
    assert (x, y) == (pytest.approx(23.5, abs=0.5), pytest.approx(23.5, abs=0.5))
    ((_, y),) = blob_centres(crop_faces(image, make_faces(box), CropSettings(side=1.0))[0])
    assert y == pytest.approx(23.5 + 0.1 * 48, abs=0.5)


def test_the_box_aspect_is_squeezed_when_not_square():
    image = white_square(100, (300, 200))
    faces = make_faces([[320, 200, 380, 300]])  # 60 wide, 100 high
    crop = crop_faces(image, faces, CropSettings(side=1.0, square=False))[0]
    assert (crop > 127).all()  # the box's 60 x 100 px, all white, stretched to 48 x 48


def test_without_antialias_a_large_face_aliases():
    # Pixel noise shrunk 4x: area averaging takes 16 pixels per output pixel (std / 4), the
    # bilinear warp only the 4 nearest (std / 2).
    noise = np.random.default_rng(0).integers(0, 256, (192, 192, 1), np.uint8).repeat(3, axis=2)
    faces = make_faces([[0, 0, 192, 192]])
    smooth = crop_faces(noise, faces, CropSettings(side=1.0))[0]
    aliased = crop_faces(noise, faces, CropSettings(side=1.0, antialias=False))[0]
    assert smooth[4:44, 4:44].std() < 25 and aliased[4:44, 4:44].std() > 30


def test_each_detector_gets_its_calibrated_crop_unless_one_is_set():
    config = AnalyzeConfig()
    assert config.crop_for("yunet", True) == CROPS[("yunet", True)]
    assert config.crop_for("yunet", False) == CROPS[("yunet", False)]
    assert config.crop_for("someone-elses", False) == CropSettings()
    mine = CropSettings(side=1.1, shift=0.02)
    assert AnalyzeConfig(crop=mine).crop_for("yunet", True) == mine


def test_crop_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match=r"CropSettings\.side must be a number > 0"):
        CropSettings(side=0)
    with pytest.raises(ValueError, match=r"CropSettings\.shift must be a finite number"):
        CropSettings(shift=math.inf)
