import json
import zipfile

import numpy as np
import pytest

from fervideo.catalog import resolve_model
from fervideo.classify import ExpressionClassifier, gpu_visible, will_convert
from fervideo.config import DEFAULT_MODEL
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError
from fervideo.onnx_export import cached_path


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(1).integers(0, 256, (5, 48, 48), dtype=np.uint8)


@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_probabilities_are_the_models_on_raw_pixels(tiny_model, crops, runtime):
    import keras

    classifier = ExpressionClassifier(tiny_model, runtime=runtime)
    assert classifier.runtime == runtime
    probs = classifier.predict(crops)
    assert probs.shape == (5, len(EMOTIONS)) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-6)
    direct = np.asarray(keras.saving.load_model(tiny_model)(crops[..., None].astype(np.float32)))
    np.testing.assert_allclose(probs, direct, atol=1e-6)


def test_auto_runs_onnx_without_a_gpu_and_tensorflow_with_one(classifier, tiny_model, tmp_path, monkeypatch):
    assert classifier.runtime == "onnx"  # the session fixture, built with the default runtime
    gpus = tmp_path / "gpus"
    (gpus / "0000:01:00.0").mkdir(parents=True)  # as the NVIDIA driver lists a GPU
    monkeypatch.setattr("fervideo.classify.NVIDIA_GPUS", gpus)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert gpu_visible() and ExpressionClassifier(tiny_model).runtime == "keras"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # every GPU hidden
    assert not gpu_visible() and ExpressionClassifier(tiny_model).runtime == "onnx"


def test_an_ensemble_and_a_normalisation_layer_convert_exactly(tmp_path, crops):
    """The frozen conversion keeps `Normalization`'s constants (Keras' own ONNX export turns them
    into extra inputs), and a linked ensemble converts as its averaged graph."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Normalization(mean=120.0, variance=60.0**2)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(7, activation="softmax")(x))
    path = save(model, tmp_path / "normalised.keras")
    onnx, tf = (ExpressionClassifier(path, runtime=r).predict(crops) for r in ("onnx", "keras"))
    np.testing.assert_allclose(onnx, tf, atol=1e-6)


def test_a_model_is_converted_once_and_kept_by_its_checksum(tiny_model, crops, tmp_path, monkeypatch):
    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))
    first = ExpressionClassifier(tiny_model, runtime="onnx")
    (kept,) = (tmp_path / "cache").glob("*.onnx")
    assert kept == cached_path(first.info) and first.info.sha256()[:16] in kept.name

    def no_conversion(model):
        raise AssertionError("converted again")

    monkeypatch.setattr("fervideo.onnx_export.to_onnx", no_conversion)
    again = ExpressionClassifier(tiny_model, runtime="onnx")
    np.testing.assert_array_equal(again.predict(crops), first.predict(crops))


def test_processes_converting_one_model_at_once_convert_it_once(tiny_model, tmp_path, monkeypatch):
    """Workers starting together wait for the first one's conversion (an flock between two
    threads' own descriptors behaves as between two processes)."""
    import threading
    import time

    from fervideo import onnx_export

    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))
    info = resolve_model(tiny_model)
    conversions = []

    def slow(model):
        conversions.append(model)
        time.sleep(0.5)
        return b"converted"

    monkeypatch.setattr(onnx_export, "to_onnx", slow)
    paths = []
    threads = [
        threading.Thread(target=lambda: paths.append(onnx_export.onnx_model(info, lambda i: "keras")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert conversions == ["keras"] and len(set(paths)) == 1 and paths[0].read_bytes() == b"converted"


def test_will_convert_says_whether_a_classifier_converts_first(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert will_convert(tiny_model, "onnx") and will_convert(tiny_model, "auto")
    assert not will_convert(tiny_model, "keras")
    ExpressionClassifier(tiny_model, runtime="onnx")
    assert not will_convert(tiny_model, "onnx")


def test_a_damaged_cached_file_is_converted_again(tiny_model, crops, tmp_path, monkeypatch, classifier):
    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))
    kept = cached_path(classifier.info)
    kept.parent.mkdir()
    kept.write_bytes(b"half a file")
    repaired = ExpressionClassifier(tiny_model, runtime="onnx")
    np.testing.assert_allclose(repaired.predict(crops), classifier.predict(crops), atol=1e-6)
    assert kept.stat().st_size > 1000


def test_a_model_onnx_cannot_run(tiny_model, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FERVIDEO_CACHE", str(tmp_path / "cache"))

    def unconvertible(model):
        raise ValueError("tf2onnx: unsupported op Foo\nand more")

    monkeypatch.setattr("fervideo.onnx_export.to_onnx", unconvertible)
    with pytest.raises(
        FervideoError,
        match=r"cannot run .*tiny.keras with ONNX Runtime \(tf2onnx: "
        r"unsupported op Foo\); use the keras runtime\.$",
    ):
        ExpressionClassifier(tiny_model, runtime="onnx")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with caplog.at_level("WARNING"):
        fallback = ExpressionClassifier(tiny_model, runtime="auto")
    assert fallback.runtime == "keras" and "ONNX Runtime cannot" in caplog.text
    assert not list((tmp_path / "cache").glob("*.onnx"))


def test_unknown_runtime(tiny_model):
    with pytest.raises(FervideoError, match="unknown runtime 'torch'"):
        ExpressionClassifier(tiny_model, runtime="torch")


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


def test_the_keras_runtime_takes_its_thread_count(tiny_model):
    """Set before the model loads (a fresh process): once TensorFlow has run, it keeps its pools."""
    import subprocess
    import sys

    code = (
        "from fervideo.classify import ExpressionClassifier\n"
        f"ExpressionClassifier({str(tiny_model)!r}, runtime='keras', threads=1)\n"
        "import tensorflow as tf\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split()[-1] == "1"


def test_a_model_file_is_hashed_once_until_it_changes(tiny_model, tmp_path):
    """Provenance, the ONNX cache key and an ensemble's member check all ask for the checksum."""
    import hashlib

    from fervideo.catalog import _file_sha256

    path = tmp_path / "model.keras"
    path.write_bytes(tiny_model.read_bytes())
    first = resolve_model(path).sha256()
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    hits = _file_sha256.cache_info().hits
    assert resolve_model(path).sha256() == first and _file_sha256.cache_info().hits == hits + 1
    path.write_bytes(path.read_bytes() + b"\0")  # another size: hashed again
    assert resolve_model(path).sha256() == hashlib.sha256(path.read_bytes()).hexdigest() != first
