"""The two layers that make a ResNet a BiT: weight-standardized convolution and GroupNorm.

Both follow the official ``bit_tf2`` code (Kolesnikov et al., arXiv 1912.11370), which no
longer runs on current Keras because it patched a private attribute of ``Conv2D``. Here the
standardization goes through a public override of ``call``.
"""

import keras
from keras import ops

# Official bit_tf2 divides by sqrt(var + 1e-10); timm uses 1e-8 (differs only for
# near-constant kernels, but a near-constant kernel is exactly where it shows).
WS_EPSILON = 1e-10
# The BiT weights were trained with GroupNorm epsilon 1e-5; Keras' own default is 1e-3.
GN_EPSILON = 1e-5
# BiT normalizes every activation with 32 groups.
GN_GROUPS = 32


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
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        per_group = channels // self.groups
        x = ops.cast(inputs, "float32")
        grouped = ops.reshape(x, (shape[0], -1, self.groups, per_group))
        mean = ops.mean(grouped, axis=(1, 3), keepdims=True)
        var = ops.mean(ops.square(grouped - mean), axis=(1, 3), keepdims=True)
        inv = ops.rsqrt(var + self.epsilon)  # (N, 1, G, 1)
        gamma = ops.reshape(ops.cast(self.gamma.value, "float32"), (1, 1, self.groups, per_group))
        beta = ops.reshape(ops.cast(self.beta.value, "float32"), (1, 1, self.groups, per_group))
        scale = gamma * inv
        offset = beta - mean * scale
        scale = ops.cast(ops.reshape(scale, (shape[0], 1, 1, channels)), self.compute_dtype)
        offset = ops.cast(ops.reshape(offset, (shape[0], 1, 1, channels)), self.compute_dtype)
        outputs = inputs * scale + offset
        if self.activation == "relu":
            outputs = ops.relu(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "groups": self.groups, "epsilon": self.epsilon,
                "activation": self.activation}
