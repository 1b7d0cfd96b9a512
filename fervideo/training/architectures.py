"""The emotion-model architectures, one small builder each, registered by CLI name.

Every model takes float32 (N, 48, 48, 1) grayscale pixels 0-255, standardises them inside the
model with the training set's mean and standard deviation (a `Normalization` layer, so the
statistics are saved with it), and returns (N, 7) softmax probabilities in `EMOTIONS` order.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
from keras import layers

from fervideo.config import CROP_SIZE
from fervideo.core import EMOTIONS
from fervideo.errors import FervideoError

IMAGENET_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_NOTOP_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_NOTOP_FILE
)
IMAGENET_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"  # the hash Keras itself checks


def _standardised_input(mean: float, std: float) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input((CROP_SIZE, CROP_SIZE, 1), name="pixels")
    x = layers.Normalization(mean=mean, variance=std**2, name="standardise")(inputs)
    return inputs, x


def _softmax_head(x: keras.KerasTensor) -> keras.KerasTensor:
    x = layers.Dense(len(EMOTIONS), name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probs")(x)


def _conv_bn_relu(x, filters: int, name: str, strides: int = 1):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=name + "_conv")(x)
    x = layers.BatchNormalization(name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)


def custom_cnn(mean: float, std: float) -> keras.Model:
    """The study's 8-convolution network: four blocks of two 3x3 convolutions (64, 128, 256,
    512 filters), each convolution followed by batch normalisation, each block by 3x3
    max-pooling (stride 2) and dropout; then a 512-unit dense layer and the 7-way softmax.

    Normalising every convolution, not only the second of each block, is what lets it train at
    the learning rate of 0.1 the residual nets use (see `fervideo.training.recipes`)."""
    inputs, x = _standardised_input(mean, std)
    for block, filters in enumerate((64, 128, 256, 512), start=1):
        name = f"block{block}"
        x = _conv_bn_relu(x, filters, name + "_1")
        x = _conv_bn_relu(x, filters, name + "_2")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=name + "_pool")(x)
        x = layers.Dropout(0.25, name=name + "_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(512, activation="relu", name="dense")(x)
    x = layers.BatchNormalization(name="dense_bn")(x)
    x = layers.Dropout(0.5, name="dense_dropout")(x)
    return keras.Model(inputs, _softmax_head(x), name="custom_cnn")


def _residual_block(x, filters: int, name: str):
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=False, name=name + "_proj")(x)
        shortcut = layers.BatchNormalization(name=name + "_proj_bn")(shortcut)
    x = _conv_bn_relu(x, filters, name + "_1")
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name + "_2_conv")(x)
    x = layers.BatchNormalization(name=name + "_2_bn")(x)
    x = layers.Add(name=name + "_add")([shortcut, x])
    return layers.ReLU(name=name + "_out")(x)


def _residual_vgg(mean: float, std: float, stages: tuple[tuple[int, int], ...], name: str) -> keras.Model:
    """A 32-filter convolution at full 48x48 resolution, then per (filters, blocks) stage a 2x2
    max-pooling and that many residual blocks, global average pooling, dropout and the softmax."""
    inputs, x = _standardised_input(mean, std)
    x = _conv_bn_relu(x, 32, "stem")
    for stage, (filters, blocks) in enumerate(stages, start=1):
        x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        for block in range(1, blocks + 1):
            x = _residual_block(x, filters, f"stage{stage}_block{block}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    return keras.Model(inputs, _softmax_head(x), name=name)


def resvgg(mean: float, std: float) -> keras.Model:
    """fervideo's residual VGG-style net sized for accuracy per CPU-second: stages of 64 (24x24),
    128 (12x12) and 256 (6x6, two blocks) filters, about 140 M multiply-adds per face, against
    about 470 M for the custom CNN."""
    return _residual_vgg(mean, std, ((64, 1), (128, 1), (256, 2)), "resvgg")


def resvgg_deep(mean: float, std: float) -> keras.Model:
    """`resvgg` with two residual blocks in every stage: about 225 M multiply-adds per face, so a
    single pass costs about what the two-member `resvgg_ensemble` does."""
    return _residual_vgg(mean, std, ((64, 2), (128, 2), (256, 2)), "resvgg_deep")


def resnet(mean: float, std: float, weights: str | Path | None = None) -> keras.Model:
    """Keras' ResNet-50 (no top) on the grayscale face repeated to three channels, global
    average pooling and a dense softmax, as in the study."""
    inputs, x = _standardised_input(mean, std)
    x = layers.Concatenate(name="to_rgb")([x, x, x])
    backbone = keras.applications.ResNet50(
        include_top=False,
        weights=None if weights is None else str(weights),
        input_shape=(CROP_SIZE, CROP_SIZE, 3),
    )
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, _softmax_head(x), name="resnet")


def resnet_imagenet(mean: float, std: float, weights: str | Path | None = None) -> keras.Model:
    """ResNet-50 initialised with ImageNet weights (see `imagenet_weights_path`)."""
    model = resnet(mean, std, weights=imagenet_weights_path(weights))
    model.name = "resnet_imagenet"
    return model


def keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")


def imagenet_weights_path(explicit: str | Path | None = None) -> Path:
    """The ResNet-50 ImageNet (no top) weights: an explicit file, Keras' cache, or a download.

    Offline with neither file present this fails with one sentence naming the file and where
    to put it.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise FervideoError(f"ImageNet weights file {path} does not exist.")
        return path
    cached = keras_home() / "models" / IMAGENET_NOTOP_FILE
    if cached.is_file():
        return cached
    try:
        return Path(
            keras.utils.get_file(
                IMAGENET_NOTOP_FILE, IMAGENET_NOTOP_URL, cache_subdir="models", file_hash=IMAGENET_NOTOP_MD5
            )
        )
    except Exception as error:  # any download failure means the same thing to the user
        raise FervideoError(
            f"ImageNet weights could not be downloaded ({type(error).__name__}): put "
            f"{IMAGENET_NOTOP_FILE} in {cached.parent} or pass --imagenet-weights FILE."
        ) from None


Builder = Callable[..., keras.Model]
#: CLI name -> builder(mean, std, **options).
ARCHITECTURES: dict[str, Builder] = {
    "custom_cnn": custom_cnn,
    "resnet": resnet,
    "resnet_imagenet": resnet_imagenet,
    "resvgg": resvgg,
    "resvgg_deep": resvgg_deep,
}


def build(name: str, mean: float, std: float, **options) -> keras.Model:
    """Build architecture `name` with the given normalisation statistics."""
    if name not in ARCHITECTURES:
        raise FervideoError(f"unknown architecture {name!r}; expected one of {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name](mean, std, **options)
