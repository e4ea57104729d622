"""Weight-standardized convolution (Qiao et al. 2019), as BiT uses it (arXiv 1912.11370).

The official ``bit_tf2`` code patched the private ``Conv2D._convolution_op`` and no longer
runs on current Keras; here the standardization goes through the public hook
``Conv2D.convolution_op``, so Keras' own ``call`` (bias, data formats, activation) is kept.
"""

import contextlib
import threading

import keras
from keras import ops

# Official bit_tf2 divides by sqrt(var + 1e-10); timm uses 1e-8 (differs only for
# near-constant kernels, but a near-constant kernel is exactly where it shows).
WS_EPSILON = 1e-10


def standardize_kernel(kernel, epsilon=WS_EPSILON, dtype=None):
    """Weight-standardizes an HWIO kernel per output channel over (H, W, C_in).

    Uses the population variance, as ``tf.nn.moments`` does in the official code. With
    ``keras.ops`` on every backend; on TensorFlow a float32 kernel goes through the compiled
    kernel where the call may use it (``bit_keras.layers.fused``: two memory passes, the
    bfloat16 result written directly), which computes the same function.

    Args:
        kernel: the raw kernel, HWIO (any rank; the last axis is the output channel).
        epsilon: added to the variance before the square root.
        dtype: the result's dtype (default: the kernel's); the arithmetic is the kernel's.
    """
    if keras.backend.backend() == "tensorflow":
        from bit_keras.layers import tf_ops
        compiled = tf_ops.standardize(kernel, epsilon, dtype)
        if compiled is not None:
            return compiled
    axes = tuple(range(len(kernel.shape) - 1))
    mean = ops.mean(kernel, axis=axes, keepdims=True)
    centered = kernel - mean
    var = ops.mean(ops.square(centered), axis=axes, keepdims=True)
    standardized = centered * ops.rsqrt(var + epsilon)
    return standardized if dtype is None else ops.cast(standardized, dtype)


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

    def add_weight(self, *args, **kwargs):
        # Under a mixed-precision policy Keras would hand the convolution the kernel already
        # rounded to the compute dtype; the standardization must see the float32 weights
        # (and round once), whether it runs here or outside (``batch_split`` steps,
        # ``fold_standardization``). The bias is left to Keras' autocast.
        if kwargs.get("name") == "kernel":
            kwargs["autocast"] = False
        return super().add_weight(*args, **kwargs)

    def standardized_kernel(self):
        """The kernel as the convolution sees it, float32."""
        return standardize_kernel(ops.cast(self.kernel, "float32"), self.ws_epsilon)

    def convolution_op(self, inputs, kernel):
        standardized = _given_kernels().get(id(self))
        if standardized is None:
            standardized = standardize_kernel(ops.cast(kernel, "float32"), self.ws_epsilon,
                                              dtype=self.compute_dtype)
        return super().convolution_op(inputs, ops.cast(standardized, self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "ws_epsilon": self.ws_epsilon}


_GIVEN = threading.local()  # per thread: MirroredStrategy traces each replica in its own


def _given_kernels():
    return getattr(_GIVEN, "kernels", {})


@contextlib.contextmanager
def given_standardized_kernels(kernels):
    """Within this context, these convolutions use the given standardized kernels.

    Weight standardization is a function of the weights alone, so a step that runs the
    model several times with the same weights (``batch_split`` micro-batches) can
    standardize once, take gradients with respect to the standardized kernels, sum them,
    and differentiate the standardization once (``bit_keras.training.make_train_step``).

    Args:
        kernels: ``{layer: tensor}`` for ``StandardizedConv2D`` layers; each tensor is what
            ``layer.standardized_kernel()`` returns (float32, HWIO). Applies to calls traced
            or run in this thread while the context is open.

    Example:

    >>> kernels = {conv: conv.standardized_kernel()}
    >>> with bit_keras.layers.given_standardized_kernels(kernels):
    ...     y = conv(x)  # uses kernels[conv]
    """
    previous = _given_kernels()
    _GIVEN.kernels = {**previous, **{id(layer): k for layer, k in kernels.items()}}
    try:
        yield
    finally:
        _GIVEN.kernels = previous
