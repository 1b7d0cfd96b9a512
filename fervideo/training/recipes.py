"""The recipes of the bundled models: what `fervideo train --model NAME` runs for the options
it is not given. One place for the choices the model cards explain; each is a `TrainConfig`.
"""

from __future__ import annotations

from dataclasses import replace

from fervideo.config import AugmentConfig, TrainConfig

# Decoupled weight decay 5e-3 with SGD momentum 0.9 shrinks weights about as much per step as
# the usual coupled L2 of 5e-4 does in other frameworks (momentum multiplies that one by ~10).
_COMMON = dict(batch_size=128, weight_decay=5e-3, warmup_epochs=2)

RECIPES: dict[str, TrainConfig] = {
    # The default: long cosine schedule, strong augmentation, label smoothing.
    "resvgg": TrainConfig(
        architecture="resvgg", epochs=60, learning_rate=0.1, label_smoothing=0.1, **_COMMON
    ),
    # The single-network default's recipe: resvgg's, two blocks a stage, rare classes weighted
    # up (half-way to equal class totals), a fifth of the faces shown at low resolution (small
    # faces cost the bundled models 8-10 points) and, given --teacher, distilled from an ensemble.
    "resvgg_deep": TrainConfig(
        architecture="resvgg_deep",
        epochs=60,
        learning_rate=0.1,
        label_smoothing=0.1,
        class_balance=0.5,
        augment=AugmentConfig(low_resolution=0.2),
        **_COMMON,
    ),
    # The study's two models, trained as the study did (flip, zoom, rotation; plain
    # cross-entropy) plus shift, with the study's 150 epochs as the ceiling. With batch
    # normalisation after only every second convolution the custom CNN diverged at 0.05 and
    # plateaued at 63% validation accuracy at 0.01 (models/HISTORY.md); with it
    # after every convolution its loss fell steadily at a constant 0.1 from the first step.
    "custom_cnn": TrainConfig(
        architecture="custom_cnn",
        epochs=150,
        learning_rate=0.1,
        augment=AugmentConfig(erasing=0.0),
        **_COMMON,
    ),
    "resnet": TrainConfig(
        architecture="resnet", epochs=150, learning_rate=0.1, augment=AugmentConfig(erasing=0.0), **_COMMON
    ),
}
RECIPES["resnet_imagenet"] = replace(RECIPES["resnet"], architecture="resnet_imagenet")
