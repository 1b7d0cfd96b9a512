"""Training pipeline of fervideo: rebuild and judge the emotion models on FER2013.

Imports Keras at module level; `fervideo` itself never imports this package (the CLI does,
lazily), so analysing video does not pay for it.
"""

import os

# TensorFlow turns its oneDNN kernels on by default only on some Intel CPUs. Without them, on an
# AVX2-only EPYC, the input gradient of ResNet-50's stage-5 1x1 stride-2 convolution took
# 2254 ms instead of 73, and a whole training step 3.6x longer (8.4 against 30.0 img/s);
# inference was as fast either way.
# It must be set before TensorFlow loads, so here, before any module of this package imports
# Keras; a user's own setting wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
