"""``bit_keras.export_tflite``: a BiT model as a ``.tflite`` file (float32 or dynamic int8).

Converted from a SavedModel written by ``keras.export.ExportArchive``. On TF 2.21 /
Keras 3.15 two other routes convert silently wrong (a hand-rolled trackable root around a
Keras 3 model, and ``from_concrete_functions``): both give a tiny file that outputs NaN
(``docs/design.md``, "Exported SavedModels"). Tests compare every TFLite output with Keras.
"""

import os
import tempfile

import keras
import tensorflow as tf

from bit_keras.exporter import module as bit_module
from bit_keras.utils import atomic, checks

QUANTIZE = (None, "dynamic_int8")


def export_tflite(model, path, kind="feature_vector", quantize=None, overwrite=False):
    """Converts a BiT model to TFLite, written beside ``path`` and renamed into place.

    The TFLite model takes float32 images in [0, 1], ``[batch, height, width, 3]`` with
    any batch and size (call ``Interpreter.resize_tensor_input`` before
    ``allocate_tensors``), and returns the feature vector or the logits.

    Args:
        model: a BiT ``keras.Model`` from ``bit_keras.build``/``load``/``resnet_v2``.
        path: the ``.tflite`` file to write.
        kind: ``"feature_vector"`` or ``"classifier"``, as for ``bit_keras.export``.
        quantize: ``None`` (float32) or ``"dynamic_int8"`` (int8 weights, float
            activations: about 4x smaller, slightly different outputs).
        overwrite: replace an existing file; otherwise an existing file is an error.

    Returns:
        The path of the written file.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz")
    >>> bit_keras.export_tflite(model, "bit_m_r50x1_fv.tflite", kind="feature_vector")
    """
    checks.one_of(quantize, "quantize", QUANTIZE)
    net = bit_module.portable_copy(bit_module.select_model(model, kind))
    path = os.fspath(path)
    atomic.check_target(os.path.abspath(path), overwrite)
    with tempfile.TemporaryDirectory(prefix="bit_keras_tflite_") as saved:
        archive = keras.export.ExportArchive()
        archive.track(net)
        archive.add_endpoint(
            "serve", lambda images: tf.cast(net(images, training=False), tf.float32),
            input_signature=[keras.InputSpec(shape=(None, None, None, 3), dtype="float32")])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serve"])
        if quantize == "dynamic_int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        flatbuffer = converter.convert()
    with atomic.atomic_file(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
    return os.path.abspath(path)
