"""bit_keras on every Keras 3 backend: one BiT for TensorFlow, JAX and PyTorch (issue 26).

Each backend runs in a process of its own (``KERAS_BACKEND`` is read once, when Keras is
imported; tests/backend_child.py). The checkpoints are written here, in every layout the
loader reads; the logits must equal the float64 NumPy reference and this process's
TensorFlow model to float rounding.
"""

import json
import os
import subprocess
import sys

import checkpoint_files
import numpy as np
import numpy_bit
import pytest

import bit_keras

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = dict(units=(1, 1, 1, 1), width=1, num_classes=5, base_filters=16, groups=8)
BACKENDS = ("jax", "torch")
# Relative error allowed against the float64 reference and between backends: float32
# rounding through ~12 layers (the bound between backends is 1e-5).
TOLERANCE = 1e-5


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    weights = numpy_bit.random_weights(SPEC["units"], 1, SPEC["num_classes"], base=16, seed=7)
    paths = {"official": folder / "official.npz", "numbered": folder / "numbered.npz",
             "big_vision": folder / "big_vision.npz", "timm": folder / "timm.safetensors",
             "bit_tf2_h5": folder / "bit_tf2.h5"}
    np.savez(paths["official"], **weights)
    np.savez(paths["numbered"], **checkpoint_files.numbered_convolutions(weights))
    np.savez(paths["big_vision"], **checkpoint_files.big_vision_params(weights))
    checkpoint_files.write_timm_safetensors(weights, str(paths["timm"]))
    checkpoint_files.write_bit_tf2_h5(weights, str(paths["bit_tf2_h5"]))
    images = np.random.default_rng(0).random((4, 40, 36, 3)).astype(np.float32)
    np.save(folder / "images.npy", images)
    model = bit_keras.resnet_v2(**SPEC)
    bit_keras.load_weights(model, str(paths["official"]))
    tensorflow_logits = np.asarray(model(images))
    reference = numpy_bit.forward(weights, images, groups=SPEC["groups"])
    return folder, paths, images, tensorflow_logits, reference


@pytest.fixture(scope="module", params=BACKENDS)
def child(request, setting):
    folder, paths, *_ = setting
    backend = request.param
    work = folder / backend
    work.mkdir()
    job = {"spec": SPEC, "images": str(folder / "images.npy"), "dir": str(work),
           "checkpoints": {k: str(v) for k, v in paths.items()},
           "class_names": ["ant", "bee", "cod", "doe", "eel"],
           "learning_rate": 0.05, "epochs": 4, "out": str(work / "out.npz")}
    (work / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": HERE + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, os.path.join(HERE, "backend_child.py"),
                           str(work / "job.json")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return backend, dict(np.load(work / "out.npz"))


def test_the_child_ran_on_its_backend_without_tensorflow(child):
    backend, out = child
    assert str(out["backend"]) == backend
    assert not bool(out["tensorflow_imported"])


@pytest.mark.parametrize("layout", ["official", "numbered", "big_vision", "timm", "bit_tf2_h5"])
def test_every_layout_gives_the_reference_logits(child, setting, layout):
    _, out = child
    *_, tensorflow_logits, reference = setting
    logits = out[f"logits/{layout}"]
    assert rel_err(logits, reference) < TOLERANCE
    assert rel_err(logits, tensorflow_logits) < TOLERANCE


def test_round_trips_and_features_keep_the_logits(child, setting):
    _, out = child
    *_, reference = setting
    official = out["logits/official"]
    np.testing.assert_array_equal(out["logits/save_npz_round_trip"], official)
    np.testing.assert_array_equal(out["logits/keras_file"], official)
    assert rel_err(out["logits/folded"], official) < TOLERANCE
    weights = numpy_bit.random_weights(SPEC["units"], 1, SPEC["num_classes"], base=16, seed=7)
    _, _, images, _, _ = setting
    features = numpy_bit.forward(weights, images, groups=SPEC["groups"], include_top=False)
    assert rel_err(out["features/pre_logits"], features) < TOLERANCE
    # block3: stride 16 on 40x36 images (ceil at each stride-2 step), 4x the block's width.
    assert tuple(out["features/block3_shape"]) == (4, 3, 3, 16 * 4 * 4)
    names = ["ant", "bee", "cod", "doe", "eel"]
    top = np.argsort(-reference, axis=1, kind="stable")[:, :2]
    assert out["decoded"].tolist() == [[names[i] for i in row] for row in top]


def test_fit_reaches_every_weight_and_the_loss_falls(child):
    _, out = child
    assert out["fit/unchanged"].tolist() == [""]
    assert int(out["fit/weights"]) == len(bit_keras.resnet_v2(**SPEC).trainable_weights)
    loss = out["fit/loss"]
    assert np.all(np.isfinite(loss)) and loss[-1] < loss[0]


def test_tensorflow_only_functions_name_the_backend_they_need(child):
    backend, out = child
    message = str(out["fine_tune_error"])
    assert "needs Keras' TensorFlow backend" in message and repr(backend) in message
