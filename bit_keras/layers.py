"""The two layers that make a ResNet a BiT: weight-standardized convolution and GroupNorm.

Both follow the official ``bit_tf2`` code (Kolesnikov et al., arXiv 1912.11370), which no
longer runs on current Keras because it patched a private attribute of ``Conv2D``. Here the
standardization goes through a public override of ``call``.

Speed (README, "Performance"): with ``USE_XLA`` each layer's arithmetic runs as
one small XLA-compiled function. Without it, TensorFlow runs a GroupNorm as about eight
separate kernels, each a full pass over the activations (mean, difference, square, mean,
multiply, add, ReLU, casts); XLA fuses them into about three passes, and its convolution
gradients are faster on CPU than TensorFlow's own. The formulas and the float32 statistics
are the same.
"""

import os

import keras
import tensorflow as tf
from keras import ops

# Official bit_tf2 divides by sqrt(var + 1e-10); timm uses 1e-8 (differs only for
# near-constant kernels, but a near-constant kernel is exactly where it shows).
WS_EPSILON = 1e-10
# The BiT weights were trained with GroupNorm epsilon 1e-5; Keras' own default is 1e-3.
GN_EPSILON = 1e-5
# BiT normalizes every activation with 32 groups.
GN_GROUPS = 32
# Run each layer's arithmetic as an XLA-compiled function (see the module docstring). Off by
# default: the first call at every new input shape compiles each layer (seconds for a tiny
# model, about a minute for an R50 training step), which short runs and tests never earn
# back. Set BIT_KERAS_XLA=1, or this to True before a model is first called or traced.
USE_XLA = os.environ.get("BIT_KERAS_XLA", "") == "1"


def standardize_kernel(kernel, epsilon=WS_EPSILON):
    """Weight-standardizes an HWIO kernel per output channel over (H, W, C_in).

    Uses the population variance, as ``tf.nn.moments`` does in the official code.
    """
    mean = ops.mean(kernel, axis=(0, 1, 2), keepdims=True)
    centered = kernel - mean
    var = ops.mean(ops.square(centered), axis=(0, 1, 2), keepdims=True)
    return centered * ops.rsqrt(var + epsilon)


@keras.saving.register_keras_serializable(package="bit_keras")
class StandardizedConv2D(keras.layers.Conv2D):
    """A ``Conv2D`` whose kernel is weight-standardized on every call (Qiao et al. 2019).

    The stored variable is the raw kernel, so training updates the raw weights as in the
    BiT paper; standardization happens in float32 even under a mixed-precision policy, and
    the standardized kernel is then cast to the layer's compute dtype.

    Args:
        *args: as for ``keras.layers.Conv2D``.
        ws_epsilon: added to the per-channel variance before the square root.
        **kwargs: as for ``keras.layers.Conv2D``.

    Example:

    >>> conv = bit_keras.layers.StandardizedConv2D(64, 3, padding="same", use_bias=False)
    >>> y = conv(np.random.rand(1, 8, 8, 3).astype("float32"))
    """

    def __init__(self, *args, ws_epsilon=WS_EPSILON, **kwargs):
        super().__init__(*args, **kwargs)
        self.ws_epsilon = ws_epsilon

    def standardized_kernel(self):
        """The kernel as the convolution sees it, float32."""
        return standardize_kernel(ops.cast(self.kernel.value, "float32"), self.ws_epsilon)

    def call(self, inputs):
        if USE_XLA and self.data_format == "channels_last" and self.groups == 1:
            outputs = _standardized_conv_xla(
                inputs, self.kernel.value, strides=tuple(self.strides),
                padding=self.padding.upper(), dilations=tuple(self.dilation_rate),
                epsilon=self.ws_epsilon, dtype=self.compute_dtype)
        else:
            kernel = ops.cast(self.standardized_kernel(), self.compute_dtype)
            outputs = self.convolution_op(inputs, kernel)
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def get_config(self):
        return {**super().get_config(), "ws_epsilon": self.ws_epsilon}


@keras.saving.register_keras_serializable(package="bit_keras")
class GroupNormalization(keras.layers.Layer):
    """GroupNorm over NHWC inputs, as BiT uses it (Wu & He 2018), optionally fused with ReLU.

    Statistics are computed in float32 even when the layer runs in bfloat16 or float16.
    The normalization is applied as one multiply-add per element: ``gamma`` and ``beta``
    are folded with the per-group mean and variance into a per-sample, per-channel scale
    and offset, which is exactly ``gamma * (x - mean) / sqrt(var + eps) + beta``.

    Args:
        groups: number of channel groups; the channel count must divide by it.
        epsilon: added to the group variance; BiT weights need 1e-5.
        activation: ``None`` or ``"relu"``, applied after the affine transform.
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Example:

    >>> gn = bit_keras.layers.GroupNormalization(groups=32, activation="relu")
    >>> y = gn(np.random.rand(2, 4, 4, 64).astype("float32"))
    """

    def __init__(self, groups=GN_GROUPS, epsilon=GN_EPSILON, activation=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups must be a positive int. Received: groups={groups!r}")
        if activation not in (None, "relu"):
            raise ValueError(
                f"activation must be None or 'relu'. Received: activation={activation!r}")
        self.groups = groups
        self.epsilon = epsilon
        self.activation = activation

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"GroupNormalization needs a channel count divisible by groups={self.groups}. "
                f"Received input shape {tuple(input_shape)}")
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros")

    def call(self, inputs):
        gamma = ops.cast(self.gamma.value, "float32")
        beta = ops.cast(self.beta.value, "float32")
        args = (inputs, gamma, beta, self.groups, self.epsilon, self.activation == "relu",
                self.compute_dtype)
        return _group_norm_xla(*args) if USE_XLA else _group_norm(*args)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon,
                "activation": self.activation}


def _group_norm(inputs, gamma, beta, groups, epsilon, relu, dtype):
    """GroupNorm (+ ReLU) as one multiply-add with float32 statistics; any static shape."""
    shape = tf.shape(inputs)
    x = tf.cast(inputs, tf.float32)
    grouped = tf.reshape(x, (shape[0], -1, groups, shape[-1] // groups))
    mean = tf.reduce_mean(grouped, axis=(1, 3), keepdims=True)
    var = tf.reduce_mean(tf.math.squared_difference(grouped, mean), axis=(1, 3), keepdims=True)
    scale = tf.reshape(gamma, (1, 1, groups, -1)) * tf.math.rsqrt(var + epsilon)  # (N,1,G,C/G)
    offset = tf.reshape(beta, (1, 1, groups, -1)) - mean * scale
    scale = tf.cast(tf.reshape(scale, (shape[0], 1, 1, shape[-1])), dtype)
    offset = tf.cast(tf.reshape(offset, (shape[0], 1, 1, shape[-1])), dtype)
    outputs = inputs * scale + offset
    return tf.nn.relu(outputs) if relu else outputs


def _standardized_conv(inputs, kernel, strides, padding, dilations, epsilon, dtype):
    """Weight standardization (float32) and the NHWC convolution, in one function."""
    kernel = tf.cast(standardize_kernel(tf.cast(kernel, tf.float32), epsilon), dtype)
    return tf.nn.conv2d(inputs, kernel, strides=strides, padding=padding, dilations=dilations)


# Traced and XLA-compiled once per input shape and layer configuration.
_group_norm_xla = tf.function(_group_norm, jit_compile=True)
_standardized_conv_xla = tf.function(_standardized_conv, jit_compile=True)
