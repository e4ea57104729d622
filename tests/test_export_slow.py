"""A real-size export (BiT-M-R50x1 architecture, random weights), behind the slow marker."""

import subprocess
import sys

import numpy as np
import pytest
from test_export import _run_tflite

import bit_keras

SLOW_CHILD = """
import sys; sys.modules["bit_keras"] = None
import numpy as np, tensorflow as tf
obj = tf.saved_model.load(sys.argv[1])
with np.load(sys.argv[2], allow_pickle=False) as data:
    out = {k: obj.signatures["serving_default"](images=tf.constant(data[k]))["feature_vector"].numpy()
           for k in data.files}
np.savez(sys.argv[3], **out)
"""


@pytest.mark.slow
def test_real_size_r50x1_feature_vector(tmp_path):
    model = bit_keras.build("BiT-M-R50x1", include_top=False)
    rng = np.random.default_rng(0)
    inputs = {"b2_224": rng.uniform(0, 1, (2, 224, 224, 3)).astype(np.float32),
              "b1_160x200": rng.uniform(0, 1, (1, 160, 200, 3)).astype(np.float32)}
    np.savez(tmp_path / "inputs.npz", **inputs)
    path = bit_keras.export(model, tmp_path / "fv", version=1)
    proc = subprocess.run([sys.executable, "-c", SLOW_CHILD, path, str(tmp_path / "inputs.npz"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tflite = bit_keras.export_tflite(model, tmp_path / "fv.tflite")
    with np.load(tmp_path / "out.npz", allow_pickle=False) as out:
        for name, x in inputs.items():
            expected = model(x).numpy()
            assert expected.shape == (x.shape[0], 2048)
            np.testing.assert_allclose(out[name], expected, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(_run_tflite(tflite, x), out[name], rtol=1e-3, atol=1e-3)
