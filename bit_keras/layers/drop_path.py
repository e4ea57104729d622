"""Stochastic depth (Huang et al. 2016): a residual branch dropped per example in training.

The form timm and keras-hub use ("drop path"): in training each example's branch is kept
with probability ``1 - rate`` and scaled by ``1 / (1 - rate)``, so its expectation is
unchanged; at inference the layer is the identity. Written with ``keras.ops`` and
``keras.random``, so it runs on every backend.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="bit_keras")
class DropPath(keras.layers.Layer):
    """Drops a residual branch per example with probability ``rate`` in training.

    Args:
        rate: the drop probability, in [0, 1).
        seed: an int seed for the layer's random draws, or None.
        **kwargs: base layer arguments (``name``, ``dtype``).

    Example:

    >>> branch = bit_keras.layers.DropPath(0.1)(branch, training=True)
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"rate must be a number in [0, 1). Received: rate={rate!r}")
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        draw = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = ops.cast(ops.less(draw, keep), inputs.dtype)
        return inputs * mask / ops.cast(keep, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
