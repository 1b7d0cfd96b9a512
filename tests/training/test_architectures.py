from __future__ import annotations

from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from fervideo.errors import FervideoError
from fervideo.training import architectures
from fervideo.training.architectures import ARCHITECTURES, IMAGENET_NOTOP_FILE, build, imagenet_weights_path


@pytest.mark.parametrize("name", ["custom_cnn", "resnet", "resvgg"])
def test_contract_raw_pixels_in_probabilities_out(name: str):
    model = build(name, mean=120.0, std=60.0)
    assert model.input_shape == (None, 48, 48, 1)
    assert model.output_shape == (None, 7)
    probs = np.asarray(model.predict(np.full((2, 48, 48, 1), 120.0, np.float32), verbose=0))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_normalisation_travels_inside_the_saved_model(tmp_path: Path):
    model = build("resvgg", mean=101.5, std=33.25)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    layer = loaded.get_layer("standardise")
    np.testing.assert_allclose(np.ravel(layer.mean), 101.5)
    np.testing.assert_allclose(np.sqrt(np.ravel(layer.variance)), 33.25, rtol=1e-6)
    x = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), (x - 101.5) / 33.25, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_custom_cnn_is_the_studys_eight_convolutions_each_normalised():
    model = build("custom_cnn", 0.0, 1.0)
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [conv.filters for conv in convolutions] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert all(conv.kernel_size == (3, 3) for conv in convolutions)
    following = {layer.name: model.layers[i + 1] for i, layer in enumerate(model.layers[:-1])}
    assert all(isinstance(following[conv.name], keras.layers.BatchNormalization) for conv in convolutions)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert [pool.pool_size for pool in pools] == [(3, 3)] * 4
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [512, 7]


def test_unknown_architecture():
    with pytest.raises(FervideoError, match=r"unknown architecture 'vgg'.*resvgg"):
        build("vgg", 0.0, 1.0)


def test_resvgg_is_cheaper_than_the_custom_cnn():
    """The default must classify at least as fast as the study's CNN (issue 4)."""

    def multiply_adds(model: keras.Model) -> int:
        total = 0
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                h, w, c_out = layer.output.shape[1:]
                kh, kw = layer.kernel_size
                total += h * w * c_out * kh * kw * layer.input.shape[-1]
        return total

    assert multiply_adds(build("resvgg", 0, 1)) < multiply_adds(build("custom_cnn", 0, 1)) / 2


def _write_notop_weights(path: Path) -> list[np.ndarray]:
    """A file in the format of Keras' real ImageNet download (legacy HDF5, layer names),
    made from a randomly initialised ResNet-50 without top."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    source = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(48, 48, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    return source.get_weights()


@pytest.fixture(scope="module")
def notop_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    path = tmp_path_factory.mktemp("weights") / IMAGENET_NOTOP_FILE
    return path, _write_notop_weights(path)


def _backbone_weights(model: keras.Model) -> list[np.ndarray]:
    return model.get_layer("resnet50").get_weights()


def test_imagenet_weights_from_an_explicit_file(notop_file):
    path, expected = notop_file
    model = build("resnet_imagenet", 120.0, 60.0, weights=path)
    for got, want in zip(_backbone_weights(model), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_imagenet_weights_from_keras_cache(notop_file, tmp_path: Path, monkeypatch):
    path, expected = notop_file
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / IMAGENET_NOTOP_FILE).write_bytes(path.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert imagenet_weights_path() == tmp_path / "models" / IMAGENET_NOTOP_FILE
    model = ARCHITECTURES["resnet_imagenet"](120.0, 60.0)
    np.testing.assert_array_equal(_backbone_weights(model)[0], expected[0])


def test_imagenet_weights_offline_without_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(architectures.keras.utils, "get_file", offline)
    with pytest.raises(FervideoError) as error:
        imagenet_weights_path()
    message = str(error.value)
    assert IMAGENET_NOTOP_FILE in message and str(tmp_path / "models") in message
    assert "--imagenet-weights" in message and message.count(".") <= 4


def test_explicit_imagenet_file_must_exist(tmp_path: Path):
    with pytest.raises(FervideoError, match="does not exist"):
        imagenet_weights_path(tmp_path / "missing.h5")


def test_low_resolution_shows_a_share_of_the_faces_small_and_none_at_inference():
    from fervideo.training.augment import RandomResolution

    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 255, (400, 48, 48, 1)).astype("float32")
    layer = RandomResolution(0.5, seed=3)
    shown = np.asarray(layer(faces, training=True))
    changed = np.abs(shown - faces).reshape(len(faces), -1).max(axis=1) > 1
    assert 0.4 < changed.mean() < 0.6  # about half of them
    small = cv2.resize(cv2.resize(faces[0, ..., 0], (20, 20), interpolation=cv2.INTER_AREA), (48, 48))
    both = [np.abs(shown[i, ..., 0] - faces[i, ..., 0]).mean() for i in np.flatnonzero(changed)[:5]]
    assert all(b > 10 for b in both) and np.abs(small - faces[0, ..., 0]).mean() > 10  # noise blurred away
    np.testing.assert_array_equal(np.asarray(layer(faces, training=False)), faces)
    restored = RandomResolution.from_config(layer.get_config())
    assert (restored.rate, restored.sizes) == (0.5, (20, 32))
