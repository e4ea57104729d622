"""The residual addition of a BiT unit: ``keras.layers.Add``, faster in bfloat16.

TensorFlow's CPU ``AddV2`` on bfloat16 goes through Eigen's scalar bfloat16 arithmetic,
about a tenth of an R50x1 mixed-precision forward pass on the machine of
docs/performance.md; the compiled ``BitKerasAdd`` (``bit_keras.layers.fused``) computes
the same sums, rounded the same way, vectorized. Other dtypes, unequal shapes and machines
without the compiled kernels, and the other Keras backends, take ``keras.layers.Add``'s own
path.
"""

import keras


@keras.saving.register_keras_serializable(package="bit_keras")
class ResidualAdd(keras.layers.Add):
    """``keras.layers.Add`` of a branch and its shortcut; two bfloat16 tensors of one shape
    go through the compiled kernel where it is available (the same bits).

    Example:

    >>> y = bit_keras.layers.ResidualAdd()([branch, shortcut])
    """

    def _merge_function(self, inputs):
        if keras.backend.backend() == "tensorflow":
            from bit_keras.layers import tf_ops
            added = tf_ops.residual_add(inputs)
            if added is not None:
                return added
        return super()._merge_function(inputs)
