"""A BiT model as an ONNX file, for ONNX Runtime, OpenVINO, TensorRT and edge runtimes.

The serving function (float32 NHWC images in [0, 1] -> features or logits) is traced with
plain TensorFlow ops (``bit_keras.layers.compiled_kernels(False)``) and converted by
``tf2onnx``, the converter Keras' own ``Model.export(format="onnx")`` uses on TensorFlow.
Both need the ``onnx`` extra: ``pip install "bit_keras[onnx]"``.
"""

import math
import os

import tensorflow as tf

from bit_keras import layers as bit_layers
from bit_keras.exporter import module as bit_module
from bit_keras.exporter import signatures as sigs
from bit_keras.utils import atomic, checks

# The input name of every bit_keras artefact (docs/design.md, "Exported SavedModels").
INPUT_NAME = "images"
# One ONNX file is one protobuf message, which cannot exceed 2 GiB; the weights must fit
# with room for the graph.
MAX_WEIGHT_BYTES = 2 ** 31 - 2 ** 24


def export_onnx(model, path, kind="feature_vector", overwrite=False, opset=None):
    """Writes a BiT model as an ONNX file with dynamic batch, height and width.

    The file's input is ``images``, float32 ``[batch, height, width, 3]`` in [0, 1] (the
    model rescales it, as every bit_keras artefact does); its output is ``feature_vector``
    (``[batch, 2048 * width]``, the pooled pre-logits), ``logits`` (``[batch, classes]``) or,
    for ``kind="feature_pyramid"``, one output per block (``block1`` .. ``block4``).
    The file holds standard ONNX operators only and loads where bit_keras is absent.

    Args:
        model: a BiT model from ``bit_keras.build``/``load``/``resnet_v2``.
        path: the ``.onnx`` file to write (written beside, then renamed).
        kind: ``"feature_vector"``, ``"classifier"`` (needs a model with a head) or
            ``"feature_pyramid"``.
        overwrite: replace an existing file.
        opset: the ONNX opset; default tf2onnx's (15 with tf2onnx 1.17).

    Returns:
        The absolute path of the written file.

    Example:

    >>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz")
    >>> bit_keras.export_onnx(model, "bit_m_r50x1.onnx", kind="classifier")
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession("bit_m_r50x1.onnx")
    >>> logits, = session.run(None, {"images": images})  # float32 NHWC in [0, 1]
    """
    if opset is not None:
        checks.positive_int(opset, "opset")
    tf2onnx = _converter()
    net = bit_module.select_model(model, kind)
    size = sum(tf.as_dtype(w.dtype).size * math.prod(w.shape) for w in net.weights)
    if size > MAX_WEIGHT_BYTES:
        raise ValueError(
            f"export_onnx writes one file, and ONNX files are limited to 2 GiB; "
            f"{model.name!r} has {size / 2 ** 30:.2f} GiB of weights (R152x3, R101x4 and "
            "R152x4 are over it). Use bit_keras.export and convert the SavedModel "
            "(OpenVINO), or a smaller architecture.")
    net = bit_module.portable_copy(net)
    path = os.path.abspath(os.fspath(path))
    atomic.check_target(path, overwrite)
    spec = [tf.TensorSpec([None, None, None, 3], tf.float32, name=INPUT_NAME)]
    @tf.function(input_signature=spec, autograph=False)
    def serve(images):
        outputs = net(images, training=False)
        if not isinstance(outputs, dict):
            outputs = {sigs.OUTPUT_KEYS[kind]: outputs}
        return {k: tf.cast(v, tf.float32) for k, v in outputs.items()}

    with bit_layers.compiled_kernels(False):  # standard operators only
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    with atomic.atomic_file(path, overwrite) as tmp:
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
    return path


def _converter():
    try:
        import tf2onnx
    except ImportError as e:
        raise ImportError("export_onnx needs tf2onnx and onnx: pip install 'bit_keras[onnx]' "
                          f"(or: pip install tf2onnx onnx onnxruntime). ({e})") from None
    return tf2onnx
