import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fervideo.cli import app
from fervideo.config import ReportConfig
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError, SettingError
from fervideo.report import read_audience, write_report
from fervideo.report.audience import SCHEMA, video_groups
from fervideo.report.data import VideoView
from fervideo.store import ResultStore
from fervideo.tables import SHARES
from fervideo.testing import write_tables
from tests.helpers import one_hot, synthetic_faces

runner = CliRunner()


def mixed(**probs: float) -> list[float]:
    """Probabilities given by name; the rest share what is left."""
    rest = (1 - sum(probs.values())) / (len(EMOTIONS) - len(probs))
    return [probs.get(e, rest) for e in EMOTIONS]


def recording(out: Path, path: Path, rows, seconds: float, fps: float = 2.0) -> str:
    """Tables of a recording analysed at `fps` for `seconds`, with faces given as
    (time, track, probabilities) rows."""
    faces, times = synthetic_faces(rows, fps)
    frame_times = np.arange(0, seconds, 1 / fps)
    return write_tables(out, path, faces, times, frame_times, fps=fps, size=(96, 64), sample_fps=fps)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A folder of folders of recordings, analysed at 2 frames per second:

    ad1/a.mp4 (3 s): second 0 happy, happy; second 1 happy 0.6 / sad 0.4 then happy 0.2 /
        sad 0.8 (mean: sad 0.6 > happy 0.4, though each class tops one face); second 2 no face.
    ad1/b.mp4 (3 s): second 0 neutral; second 1 sad; second 2 happy.
    ad1/c.mp4 (2 s): second 0 happy; second 1 no face.
    ad2/d.mp4, ad2/e.mp4 (1 s): surprise.
    """
    out = tmp_path / "out"
    ad1, ad2 = tmp_path / "study" / "ad1", tmp_path / "study" / "ad2"
    happy, sad, neutral, surprise = (one_hot(e) for e in ("happy", "sad", "neutral", "surprise"))
    recording(
        out,
        ad1 / "a.mp4",
        [
            (0.0, 0, happy),
            (0.5, 0, happy),
            (1.0, 0, mixed(happy=0.6, sad=0.4)),
            (1.5, 0, mixed(happy=0.2, sad=0.8)),
        ],
        3,
    )
    recording(out, ad1 / "b.mp4", [(0.0, 0, neutral), (1.0, 0, sad), (2.5, 0, happy)], 3)
    recording(out, ad1 / "c.mp4", [(0.5, 0, happy)], 2)
    recording(out, ad2 / "d.mp4", [(0.0, 0, surprise)], 1)
    recording(out, ad2 / "e.mp4", [(0.5, 0, surprise)], 1)
    return out


def test_audience_table_matches_counts_made_by_hand(study: Path):
    write_report(study)
    table = pq.read_table(study / "audience" / "ad1.parquet")
    assert table.schema.equals(SCHEMA)
    got = table.to_pandas()
    # second 0: a happy, b neutral, c happy; second 1: a sad, b sad (c has no face);
    # second 2: b happy (a has no face, c has ended).
    expected = pd.DataFrame(
        {"group": "ad1", "second": [0, 1, 2], "recordings": [3, 3, 2], "viewers": [3, 2, 1]}
    )
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    shares = {e: got[f"{e}_share"].to_numpy() for e in EMOTIONS}
    np.testing.assert_allclose(shares["happy"], [2 / 3, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(shares["neutral"], [1 / 3, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(shares["sad"], [0, 1, 0], rtol=1e-6)
    for e in ("angry", "disgust", "fear", "surprise"):
        np.testing.assert_array_equal(shares[e], [0, 0, 0])
    ad2 = pq.read_table(study / "audience" / "ad2.parquet").to_pandas()
    assert ad2[["second", "recordings", "viewers", "surprise_share"]].values.tolist() == [[0, 2, 2, 1.0]]
    assert sorted(read_audience(study)["group"].unique()) == ["ad1", "ad2"]
    assert sorted(p.name for p in (study / "audience").iterdir()) == ["ad1.parquet", "ad2.parquet"]


def test_seconds_without_viewers_have_null_shares(tmp_path: Path):
    out = tmp_path / "out"
    for name in ("a", "b"):
        recording(out, tmp_path / "ad" / f"{name}.mp4", [(0.0, 0, one_hot("fear"))], 2)
    write_report(out, config=ReportConfig(groups="folders"))
    table = read_audience(out)
    assert table["viewers"].tolist() == [2, 0]
    assert table.loc[1, list(SHARES)].isna().all() and table.loc[0, "fear_share"] == 1.0


@pytest.mark.parametrize(
    ("layout", "rule", "expected"),
    [
        (["s/ad1/a.mp4", "s/ad1/b.mp4", "s/ad2/c.mp4", "s/ad2/d.mp4"], "auto", {"ad1": 2, "ad2": 2}),
        (["ads/a.mp4", "ads/b.mp4", "ads/c.mp4"], "auto", {}),  # a flat folder of ads
        (["s/ad1/a.mp4", "s/ad1/b.mp4", "s/ad2/c.mp4"], "auto", {}),  # ad2 has one recording
        (["x/ad1/a.mp4", "x/ad1/b.mp4", "y/ad2/c.mp4", "y/ad2/d.mp4"], "auto", {}),  # two roots
        (["ads/a.mp4", "ads/b.mp4"], "folders", {"ads": 2}),
        (["s/ad1/a.mp4", "s/ad1/b.mp4", "s/ad2/c.mp4", "s/ad2/d.mp4"], "none", {}),
    ],
)
def test_grouping_rules(layout, rule, expected):
    groups = video_groups({f"v{i}": f"/data/{p}" for i, p in enumerate(layout)}, rule)
    assert {name: len(videos) for name, videos in groups.items()} == expected


def test_groups_of_folders_with_the_same_name_get_distinct_names():
    groups = video_groups({"a": "/x/ad/a.mp4", "b": "/y/ad/b.mp4", "c": "/y/ad b/c.mp4"}, "folders")
    names = sorted(groups)
    assert len(names) == 3 and "ad_b" in names
    assert all(re.fullmatch(r"ad-[0-9a-f]{8}", n) for n in names if n != "ad_b")


def test_a_bad_grouping_is_a_setting_error():
    with pytest.raises(SettingError, match=r"ReportConfig\.groups"):
        ReportConfig(groups="ads")


def test_video_figures_by_hand(study: Path):
    store = ResultStore(study)
    [video] = [v for v in store.finished() if v.startswith("b-")]
    view = VideoView.of(store.read(video), ReportConfig(edge_seconds=1))
    whole, opening, ending = view.windows
    assert whole.shares[["neutral", "sad", "happy"]].tolist() == pytest.approx([1 / 3] * 3)
    assert opening.shares["neutral"] == 1 and ending.shares["happy"] == 1
    assert whole.on_screen == pytest.approx(3 / 6)  # 3 faces over 6 analysed frames
    assert view.timeline["on_screen"].tolist() == [0.5, 0.5, 0.5]
    moments = {m.emotion: (m.second, m.share, len(m.faces)) for m in view.moments}
    assert moments == {"sad": (1, 1.0, 1), "happy": (2, 1.0, 1), "neutral": (0, 1.0, 1)}


def test_report_of_a_pipeline_folder_of_folders(ads_analysed: Path, tmp_path: Path):
    page = write_report(ads_analysed, tmp_path / "site" / "ads.html")
    text = page.read_text()
    files = page.parent / "ads_files" / "charts"
    store = ResultStore(ads_analysed)
    videos = store.finished()
    assert len(videos) == 4
    for video in videos:
        assert f'id="v-{video}"' in text
        assert (files / f"{video}-timeline.png").is_file() and (files / f"{video}-tracks.png").is_file()
    assert {p.name for p in files.glob("audience-*.png")} == {"audience-ad_a.png", "audience-ad_b.png"}
    assert (files / "compare-1.png").is_file()
    # every chart is in the page, and every video has its thumbnail and face crops
    charts = re.findall(r'<img class="chart"[^>]*src="data:image/png;base64,', text)
    assert len(charts) == 4 * 2 + 2 + 1
    assert len(re.findall(r'<img class="thumb"[^>]*src="data:image/jpeg;base64,', text)) > 4 * 2
    assert "no image" not in text and "No thumbnails" not in text
    assert_self_contained(text)
    assert "expression shown" in text.lower() and "emotion felt" not in text.lower()
    assert len(read_audience(ads_analysed)) == 2 * 2  # two groups of two seconds


def assert_self_contained(text: str) -> None:
    """No script, no external reference, and a policy that forbids loading anything else."""
    assert "<script" not in text.lower()
    references = re.findall(r'(?:src|href)="([^"]*)"', text) + re.findall(r"url\(([^)]*)\)", text)
    assert references and all(not re.match(r"^\s*(https?:|//|ftp:)", r, re.I) for r in references)
    assert "default-src 'none'; img-src data:;" in text


def test_thumbnails_are_left_out_when_the_source_is_gone(study: Path):
    page = write_report(study)  # the study's videos never existed
    text = page.read_text()
    assert text.count("No thumbnails: the source is no longer readable") == 5
    assert text.count('<div class="noimg">no image</div>') == 5


def test_many_videos_get_one_page_each(study: Path):
    page = write_report(study, config=ReportConfig(inline_videos=2, compare_videos=2))
    text = page.read_text()
    videos = ResultStore(study).finished()
    links = re.findall(r'<a href="(report_files/videos/[^"]+\.html)">', text)
    assert len(links) == len(videos)
    for link in links:
        video_page = (page.parent / link).read_text()
        assert_self_contained(video_page)
        assert '<a href="../../report.html">' in video_page
    assert 'id="v-' not in text  # the sections live on their own pages
    charts = page.parent / "report_files" / "charts"
    assert sorted(p.name for p in charts.glob("compare-*.png")) == [
        "compare-1.png",
        "compare-2.png",
        "compare-3.png",
    ]


def test_a_new_report_replaces_the_old_one_whole(study: Path):
    write_report(study, config=ReportConfig(inline_videos=0))
    assert (study / "report_files" / "videos").is_dir()
    write_report(study, config=ReportConfig(groups="none"))
    assert not (study / "report_files" / "videos").exists()
    assert not (study / "audience").exists() or not list((study / "audience").iterdir())
    assert sorted(p.name for p in study.iterdir() if p.name.startswith((".report", "report"))) == [
        "report.html",
        "report_files",
    ]


def test_an_empty_folder_is_one_clear_error(tmp_path: Path):
    with pytest.raises(FervideoError, match="holds no analysed video"):
        write_report(tmp_path)
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path} holds no analysed video; run `fervideo analyze VIDEOS --out {tmp_path}` first."
    ]


def test_report_command(study: Path, tmp_path: Path):
    target = tmp_path / "r" / "ads.html"
    result = runner.invoke(app, ["report", str(study), "--html", str(target), "--groups", "none", "-q"])
    assert result.exit_code == 0, result.output
    assert result.output == "" and target.is_file() and (target.parent / "ads_files" / "charts").is_dir()
    assert "<h2>Audience</h2>" not in target.read_text()
    result = runner.invoke(app, ["report", str(study)])
    assert result.exit_code == 0 and f"report: {study / 'report.html'}" in result.output
    assert "<h2>Audience</h2>" in (study / "report.html").read_text()


def test_a_video_with_damaged_tables_is_left_out(study: Path):
    store = ResultStore(study)
    damaged = store.finished()[0]
    store.path("timeline", damaged).write_bytes(b"not parquet")
    text = write_report(study).read_text()
    assert f"Left out, their tables cannot be read: {damaged}." in text
    assert f'id="v-{damaged}"' not in text and text.count('<section class="video"') == 4
