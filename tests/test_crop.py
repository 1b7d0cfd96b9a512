import math

import cv2
import numpy as np
import pytest

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
def test_crop_is_the_box_plus_margin(side):
    image = white_square(side, (150, 100))
    faces = make_faces([[150, 100, 150 + side, 100 + side]])
    crop = crop_faces(image, faces, margin=0.25)[0]
    assert crop.shape == (48, 48)
    white = (crop[24] > 127).sum()  # the box is 1 / 1.25 of the crop's width
    assert white == pytest.approx(48 / 1.25, abs=1.5)
    assert crop[24, 24] == 255 and crop[1, 1] == 0 and crop[46, 46] == 0
    np.testing.assert_allclose(crop, crop[::-1, ::-1], atol=2)  # centred: symmetric


def test_the_square_follows_the_longer_side_and_stays_centred():
    image = white_square(100, (300, 200))
    faces = make_faces([[320, 200, 380, 300]])  # 60 wide, 100 high, centred on the square
    crop = crop_faces(image, faces, margin=0.0)[0]
    assert (crop[24] > 127).sum() == 48  # the 100 px square fills the 100 px crop


def test_outside_the_frame_is_black():
    image = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_faces(image, make_faces([[0, 0, 40, 40]]), margin=0.5)[0]
    assert crop[0, 0] == 0 and crop[47, 47] == 200


def test_colour_becomes_gray():
    image = np.zeros((60, 60, 3), np.uint8)
    image[:, :] = (255, 0, 0)  # pure blue in BGR
    crop = crop_faces(image, make_faces([[10, 10, 50, 50]]), margin=0.0)[0]
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
