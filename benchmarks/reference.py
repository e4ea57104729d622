"""The straightforward BiT every figure is compared with, built here and nowhere else.

What a reader of the BiT paper (arXiv 1912.11370) would write in Keras 3 without looking for
speed: a ``Conv2D`` that standardizes its kernel on every call, ``keras.layers.GroupNormalization``
(32 groups, epsilon 1e-5) followed by a separate ReLU, explicit padding layers. Its layer names
match ``bit_keras``'s, so ``copy_weights`` gives it the same weights and the benchmark checks
that both compute the same function before timing them.
"""

import keras
from keras import ops

WS_EPSILON = 1e-10  # official bit_tf2 (see bit_keras.layers)
GN_EPSILON = 1e-5   # the BiT weights' GroupNorm epsilon (Keras' default is 1e-3)


class PlainStandardizedConv2D(keras.layers.Conv2D):
    """``Conv2D`` with the kernel standardized per output channel on every call."""

    def call(self, inputs):
        kernel = ops.cast(self.kernel, "float32")
        mean = ops.mean(kernel, axis=(0, 1, 2), keepdims=True)
        var = ops.var(kernel, axis=(0, 1, 2), keepdims=True)
        kernel = (kernel - mean) / ops.sqrt(var + WS_EPSILON)
        return self.convolution_op(inputs, ops.cast(kernel, self.compute_dtype))


def _conv(x, filters, size, strides, name, dtype, padding="valid"):
    return PlainStandardizedConv2D(filters, size, strides=strides, padding=padding,
                                   use_bias=False, name=name, dtype=dtype)(x)


def _gn_relu(x, name, groups, dtype):
    x = keras.layers.GroupNormalization(groups, epsilon=GN_EPSILON, name=name, dtype=dtype)(x)
    return keras.layers.ReLU(name=f"{name}_relu", dtype=dtype)(x)


def reference_bit(units=(3, 4, 6, 3), width=1, num_classes=1000, base_filters=64, groups=32,
                  dtype=None):
    """A BiT ResNet-v2 built the plain way, with ``bit_keras``'s layer names.

    Args:
        units, width, num_classes, base_filters, groups: as ``bit_keras.resnet_v2``.
        dtype: a Keras dtype policy name (``"mixed_bfloat16"``); the head stays float32.

    Returns:
        A ``keras.Model`` from float32 images in [0, 1] to logits.

    Example:

    >>> tiny = bit_keras.VARIANTS[bit_keras.models.variants.TINY].architecture_kwargs()
    >>> ref = benchmarks.reference.reference_bit(num_classes=5, **tiny)
    """
    images = keras.Input((None, None, 3), name="images")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale", dtype=dtype)(images)
    x = keras.layers.ZeroPadding2D(3, name="root_pad", dtype=dtype)(x)
    x = _conv(x, base_filters * width, 7, 2, "root_conv", dtype)
    x = keras.layers.ZeroPadding2D(1, name="root_pool_pad", dtype=dtype)(x)
    x = keras.layers.MaxPooling2D(3, 2, name="stem", dtype=dtype)(x)
    for b, n in enumerate(units, start=1):
        filters = base_filters * width * 2 ** (b - 1)
        for u in range(1, n + 1):
            p = f"block{b}_unit{u:02d}"
            strides = 2 if (u == 1 and b > 1) else 1
            preact = _gn_relu(x, f"{p}_a_gn", groups, dtype)
            shortcut = x
            if u == 1:
                shortcut = _conv(preact, filters * 4, 1, strides, f"{p}_proj_conv", dtype)
            y = _conv(preact, filters, 1, 1, f"{p}_a_conv", dtype)
            y = _gn_relu(y, f"{p}_b_gn", groups, dtype)
            y = keras.layers.ZeroPadding2D(1, name=f"{p}_b_pad", dtype=dtype)(y)
            y = _conv(y, filters, 3, strides, f"{p}_b_conv", dtype)
            y = _gn_relu(y, f"{p}_c_gn", groups, dtype)
            y = _conv(y, filters * 4, 1, 1, f"{p}_c_conv", dtype)
            x = keras.layers.Add(name=f"{p}_add", dtype=dtype)([y, shortcut])
    x = _gn_relu(x, "final_gn", groups, dtype)
    x = keras.layers.GlobalAveragePooling2D(name="pre_logits", dtype=dtype)(x)
    logits = keras.layers.Dense(num_classes, name="head", dtype="float32")(x)
    return keras.Model(images, logits, name="reference_bit")


def copy_weights(source, target):
    """Copies every weighted layer of ``source`` into the layer of the same name in ``target``."""
    copied = 0
    for layer in source.layers:
        weights = layer.get_weights()
        if weights:
            target.get_layer(layer.name).set_weights(weights)
            copied += 1
    missing = [l.name for l in target.layers if l.get_weights() and
               l.name not in {s.name for s in source.layers}]
    if missing:
        raise ValueError(f"target has weighted layers that source lacks: {missing}")
    return copied
