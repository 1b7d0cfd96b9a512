from contextlib import ExitStack as DoesNotRaise

import numpy as np
import pytest

from fervideo.core import EMOTIONS, Faces, box_iou
from tests.helpers import make_faces


@pytest.mark.parametrize(
    ("fields", "expectation"),
    [
        ({}, DoesNotRaise()),
        ({"landmarks": np.zeros((2, 5, 2), np.float32)}, DoesNotRaise()),
        ({"probs": np.zeros((2, 7), np.float32), "track_id": np.zeros(2, np.int64)}, DoesNotRaise()),
        ({"crops": np.zeros((2, 48, 48), np.uint8)}, DoesNotRaise()),
        (
            {"xyxy": np.zeros((2, 3), np.float32)},
            pytest.raises(ValueError, match=r"xyxy must have shape \(2, 4\)"),
        ),
        ({"confidence": np.zeros(3, np.float32)}, pytest.raises(ValueError, match="confidence")),
        ({"landmarks": np.zeros((2, 4, 2), np.float32)}, pytest.raises(ValueError, match="landmarks")),
        ({"probs": np.zeros((2, 6), np.float32)}, pytest.raises(ValueError, match="probs")),
        ({"track_id": np.zeros(1, np.int64)}, pytest.raises(ValueError, match="track_id")),
        ({"crops": np.zeros((3, 48, 48), np.uint8)}, pytest.raises(ValueError, match="crops")),
    ],
)
def test_faces_validates_shapes(fields, expectation):
    base = {
        "frame_index": np.zeros(2, np.int64),
        "xyxy": np.zeros((2, 4), np.float32),
        "confidence": np.zeros(2, np.float32),
    }
    with expectation:
        Faces(**{**base, **fields})


def test_faces_indexing_keeps_rows_and_optional_fields():
    faces = make_faces([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], frame_index=[5, 6, 7], track_id=[0, 1, 2])
    assert len(faces[1]) == 1 and faces[1].frame_index.tolist() == [6]
    assert faces[1:].track_id.tolist() == [1, 2]
    assert faces[faces.frame_index > 5].frame_index.tolist() == [6, 7]
    assert faces[[2, 0]].xyxy[:, 0].tolist() == [2, 0]
    assert faces[0].probs is None
    assert faces[np.int64(2)].frame_index.tolist() == [7]  # e.g. from np.flatnonzero
    assert faces[np.intp(0)].track_id.tolist() == [0]


def test_concat_skips_empty_parts_and_drops_fields_missing_in_any_part():
    with_probs = make_faces([[0, 0, 1, 1]], probs=[np.full(7, 1 / 7)])
    without = make_faces([[1, 1, 2, 2]], frame_index=1)
    merged = Faces.concat([with_probs, Faces.empty(), without])
    assert merged.frame_index.tolist() == [0, 1]
    assert merged.probs is None
    assert Faces.concat([with_probs, Faces.empty()]).probs.shape == (1, len(EMOTIONS))
    assert len(Faces.concat([])) == 0


def test_with_replaces_a_field_without_touching_the_original():
    faces = make_faces([[0, 0, 1, 1]])
    tracked = faces.with_(track_id=np.array([4]))
    assert tracked.track_id.tolist() == [4] and faces.track_id is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([[0, 0, 10, 10]], [[0, 0, 10, 10]], [[1.0]]),
        ([[0, 0, 10, 10]], [[5, 0, 15, 10]], [[50 / 150]]),
        ([[0, 0, 10, 10]], [[20, 20, 30, 30]], [[0.0]]),
        ([[0, 0, 10, 10], [0, 0, 0, 0]], [[0, 0, 10, 10]], [[1.0], [0.0]]),
        (np.zeros((0, 4)), [[0, 0, 1, 1]], np.zeros((0, 1))),
    ],
)
def test_box_iou(a, b, expected):
    np.testing.assert_allclose(box_iou(np.array(a), np.array(b)), np.array(expected), atol=1e-6)
