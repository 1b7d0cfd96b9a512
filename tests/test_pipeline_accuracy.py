"""The video pipeline keeps the model's accuracy: FER2013 PublicTest faces rendered into a video
and run through `fervideo.analyze` are found, and classified as the model classifies the images
themselves (benchmarks/PIPELINE.md has the full-size figures)."""

from __future__ import annotations

import numpy as np
import pytest

import fervideo
from fervideo.classify import ExpressionClassifier
from fervideo.config import AnalyzeConfig, CropSettings
from fervideo.core import EMOTIONS, Faces
from fervideo.detect import YuNetDetector
from tests.test_scripts import load_script

renders = load_script("benchmarks/renders.py")
pytestmark = pytest.mark.skipif(
    not renders.ARCHIVE.is_file(), reason=f"needs FER2013 PublicTest in {renders.ARCHIVE}"
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    test = renders.public_test()
    images = np.random.default_rng(3).choice(len(test), 120, replace=False)
    render = renders.render(
        test, (144,), images, seed=3, backgrounds=("flat", "noise"), degradations=(("none", 1.0),)
    )
    video = renders.write_video(render.frames, tmp_path_factory.mktemp("render") / "faces.avi")
    direct = ExpressionClassifier("default").predict(test.x[images, :, :, 0])
    by_image = dict(zip(images.tolist(), direct.argmax(1).tolist(), strict=True))
    return render, video, np.array([by_image[f.image] for f in render.faces])


def analysed(render, video, crop: CropSettings | None):
    # Every frame, full size: the detector scale of --min-face is measured in PIPELINE.md.
    faces = fervideo.analyze(video, config=AnalyzeConfig(fps=None, crop=crop, min_face=16)).faces
    xyxy = faces[["x", "y", "w", "h"]].to_numpy(np.float32, copy=True)
    xyxy[:, 2:] += xyxy[:, :2]
    index, _ = renders.match(render.faces, faces["frame"].to_numpy(), xyxy)
    top = np.array([EMOTIONS.index(e) for e in faces["emotion"]])
    return faces, index, top


def test_rendered_faces_are_found_and_classified_as_the_model_classifies_the_images(rendered):
    render, video, direct = rendered
    faces, index, top = analysed(render, video, None)
    found = index >= 0
    assert found.mean() >= 0.95
    empty = set(render.empty_frames)
    assert len(empty) >= 5 and not any(int(f) in empty for f in faces["frame"])
    agree = top[index[found]] == direct[found]
    # Measured 80.0% here (and 95.8% found). A detector's box never frames a face exactly as
    # FER2013 did, and the model's top class flips on ambiguous faces when the framing moves: the
    # pasted square itself, cut by the same code, agrees 97% on clean frames, but moved by 1.5% of its
    # side and resized by 4% at random only 87.9% on the renders of benchmarks/CALIBRATION.md.
    assert agree.mean() >= 0.75
    labels = np.array([f.label for f in render.faces])
    pipeline_accuracy = (top[index[found]] == labels[found]).mean()
    assert pipeline_accuracy >= (direct[found] == labels[found]).mean() - 0.03  # measured: equal

    _, old_index, old_top = analysed(render, video, CropSettings(side=1.25))  # the crop before calibration
    old_found = old_index >= 0
    old_agree = (old_top[old_index[old_found]] == direct[old_found]).mean()
    assert old_agree < agree.mean() - 0.10  # measured 62.6%


def test_a_second_look_finds_faces_the_shrunk_frame_blurs_and_nothing_in_empty_frames():
    test = renders.public_test()
    images = np.random.default_rng(5).choice(len(test), 150, replace=False)
    render = renders.render(test, (96,), images, seed=5, empty_share=0.5)

    def found(detector):
        faces = [detector.detect(frame, index) for index, frame in enumerate(render.frames)]
        everything = Faces.concat(faces)
        index, _ = renders.match(render.faces, everything.frame_index, everything.xyxy)
        in_empty = sum(len(faces[f]) for f in render.empty_frames)
        return (index >= 0).mean(), in_empty

    plain, plain_empty = found(YuNetDetector(recheck_score=1.0))  # the default scale: min face 32
    looked, looked_empty = found(YuNetDetector())
    assert len(render.empty_frames) >= 20 and plain_empty == looked_empty == 0
    assert looked >= plain + 0.05  # measured: 65.3% -> 74.0% (PIPELINE.md has the full table)
