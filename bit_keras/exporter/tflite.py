"""``bit_keras.export_tflite``: a BiT model as a ``.tflite`` file: float32, float16 weights,
dynamic-range int8, or full-integer int8 calibrated on a representative dataset.

Converted from a SavedModel written by ``keras.export.ExportArchive``. On TF 2.21 /
Keras 3.15 two other routes convert silently wrong (a hand-rolled trackable root around a
Keras 3 model, and ``from_concrete_functions``): both give a tiny file that outputs NaN
(``docs/design.md``, "Exported SavedModels"). Tests compare every TFLite output with Keras.
"""

import os
import tempfile

import keras
import tensorflow as tf

from bit_keras import layers as bit_layers
from bit_keras.exporter import module as bit_module
from bit_keras.exporter import representative
from bit_keras.exporter.saved_model import default_image_size
from bit_keras.utils import atomic, checks

QUANTIZE = (None, "float16", "dynamic_int8", "int8")
REPRESENTATIVE_IMAGES = 100  # calibration images taken from a representative dataset


def check_quantize(quantize, representative_data, flags=False):
    """The quantize rule, in one place (``export_tflite`` and ``bit-keras export``): one of
    ``QUANTIZE``, and ``representative_data`` with ``"int8"`` and only with it. ``flags=True``
    words the error in the command line's flags."""
    checks.one_of(quantize, "--quantize" if flags else "quantize", QUANTIZE)
    if (quantize == "int8") == (representative_data is not None):
        return
    if flags:
        raise ValueError(
            "--quantize=int8 (only it) needs --representative_data=FOLDER (a folder of images "
            f"like the serving inputs). Received: --quantize={quantize}, "
            f"--representative_data={representative_data}")
    raise ValueError(
        "representative_data is needed by quantize='int8' and only by it (a folder, a "
        "bit_keras.data.Source or an iterable of image arrays). Received: "
        f"quantize={quantize!r}, representative_data={type(representative_data).__name__}")


def export_tflite(model, path, kind="feature_vector", quantize=None, overwrite=False,
                  representative_data=None, image_size=None,
                  representative_images=REPRESENTATIVE_IMAGES):
    """Converts a BiT model to TFLite, written beside ``path`` and renamed into place.

    The TFLite model takes float32 images in [0, 1], ``[batch, height, width, 3]`` with
    any batch and size (call ``Interpreter.resize_tensor_input`` before
    ``allocate_tensors``), and returns the feature vector or the logits.

    Args:
        model: a BiT ``keras.Model`` from ``bit_keras.build``/``load``/``resnet_v2``.
        path: the ``.tflite`` file to write.
        kind: ``"feature_vector"`` or ``"classifier"``, as for ``bit_keras.export``.
        quantize: ``None`` (float32); ``"float16"`` (float16 weights, float32 compute on
            CPU: half the size); ``"dynamic_int8"`` (int8 weights, float activations: about
            4x smaller); ``"int8"`` (full-integer: int8 weights and activations, an int8
            input and output, what edge accelerators need; needs ``representative_data``).
            The input of an ``"int8"`` file is ``round(image / scale + zero_point)`` with the
            input tensor's ``quantization`` (scale ~1/255, zero point -128 for [0, 1]
            images); its output is dequantized the same way.
        overwrite: replace an existing file; otherwise an existing file is an error.
        representative_data: for ``"int8"``, images that look like the real inputs, to
            calibrate the activation ranges: a folder of images (class subfolders or not),
            a ``bit_keras.data.Source``, or an iterable (or a function returning one) of
            float32 ``[batch, height, width, 3]`` (or ``[height, width, 3]``) arrays in [0, 1].
        image_size: the side folder and ``Source`` images are resized to (default the
            variant's resolution, 224 for other models).
        representative_images: how many images calibrate (the first of the data).

    Returns:
        The path of the written file.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz")
    >>> bit_keras.export_tflite(model, "bit_m_r50x1_fv.tflite", kind="feature_vector")
    """
    checks.one_of(kind, "kind", ("feature_vector", "classifier"))
    check_quantize(quantize, representative_data)
    checks.positive_int(representative_images, "representative_images")
    net = bit_module.portable_copy(bit_module.select_model(model, kind))
    path = os.fspath(path)
    atomic.check_target(os.path.abspath(path), overwrite)
    if quantize == "int8":
        calibration = representative.images(representative_data, representative_images,
                                            image_size or default_image_size(model))
    # Plain TensorFlow ops only (bit_keras.layers.fused): the converter knows no others.
    with tempfile.TemporaryDirectory(prefix="bit_keras_tflite_") as saved, \
            bit_layers.compiled_kernels(False):
        archive = keras.export.ExportArchive()
        archive.track(net)
        archive.add_endpoint(
            "serve", lambda images: tf.cast(net(images, training=False), tf.float32),
            input_signature=[keras.InputSpec(shape=(None, None, None, 3), dtype="float32")])
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serve"])
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            converter.representative_dataset = lambda: ([image[None]] for image in calibration)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        flatbuffer = converter.convert()
    with atomic.atomic_file(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(flatbuffer)
    return os.path.abspath(path)
