import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite runs on TensorFlow's own CPU kernels: oneDNN (what `import bit_keras` turns on
# for users) builds a primitive for every new shape, which costs the many small models here
# about a fifth more time. tests/test_runtime.py runs the numerics tests with oneDNN on, and
# the benchmark test runs with it; TF_ENABLE_ONEDNN_OPTS=1 python -m pytest runs them all so.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bit_keras.models import variants  # noqa: E402

# A tiny BiT: R14 (one unit per block), base 16 channels, 8 GroupNorm groups; registered in
# the variant table as the benchmarks' and the demo's model is.
TINY = variants.VARIANTS[variants.TINY].architecture_kwargs()


@pytest.fixture
def tiny_model():
    import bit_keras
    return bit_keras.resnet_v2(num_classes=5, **TINY)


@pytest.fixture
def images():
    return np.random.default_rng(1).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)


@pytest.fixture
def bucket(tmp_path, monkeypatch):
    """A folder served on 127.0.0.1 as the weights bucket ($BIT_KERAS_WEIGHTS_URL), and an
    empty weights cache ($BIT_KERAS_HOME = tmp_path/cache)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("BIT_KERAS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("BIT_KERAS_WEIGHTS_URL", f"http://127.0.0.1:{server.server_port}/")
    yield folder
    server.shutdown()
    server.server_close()
