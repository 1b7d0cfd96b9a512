from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fervideo.aggregate import Aggregates, faces_batch
from fervideo.core import EMOTIONS
from fervideo.tables import PEAKS, SCHEMAS, SHARES, RunInfo, VideoMeta, read_tables
from tests.helpers import make_faces

CLASSES = list(EMOTIONS)
RUN = RunInfo(
    model="tiny", model_sha256="ab" * 32, detector="fake (fake 0)", sample_fps=5.0, version="9.9", tta="flip"
)


def one_hot(name: str, weight: float = 1.0) -> list[float]:
    """Probabilities with `weight` on `name` and the rest spread evenly."""
    rest = (1 - weight) / (len(EMOTIONS) - 1)
    return [weight if e == name else rest for e in EMOTIONS]


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("faces", ["video", "frame", "timestamp", "track", "x", "y", "w", "h", "score", *CLASSES, "emotion"]),
        ("timeline", ["video", "second", "frames", "faces", *CLASSES, *(f"{c}_share" for c in CLASSES)]),
        ("tracks", ["video", "track", "first_timestamp", "last_timestamp", "frames", *CLASSES, "emotion"]),
        (
            "summary",
            [
                "video",
                "path",
                "duration",
                "fps",
                "width",
                "height",
                "codec",
                "frames",
                "frames_decoded",
                "complete",
                "frames_analysed",
                "faces",
                "tracks",
                *CLASSES,
                "emotion",
                *(f"{c}_peak" for c in CLASSES),
                "model",
                "model_sha256",
                "detector",
                "sample_fps",
                "tta",
                "fervideo_version",
            ],
        ),
    ],
)
def test_table_columns(table, columns):
    assert SCHEMAS[table].names == columns


def test_column_types():
    faces = SCHEMAS["faces"]
    assert faces.field("timestamp").type == pa.float64()
    assert {faces.field(c).type for c in ("frame", "track")} == {pa.int64()}
    assert {faces.field(c).type for c in ("x", "y", "w", "h", "score", *CLASSES)} == {pa.float32()}
    assert faces.field("emotion").type == pa.string()
    assert SCHEMAS["summary"].field("angry_peak").type == pa.int64()


def test_faces_rows():
    faces = make_faces(
        [[10, 20, 50, 80], [100, 100, 130, 140]],
        frame_index=[3, 3],
        confidence=[0.9, 0.7],
        probs=[one_hot("happy", 0.7), one_hot("sad", 0.4)],
        track_id=[0, 1],
    )
    rows = faces_batch("clip-1", faces, np.array([0.1, 0.1])).to_pylist()
    assert rows[0] == {
        "video": "clip-1",
        "frame": 3,
        "timestamp": 0.1,
        "track": 0,
        "x": 10,
        "y": 20,
        "w": 40,
        "h": 60,
        "score": pytest.approx(0.9),
        **{c: pytest.approx(p) for c, p in zip(CLASSES, one_hot("happy", 0.7), strict=True)},
        "emotion": "happy",
    }
    assert rows[1]["emotion"] == "sad" and rows[1]["track"] == 1


@pytest.fixture
def aggregates():
    """Frames at 0.0, 0.5, 1.2 and 3.1 s of a 4 s video: two faces in the first (tracks 0
    and 1), one in the second (track 0), none in the third, one in the last (track 0)."""
    agg = Aggregates()
    agg.add_frames(np.array([0.0, 0.5, 1.2, 3.1]))
    agg.add_faces(
        make_faces(
            [[0, 0, 10, 10], [50, 0, 60, 10], [0, 0, 10, 10], [0, 0, 10, 10]],
            frame_index=[0, 0, 15, 93],
            probs=[one_hot("happy", 0.6), one_hot("sad", 0.5), one_hot("happy", 0.8), one_hot("angry", 0.9)],
            track_id=[0, 1, 0, 0],
        ),
        np.array([0.0, 0.0, 0.5, 3.1]),
    )
    return agg


def test_timeline_has_every_second_even_without_faces(aggregates):
    timeline = aggregates.timeline("v", duration_s=4.0).to_pandas()
    assert timeline["second"].tolist() == [0, 1, 2, 3]
    assert timeline["frames"].tolist() == [2, 1, 0, 1]
    assert timeline["faces"].tolist() == [3, 0, 0, 1]
    second0 = timeline.iloc[0]
    assert second0["happy"] == pytest.approx((0.6 + 0.8 + one_hot("sad", 0.5)[3]) / 3)
    assert second0["happy_share"] == pytest.approx(2 / 3) and second0["sad_share"] == pytest.approx(1 / 3)
    assert timeline.loc[1:2, [*CLASSES, *SHARES]].isna().all().all()
    assert timeline.iloc[3]["angry_share"] == 1


def test_timeline_covers_frames_past_the_announced_duration(aggregates):
    assert len(aggregates.timeline("v", duration_s=2.0)) == 4


def test_tracks(aggregates):
    tracks = aggregates.tracks("v").to_pandas().set_index("track")
    assert tracks.loc[0, ["first_timestamp", "last_timestamp", "frames"]].tolist() == [0.0, 3.1, 3]
    assert tracks.loc[0, "happy"] == pytest.approx((0.6 + 0.8 + one_hot("angry", 0.9)[3]) / 3)
    assert tracks.loc[0, "emotion"] == "happy" and tracks.loc[1, "emotion"] == "sad"
    assert tracks.loc[1, "frames"] == 1


def test_summary(aggregates):
    meta = VideoMeta("v", "/x/v.mp4", 4.0, 25.0, 640, 480, "h264", 100, 97, False)
    row = aggregates.summary(meta, RUN).to_pylist()[0]
    assert (row["frames"], row["frames_analysed"], row["faces"], row["tracks"]) == (100, 4, 4, 2)
    assert (row["frames_decoded"], row["complete"]) == (97, False)
    assert row["happy"] == pytest.approx((0.6 + 0.8 + one_hot("sad", 0.5)[3] + one_hot("angry", 0.9)[3]) / 4)
    assert row["emotion"] == "happy"
    assert (row["happy_peak"], row["angry_peak"], row["sad_peak"], row["fear_peak"]) == (0, 3, 0, None)
    assert (row["model"], row["detector"], row["sample_fps"], row["tta"], row["fervideo_version"]) == (
        "tiny",
        "fake (fake 0)",
        5.0,
        "flip",
        "9.9",
    )


def test_a_video_without_faces_gives_valid_empty_tables():
    agg = Aggregates()
    agg.add_frames(np.array([0.0, 0.4, 1.5]))
    timeline = agg.timeline("v", 2.0).to_pandas()
    assert timeline["faces"].tolist() == [0, 0] and timeline[CLASSES].isna().all().all()
    tracks = agg.tracks("v")
    assert tracks.num_rows == 0 and tracks.schema == SCHEMAS["tracks"]
    row = agg.summary(VideoMeta("v", "/v.mp4", 2.0, 10.0, 8, 8, "h264", 20, 20, True), RUN).to_pylist()[0]
    assert row["faces"] == 0 and row["emotion"] is None
    assert all(row[p] is None for p in PEAKS) and all(row[c] is None for c in CLASSES)


def test_parquet_metadata_records_the_run(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(SCHEMAS["tracks"].empty_table().replace_schema_metadata(RUN.metadata()), path)
    metadata = pq.read_schema(path).metadata
    assert {k.decode(): v.decode() for k, v in metadata.items()} == {
        "fervideo.model": "tiny",
        "fervideo.model_sha256": "ab" * 32,
        "fervideo.detector": "fake (fake 0)",
        "fervideo.sampling": "5 fps",
        "fervideo.tta": "flip",
        "fervideo.version": "9.9",
    }
    assert RunInfo("m", "s", "d", None, "1", "none").metadata()["fervideo.sampling"] == "every frame"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"model": "renamed", "version": "10.0"}, []),  # the same weights, a newer fervideo
        ({"model_sha256": "cd" * 32}, [("model", "tiny (sha256 cdcdcdcd)", "tiny (sha256 abababab)")]),
        ({"detector": "yunet (yuface 1)"}, [("detector", "yunet (yuface 1)", "fake (fake 0)")]),
        ({"sample_fps": None}, [("sampling", "every frame", "5 fps")]),
        ({"sample_fps": 2.0, "tta": "none"}, [("sampling", "2 fps", "5 fps"), ("TTA", "none", "flip")]),
    ],
)
def test_differences_in_the_settings_that_change_results(changes, expected):
    other = replace(RUN, **changes)
    assert RUN.differences(other.metadata()) == expected


def test_a_setting_that_was_not_recorded_counts_as_different():
    older = {k: v for k, v in RUN.metadata().items() if k != "fervideo.tta"}
    assert RUN.differences(older) == [("TTA", "not recorded", "flip")]


def test_read_tables_keeps_types_of_empty_tables(tmp_path):
    paths = {}
    for name, schema in SCHEMAS.items():
        paths[name] = tmp_path / f"{name}.parquet"
        pq.write_table(schema.empty_table(), paths[name])
    tables = read_tables(paths)
    assert list(tables.faces.columns) == SCHEMAS["faces"].names
    assert str(tables.faces["frame"].dtype) == "int64" and str(tables.faces["happy"].dtype) == "float32"
