import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# What `import bit_keras` sets before TensorFlow loads, whichever test module loads it first.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# A tiny BiT: R14 (one unit per block), base 16 channels, 8 GroupNorm groups.
TINY = dict(units=(1, 1, 1, 1), width=1, base_filters=16, groups=8)


@pytest.fixture
def tiny_model():
    import bit_keras
    return bit_keras.resnet_v2(num_classes=5, **TINY)


@pytest.fixture
def images():
    return np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
