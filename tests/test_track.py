import pytest

from fervideo.core import Faces
from fervideo.track import IoUTracker
from tests.helpers import make_faces

A = [0, 0, 100, 100]
A_MOVED = [10, 5, 110, 105]
B = [300, 0, 400, 100]
FAR = [600, 300, 700, 400]


def ids(tracker: IoUTracker, boxes, time_s: float) -> list[int]:
    faces = make_faces(boxes) if boxes else Faces.empty()
    return tracker.update(faces, time_s).track_id.tolist()


def test_ids_follow_boxes_across_frames_whatever_their_order():
    tracker = IoUTracker()
    assert ids(tracker, [A, B], 0.0) == [0, 1]
    assert ids(tracker, [B, A_MOVED], 0.2) == [1, 0]
    assert ids(tracker, [A_MOVED, B, FAR], 0.4) == [0, 1, 2]


def test_a_face_that_jumps_far_starts_a_new_track():
    tracker = IoUTracker(iou_threshold=0.3)
    assert ids(tracker, [A], 0.0) == [0]
    assert ids(tracker, [FAR], 0.2) == [1]


@pytest.mark.parametrize(("gap_s", "same"), [(0.8, True), (1.0, True), (1.2, False)])
def test_gap_tolerance_in_seconds(gap_s, same):
    tracker = IoUTracker(max_gap_s=1.0)
    ids(tracker, [A], 5.0)
    ids(tracker, [], 5.0 + gap_s / 2)  # frames without faces still advance time
    assert ids(tracker, [A], 5.0 + gap_s) == ([0] if same else [1])


def test_each_track_continues_at_most_one_face_per_frame():
    tracker = IoUTracker(iou_threshold=0.1)
    ids(tracker, [A], 0.0)
    overlapping_more, overlapping_less = [5, 0, 105, 100], [50, 0, 150, 100]
    assert ids(tracker, [overlapping_less, overlapping_more], 0.2) == [1, 0]


def test_reset_starts_over_for_the_next_video():
    tracker = IoUTracker()
    ids(tracker, [A, B], 0.0)
    tracker.reset()
    assert ids(tracker, [A], 0.0) == [0]


def test_update_keeps_the_other_fields():
    faces = make_faces([A], frame_index=12, confidence=[0.7])
    tracked = IoUTracker().update(faces, 0.0)
    assert tracked.frame_index.tolist() == [12] and tracked.confidence.tolist() == pytest.approx([0.7])
