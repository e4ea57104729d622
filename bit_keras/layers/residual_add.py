"""The residual addition of a BiT unit: ``keras.layers.Add``, faster in bfloat16.

TensorFlow's CPU ``AddV2`` on bfloat16 goes through Eigen's scalar bfloat16 arithmetic,
about a tenth of an R50x1 mixed-precision forward pass on the machine of
docs/performance.md; the compiled ``BitKerasAdd`` (``bit_keras.layers.fused``) computes
the same sums, rounded the same way, vectorized. Other dtypes, unequal shapes and machines
without the compiled kernels take ``keras.layers.Add``'s own path.
"""

import keras
import tensorflow as tf

from bit_keras.layers import fused


@keras.saving.register_keras_serializable(package="bit_keras")
class ResidualAdd(keras.layers.Add):
    """``keras.layers.Add`` of a branch and its shortcut; two bfloat16 tensors of one shape
    go through the compiled kernel where it is available (the same bits).

    Example:

    >>> y = bit_keras.layers.ResidualAdd()([branch, shortcut])
    """

    def _merge_function(self, inputs):
        if len(inputs) == 2 and all(tf.is_tensor(x) and x.dtype == tf.bfloat16 for x in inputs) \
                and inputs[0].shape.as_list() == inputs[1].shape.as_list():
            library = fused.for_here()
            if library is not None:
                return _add(library, *inputs)
        return super()._merge_function(inputs)


def _add(library, a, b):
    @tf.custom_gradient
    def add(a, b):
        def backward(upstream):
            return upstream, upstream

        return library.bit_keras_add(a, b), backward

    return add(a, b)
