"""The report in a real browser: headless Chromium (Debian's `chromium`) opens it from disk with
every host name unresolvable, takes a screenshot and records its network log.

A request the page makes carries the page as its initiator ("null" for a file:// page); the
browser's own background requests (component updates, network time) carry none ("not an
origin"), and are no concern of the report's.
"""

import json
import shutil
import subprocess
from pathlib import Path

import cv2
import pytest

from fervideo.config import AnalyzeConfig
from fervideo.pipeline import Analyzer, analyze_many
from fervideo.report import write_report
from fervideo.store import ResultStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[cv2.typing.MatLike, list[str]]:
    """Screenshot (BGR) of the page at 1280x2000, and the URLs of the requests it made."""
    shot, log = tmp_path / "shot.png", tmp_path / "netlog.json"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--log-net-log={log}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    return cv2.imread(str(shot)), page_requests(json.loads(log.read_text()))


def page_requests(netlog: dict) -> list[str]:
    """URLs of the requests a page initiated, from a Chromium net log."""
    start = netlog["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in netlog["events"]
        if event["type"] == start
        and "url" in event.get("params", {})
        and event["params"].get("initiator") != "not an origin"
    ]


def assert_rendered(image) -> None:
    """Not blank: the screenshot has a real spread of pixel values, and colour (the charts)."""
    assert image is not None and image.shape[:2] == (2000, 1280)
    assert image.std() > 20
    saturation = cv2.cvtColor(image, cv2.COLOR_BGR2HSV)[..., 1]
    assert (saturation > 80).mean() > 0.01


def test_the_network_check_sees_a_request(tmp_path: Path):
    """The check can fail: a page with an image on the web is caught making a request."""
    page = tmp_path / "web.html"
    page.write_text('<html><body><p>hi</p><img src="http://example.invalid/x.png"></body></html>')
    _, requests = open_in_chromium(page, tmp_path)
    assert requests == ["http://example.invalid/x.png"]


def test_report_of_a_folder_of_folders_renders_offline(ads_analysed: Path, tmp_path: Path):
    page = write_report(ads_analysed, tmp_path / "report.html")
    image, requests = open_in_chromium(page, tmp_path)
    assert requests == []
    assert_rendered(image)
    assert "<h2>Audience</h2>" in page.read_text()


def test_report_of_the_shared_media_renders_offline(media: Path, tmp_path: Path, classifier):
    analyzer = Analyzer(AnalyzeConfig(fps=2.0), classifier=classifier)
    results = analyze_many([media], tmp_path / "out", analyzer=analyzer)
    assert {r.status for r in results} == {"done"}
    page = write_report(tmp_path / "out")
    text = page.read_text()
    for video in ResultStore(tmp_path / "out").finished():
        assert f'id="v-{video}"' in text
    assert "no image" not in text  # every source is there: every video has its thumbnail
    image, requests = open_in_chromium(page, tmp_path)
    assert requests == []
    assert_rendered(image)
