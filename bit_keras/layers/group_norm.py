"""GroupNorm over NHWC inputs as BiT uses it (Wu & He 2018), fused with ReLU.

On every Keras backend the layer computes the same function: with ``keras.ops`` on JAX and
PyTorch (``group_norm`` below, differentiated automatically), and on TensorFlow through
``tf_ops.group_norm`` (a hand-written gradient, and the compiled kernels where a call may
use them; docs/performance.md).
"""

import keras
from keras import ops

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
        hand_written_gradient: on TensorFlow, differentiate through the closed-form
            backward pass (fast, the default) or through the forward ops (what exports
            trace: saving and loading take half as long). Same gradients. Other backends
            differentiate the forward ops.
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
        relu = self.activation == "relu"
        if keras.backend.backend() == "tensorflow":
            from bit_keras.layers import tf_ops
            return tf_ops.group_norm(inputs, gamma, beta, self.groups, self.epsilon, relu,
                                     self.compute_dtype, self.hand_written_gradient)
        return group_norm(inputs, gamma, beta, self.groups, self.epsilon, relu,
                          self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon,
                "activation": self.activation,
                "hand_written_gradient": self.hand_written_gradient}


def group_norm(inputs, gamma, beta, groups, epsilon, relu, dtype):
    """GroupNorm (+ ReLU) with ``keras.ops`` on any backend: float32 statistics, one
    multiply-add per element; inputs ``(N, ..., C)`` with the channels last.

    The statistics are taken per channel over the pixels first, then per group (the same
    sums as over each group's pixels and channels at once); the variance is the two-pass
    one (mean of squared differences), so large means do not cancel.
    """
    channels = inputs.shape[-1]
    if channels is None or channels % groups:
        raise ValueError(f"GroupNorm needs a static channel count divisible by groups={groups}. "
                         f"Received input shape {tuple(inputs.shape)}")
    pixels = tuple(range(1, len(inputs.shape) - 1))
    x = ops.cast(inputs, "float32")

    def per_group(per_channel):  # (N, C) -> (N, G, 1): each group's mean
        return ops.mean(ops.reshape(per_channel, (-1, groups, channels // groups)), axis=2,
                        keepdims=True)

    def on_pixels(per_group_values):  # (N, G, K) -> (N, 1, .., 1, G * K), broadcastable
        return ops.reshape(per_group_values, (-1,) + (1,) * len(pixels) + (channels,))

    mean = per_group(ops.mean(x, axis=pixels))
    repeated = ops.repeat(mean, channels // groups, axis=2)
    var = per_group(ops.mean(ops.square(x - on_pixels(repeated)), axis=pixels))
    rstd = ops.rsqrt(var + epsilon)
    scale = ops.reshape(gamma, (1, groups, -1)) * rstd  # (N, G, C/G)
    offset = ops.reshape(beta, (1, groups, -1)) - mean * scale
    outputs = inputs * ops.cast(on_pixels(scale), dtype) + ops.cast(on_pixels(offset), dtype)
    return ops.relu(outputs) if relu else outputs
