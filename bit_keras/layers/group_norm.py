"""GroupNorm over NHWC inputs as BiT uses it (Wu & He 2018), fused with ReLU, and its kernels.

Speed (docs/performance.md): GroupNorm is the one part of a BiT that TensorFlow does not run
at near-peak speed by itself. Here it reduces its statistics per channel first (a fast
reduction) and then per group, applies gamma, beta and the normalization as one
multiply-add, and has a hand-written gradient (eight kernels instead of about thirty).
"""

import keras
import tensorflow as tf
from keras import ops

from bit_keras.layers import fused
from bit_keras.utils import checks

# The BiT weights were trained with GroupNorm epsilon 1e-5; Keras' own default is 1e-3.
GN_EPSILON = 1e-5
# BiT normalizes every activation with 32 groups.
GN_GROUPS = 32


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
        hand_written_gradient: differentiate through the closed-form backward pass (fast,
            the default) or through the forward ops (what exports trace: a SavedModel then
            holds plain ops, and saving and loading take half as long). Same gradients.
        **kwargs: base layer arguments (``name``, ``dtype``, ``trainable``).

    Example:

    >>> gn = bit_keras.layers.GroupNormalization(groups=32, activation="relu")
    >>> y = gn(np.random.rand(2, 4, 4, 64).astype("float32"))
    """

    def __init__(self, groups=GN_GROUPS, epsilon=GN_EPSILON, activation=None,
                 hand_written_gradient=True, **kwargs):
        super().__init__(**kwargs)
        checks.positive_int(groups, "groups")
        if activation not in (None, "relu"):
            raise ValueError(
                f"activation must be None or 'relu'. Received: activation={activation!r}")
        self.groups = groups
        self.epsilon = epsilon
        self.activation = activation
        self.hand_written_gradient = bool(hand_written_gradient)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(
                f"GroupNormalization needs a channel count divisible by groups={self.groups}. "
                f"Received input shape {tuple(input_shape)}")
        # float32 under any policy (no autocast): they enter the float32 statistics.
        self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones",
                                     autocast=False)
        self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros",
                                    autocast=False)

    def call(self, inputs):
        gamma = ops.cast(self.gamma.value, "float32")
        beta = ops.cast(self.beta.value, "float32")
        return _group_norm(inputs, gamma, beta, self.groups, self.epsilon,
                           self.activation == "relu", self.compute_dtype,
                           self.hand_written_gradient)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon,
                "activation": self.activation,
                "hand_written_gradient": self.hand_written_gradient}


def _group_norm(inputs, gamma, beta, groups, epsilon, relu, dtype, hand_written_gradient=True):
    """GroupNorm (+ ReLU) as one multiply-add with float32 statistics; any batch and size.

    The statistics are reduced in two steps: first per channel over the pixels (a reduction
    over the outer axis of an (N, H*W, C) view, which TensorFlow's CPU kernels do at memory
    speed), then per group over that group's channels (a tiny tensor). Reducing over the
    (pixels, channels-in-group) axes of an (N, H*W, G, C/G) view in one go is the same sum
    but about three times slower. The variance is the two-pass one (mean of squared
    differences), so large means do not cancel.

    The gradient is written out (``_group_norm_backward``): automatic differentiation of
    these ops makes about thirty kernels per layer, most of them full passes; the closed
    form needs eight, and keeps only the input and the output for the backward pass.
    """
    channels = inputs.shape[-1]
    if channels is None or channels % groups:
        raise ValueError(f"GroupNorm needs a static channel count divisible by groups={groups}. "
                         f"Received input shape {tuple(inputs.shape)}")

    library = None
    if hand_written_gradient and inputs.dtype in (tf.float32, tf.bfloat16):
        library = fused.for_here()
    if library is not None:
        def core(x, gamma, beta):  # the compiled kernel (fused.py)
            return library.bit_keras_group_norm(x, gamma, beta, groups=groups, epsilon=epsilon,
                                                relu=relu)

        def grad(upstream, x, outputs, mean, rstd, gamma, beta):
            return library.bit_keras_group_norm_grad(upstream, x, mean, rstd, gamma, beta,
                                                     groups=groups, relu=relu)
    else:
        def core(x, gamma, beta):
            return _group_norm_core(x, gamma, beta, groups, epsilon, relu, dtype)

        def grad(upstream, x, outputs, mean, rstd, gamma, beta):
            return _group_norm_backward(upstream, x, outputs, mean, rstd, gamma, groups, relu)

    forward = _on_pixels(channels, core, grad)
    if hand_written_gradient:
        return tf.custom_gradient(forward)(inputs, gamma, beta)
    return forward(inputs, gamma, beta)[0]


def _on_pixels(channels, core, grad):
    """A ``tf.custom_gradient`` forward running ``core`` and ``grad`` on an (N, H*W, C) view.

    ``core(x, gamma, beta)`` gives (outputs, mean, rstd); ``grad(upstream, x, outputs, mean,
    rstd, gamma, beta)`` gives (dx, dgamma, dbeta). A backward keeps only what ``grad`` uses.
    """

    def forward(inputs, gamma, beta):
        shape = tf.shape(inputs)
        x = tf.reshape(inputs, (shape[0], -1, channels))
        outputs, mean, rstd = core(x, gamma, beta)

        def backward(upstream):
            dx, dgamma, dbeta = grad(tf.reshape(upstream, tf.shape(x)), x, outputs, mean, rstd,
                                     gamma, beta)
            return tf.reshape(dx, shape), dgamma, dbeta

        return tf.reshape(outputs, shape), backward

    return forward


def _group_norm_core(inputs, gamma, beta, groups, epsilon, relu, dtype):
    """(N, P, C) inputs -> (outputs (N, P, C) in ``dtype``, mean and rstd (N, G, 1) float32)."""
    channels = inputs.shape[-1]
    x = tf.cast(inputs, tf.float32)
    mean = _per_group(tf.reduce_mean(x, axis=1), groups)  # (N, G, 1)
    var = _per_group(tf.reduce_mean(
        tf.math.squared_difference(x, _per_channel(mean, channels)), axis=1), groups)
    rstd = tf.math.rsqrt(var + epsilon)
    scale = tf.reshape(gamma, (1, groups, -1)) * rstd  # (N, G, C/G)
    offset = tf.reshape(beta, (1, groups, -1)) - mean * scale
    scale = tf.reshape(scale, (-1, 1, channels))
    offset = tf.reshape(offset, (-1, 1, channels))
    outputs = inputs * tf.cast(scale, dtype) + tf.cast(offset, dtype)
    if relu:
        outputs = tf.nn.relu(outputs)
    return outputs, mean, rstd


def _per_group(per_channel, groups):
    """(N, C) or (N, 1, C) -> (N, G, 1): the mean over each group's channels."""
    channels = per_channel.shape[-1]
    return tf.reduce_mean(tf.reshape(per_channel, (-1, groups, channels // groups)),
                          axis=2, keepdims=True)


def _per_channel(per_group, channels):
    """(N, G, 1) -> (N, 1, C): each group's value repeated over its channels."""
    groups = per_group.shape[1]
    repeated = tf.broadcast_to(per_group, (tf.shape(per_group)[0], groups, channels // groups))
    return tf.reshape(repeated, (-1, 1, channels))


def _group_norm_backward(upstream, inputs, outputs, mean, rstd, gamma, groups, relu):
    """Gradients of GroupNorm (+ ReLU) for (inputs, gamma, beta), all in float32.

    With ``xhat = (x - mean) * rstd`` and ``dz`` the gradient at the affine output (the
    upstream gradient, zeroed where the ReLU was off), per sample and group (M elements):
    ``dx = rstd * (gamma * dz - mean(gamma * dz) - xhat * mean(gamma * dz * xhat))``,
    ``dgamma = sum(dz * xhat)``, ``dbeta = sum(dz)``. The sums over pixels are taken per
    channel first, so ``dx`` is one multiply-add per element with per-(sample, channel)
    coefficients: ``dx = dz * a + x * b + c``.
    """
    channels = inputs.shape[-1]
    x = tf.cast(inputs, tf.float32)
    dz = tf.cast(upstream, tf.float32)
    if relu:
        dz = tf.raw_ops.ReluGrad(gradients=dz, features=tf.cast(outputs, tf.float32))
    sum_dz = tf.reduce_sum(dz, axis=1, keepdims=True)  # (N, 1, C)
    sum_dz_x = tf.reduce_sum(dz * x, axis=1, keepdims=True)
    mean_c, rstd_c = _per_channel(mean, channels), _per_channel(rstd, channels)
    sum_dz_xhat = (sum_dz_x - mean_c * sum_dz) * rstd_c
    pixels = tf.cast(tf.shape(x)[1], tf.float32)
    # Means over the group's elements of gamma * dz and gamma * dz * xhat: (N, 1, C).
    mean_gdz = _per_channel(_per_group(gamma * sum_dz, groups), channels) / pixels
    mean_gdz_xhat = _per_channel(_per_group(gamma * sum_dz_xhat, groups), channels) / pixels
    a = rstd_c * gamma
    b = -rstd_c * rstd_c * mean_gdz_xhat
    c = -rstd_c * mean_gdz - b * mean_c
    dx = tf.cast(dz * a + (x * b + c), inputs.dtype)
    return dx, tf.reduce_sum(sum_dz_xhat, axis=(0, 1)), tf.reduce_sum(sum_dz, axis=(0, 1))
