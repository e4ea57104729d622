"""The export API in this process: argument errors, safety of the target, folding, the CLI.

Reloading and serving the artefacts is tested in ``test_export.py`` (in a process that
cannot import bit_keras).
"""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY

import bit_keras
from bit_keras.exporter import module as bit_module
from bit_keras.models import fold

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model():
    m = bit_keras.resnet_v2(num_classes=3, **TINY)
    rng = np.random.default_rng(0)
    for v in m.weights:  # a non-zero head and non-trivial GroupNorm parameters
        v.assign(rng.normal(1.0 if "gamma" in v.path else 0.0, 0.3, v.shape).astype("float32"))
    return m


def _tree(path):
    """Every file under ``path`` with its bytes, to show a target was left as it was."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


@pytest.mark.parametrize("kwargs,message", [
    (dict(kind="logits"), "kind must be one of ['feature_vector', 'classifier', 'feature_pyramid']. Received: kind='logits'"),
    (dict(version=-1), "version must be None or a non-negative int"),
    (dict(version="1"), "Received: version='1'"),
    (dict(image_size=0), "image_size must be a positive int or None. Received: image_size=0"),
    (dict(top_k=0), "top_k must be a positive int. Received: top_k=0"),
    (dict(top_k=True), "top_k must be a positive int. Received: top_k=True"),
    (dict(label_scores="relu"), "label_scores must be one of ['softmax', 'sigmoid']"),
    (dict(labels="x.txt"), "labels is only for kind='classifier'"),
])
def test_export_argument_errors(model, tmp_path, kwargs, message):
    with pytest.raises(ValueError) as info:
        bit_keras.export(model, tmp_path / "out", **kwargs)
    assert message in str(info.value)
    assert not os.path.exists(tmp_path / "out")


def test_labels_must_match_the_head(model, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(ValueError, match=r"for the 3 classes of the head\. Received: labels=.* with 2 lines"):
        bit_keras.export(model, tmp_path / "out", kind="classifier", labels=labels)
    labels.write_text("a\n\nc\n")
    with pytest.raises(ValueError, match=r"empty at lines \[2\]"):
        bit_keras.export(model, tmp_path / "out", kind="classifier", labels=labels)
    with pytest.raises(ValueError, match="labels must be a readable UTF-8 text file"):
        bit_keras.export(model, tmp_path / "out", kind="classifier", labels=tmp_path / "missing.txt")


def test_classifier_needs_a_head(tmp_path):
    backbone = bit_keras.resnet_v2(include_top=False, **TINY)
    with pytest.raises(ValueError, match="kind='classifier' needs a model with a head"):
        bit_keras.export(backbone, tmp_path / "out", kind="classifier")
    # Its feature vector is the model itself (output layer 'features').
    assert bit_module.select_model(backbone, "feature_vector") is backbone


def test_not_a_bit_model(tmp_path):
    import keras
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="model must be a BiT model"):
        bit_keras.export(other, tmp_path / "out")


def test_existing_target_is_left_as_it_was(model, tmp_path):
    target = tmp_path / "serving" / "7"
    target.mkdir(parents=True)
    (target / "saved_model.pb").write_bytes(b"the model being served")
    with pytest.raises(FileExistsError, match="already exists; it was left as it was"):
        bit_keras.export(model, tmp_path / "serving", version=7)
    assert _tree(target) == {"saved_model.pb": b"the model being served"}
    assert os.listdir(tmp_path / "serving") == ["7"]


def test_failure_while_writing_leaves_nothing(model, tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        bit_keras.export(model, tmp_path / "out")
    assert os.listdir(tmp_path) == []


KILLED_EXPORT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import tensorflow as tf
    import bit_keras
    from conftest import TINY
    save = tf.saved_model.save
    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)  # the whole SavedModel is written beside the target...
        os.kill(os.getpid(), signal.SIGKILL)  # ...and the process dies before the rename
    tf.saved_model.save = save_then_die
    bit_keras.export(bit_keras.resnet_v2(num_classes=3, **TINY), {target!r}, overwrite=True)
""")


def test_killed_export_leaves_the_target_as_it_was(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "saved_model.pb").write_bytes(b"previous export")
    script = KILLED_EXPORT.format(tests=os.path.join(REPO, "tests"), target=str(target))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert _tree(target) == {"saved_model.pb": b"previous export"}
    leftovers = [n for n in os.listdir(tmp_path) if n != "model"]
    # The complete but unrenamed SavedModel is a hidden sibling a server never loads.
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.tmp-"), leftovers
    assert os.path.isfile(tmp_path / leftovers[0] / "saved_model.pb")


def test_fold_standardization_computes_the_same_function(model):
    x = np.random.default_rng(2).uniform(0, 1, (2, 40, 32, 3)).astype("float32")
    for net in (bit_module.select_model(model, "feature_vector"), model):
        folded = bit_keras.fold_standardization(net)  # the public name of fold.fold_standardization
        assert fold.fold_standardization is bit_keras.fold_standardization
        want = net(x).numpy()
        np.testing.assert_allclose(folded(x).numpy(), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        assert folded.trainable_weights == [] and len(folded.weights) == len(net.weights)
        assert not any(isinstance(l, bit_keras.layers.StandardizedConv2D) for l in folded.layers)
    # The original is untouched and still trainable.
    assert len(model.trainable_weights) == len(model.weights)


def test_tflite_and_publish_errors(model, tmp_path):
    with pytest.raises(ValueError, match="quantize must be one of \\[None, 'float16', "
                       "'dynamic_int8', 'int8'\\]"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(ValueError, match="representative_data is needed by quantize='int8' and "
                       "only by it"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(ValueError, match="representative_data is needed by"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite", representative_data=[])
    uint8 = [np.full((8, 8, 3), 200, np.uint8)]
    with pytest.raises(ValueError, match=r"representative image 0 must be a float \[height, "
                       r"width, 3\] array. Received: dtype uint8"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite", quantize="int8",
                                representative_data=uint8)
    with pytest.raises(ValueError, match=r"must hold values in \[0, 1\].*\[0, 200\]"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite", quantize="int8",
                                representative_data=[np.linspace(0, 200, 192).reshape(8, 8, 3)])
    with pytest.raises(ValueError, match="which is not a folder"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite", quantize="int8",
                                representative_data=str(tmp_path / "missing"))
    assert not (tmp_path / "m.tflite").exists()
    with pytest.raises(ValueError, match="export_dir must be a SavedModel directory"):
        bit_keras.publish(tmp_path, tmp_path / "public")
    (tmp_path / "m.tflite").write_bytes(b"old")
    with pytest.raises(FileExistsError, match="m.tflite"):
        bit_keras.export_tflite(model, tmp_path / "m.tflite")
    assert (tmp_path / "m.tflite").read_bytes() == b"old"


def test_saved_model_layer_errors(tmp_path):
    with pytest.raises(ValueError, match="path must be a SavedModel directory"):
        bit_keras.SavedModelLayer(tmp_path)


def _cli(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "export", "export_bit.py"), *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_cli_exports_and_refuses_to_overwrite(tmp_path):
    # R14x1 is the smallest architecture the command line can name (base 64 channels).
    from numpy_bit import random_weights
    np.savez(tmp_path / "r14.npz", **random_weights((1, 1, 1, 1), 1, 4, base=64))
    args = ["--model", "R14x1", "--weights", str(tmp_path / "r14.npz"), "--out",
            str(tmp_path / "serving"), "--version", "3", "--publish_dir", str(tmp_path / "public")]
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(tmp_path / "serving" / "3"),
                                   str(tmp_path / "public" / "r14x1_feature_vector.tar.gz")]
    assert os.path.isfile(tmp_path / "serving" / "3" / "saved_model.pb")
    before = _tree(tmp_path / "serving")
    proc = _cli(*args)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("export_bit.py: error:")]
    assert len(errors) == 1 and "already exists" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert _tree(tmp_path / "serving") == before
