import json
import zipfile

import numpy as np
import pytest

from fervideo.classify import ExpressionClassifier
from fervideo.config import DEFAULT_MODEL
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)


def test_probabilities_are_the_models_on_raw_pixels(classifier, crops):
    probs = classifier.predict(crops)
    assert probs.shape == (5, len(EMOTIONS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    direct = np.asarray(classifier._model(crops[..., None].astype(np.float32)))
    np.testing.assert_allclose(probs, direct, atol=1e-6)


def test_batch_size_does_not_change_results(tiny_model, classifier, crops):
    small_batches = ExpressionClassifier(tiny_model, batch_size=2)
    np.testing.assert_allclose(small_batches.predict(crops), classifier.predict(crops), atol=1e-6)


def test_tta_averages_with_the_mirrored_crops(tiny_model, classifier, crops):
    tta = ExpressionClassifier(tiny_model, tta="flip").predict(crops)
    expected = (classifier.predict(crops) + classifier.predict(crops[:, :, ::-1])) / 2
    np.testing.assert_allclose(tta, expected, atol=1e-6)
    assert not np.allclose(tta, classifier.predict(crops), atol=1e-4)


def test_crops_tta_averages_ten_views(tiny_model, classifier, crops):
    from fervideo.tta import tta_views

    views = tta_views(crops, "crops")
    assert len(views) == 10 and all(v.shape == crops.shape for v in views)
    expected = np.mean([classifier.predict(v) for v in views], axis=0)
    got = ExpressionClassifier(tiny_model, tta="crops").predict(crops)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_unknown_tta_mode(tiny_model):
    with pytest.raises(FervideoError, match="unknown TTA mode"):
        ExpressionClassifier(tiny_model, tta="rotate")


def test_no_crops_no_probabilities(classifier):
    assert classifier.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, len(EMOTIONS))


def test_bundled_model_resolves_by_name(bundled):
    classifier = ExpressionClassifier("default")
    assert classifier.info.name == DEFAULT_MODEL
    assert classifier.info.path == bundled / DEFAULT_MODEL / "model.keras"


def test_unknown_name_lists_the_models_and_says_how_to_get_it(bundled):
    with pytest.raises(FervideoError, match=rf"no model named 'nothing'; .* Models here: {DEFAULT_MODEL}\."):
        ExpressionClassifier("nothing")
    hint = r"fervideo train --model resnet_imagenet .*--imagenet-weights FILE"
    with pytest.raises(FervideoError, match=hint):
        ExpressionClassifier("resnet_imagenet")
    with pytest.raises(FervideoError, match=r"pip install \./models"):
        ExpressionClassifier("resnet")


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FervideoError, match="does not exist"):
        ExpressionClassifier(tmp_path / "none.keras")
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FervideoError, match=r"broken.keras is not a Keras model file: .* zip archive"):
        ExpressionClassifier(broken)
    other_zip = tmp_path / "other.keras"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme.txt", "a zip, but not a Keras model")
    with pytest.raises(FervideoError, match=r"other.keras is a zip archive but not a Keras model") as error:
        ExpressionClassifier(other_zip)
    assert "\n" not in str(error.value)


def save(model, path):
    model.save(path)
    return path


def test_models_that_break_the_contract_are_refused(tmp_path):
    import keras

    wrong_input = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    with pytest.raises(FervideoError, match=r"needs \(None, 48, 48, 1\) grayscale crops"):
        ExpressionClassifier(save(wrong_input, tmp_path / "input.keras"))
    wrong_output = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(5)])
    with pytest.raises(FervideoError, match=r"to \(None, 7\) probabilities"):
        ExpressionClassifier(save(wrong_output, tmp_path / "output.keras"))
    logits = keras.Sequential([keras.Input((48, 48, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    with pytest.raises(FervideoError, match="does not output probabilities"):
        ExpressionClassifier(save(logits, tmp_path / "logits.keras")).predict(
            np.full((2, 48, 48), 200, np.uint8)
        )


def test_a_model_with_another_label_order_is_refused(tiny_model, tmp_path):
    model = tmp_path / "shuffled.keras"
    model.write_bytes(tiny_model.read_bytes())
    model.with_suffix(".json").write_text(json.dumps({"classes": sorted(EMOTIONS)}))
    with pytest.raises(FervideoError, match="predicts classes"):
        ExpressionClassifier(model)
