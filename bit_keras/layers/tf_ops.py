"""The TensorFlow side of the BiT layers: GroupNorm with its hand-written gradient, and the
compiled kernels (``fused.py``) where a call may use them.

Imported only on Keras' TensorFlow backend (the layers compute with ``keras.ops`` on the
others). Speed (docs/performance.md): GroupNorm is the one part of a BiT that TensorFlow
does not run at near-peak speed by itself. Here it reduces its statistics per channel first
(a fast reduction) and then per group, applies gamma, beta and the normalization as one
multiply-add, and has a hand-written gradient (eight kernels instead of about thirty).
"""

import tensorflow as tf

from bit_keras.layers import fused


def group_norm(inputs, gamma, beta, groups, epsilon, relu, dtype, hand_written_gradient=True):
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


def fusable(kernel, dtype):
    return (tf.is_tensor(kernel) and kernel.dtype == tf.float32
            and (dtype is None or tf.as_dtype(dtype) in (tf.float32, tf.bfloat16)))


def fused_standardize(library, kernel, epsilon, dtype):
    @tf.custom_gradient
    def standardize(kernel):
        out, mean, rstd = library.bit_keras_standardize(kernel, T=dtype, epsilon=epsilon)

        def backward(upstream):
            return library.bit_keras_standardize_grad(upstream, kernel, mean, rstd)

        return out, backward

    return standardize(kernel)


def fused_add(library, a, b):
    @tf.custom_gradient
    def add(a, b):
        def backward(upstream):
            return upstream, upstream

        return library.bit_keras_add(a, b), backward

    return add(a, b)


def standardize(kernel, epsilon, dtype):
    """The compiled Weight Standardization where this call may use it, else None."""
    library = fused.for_here() if fusable(kernel, dtype) else None
    if library is None:
        return None
    return fused_standardize(library, kernel, epsilon, tf.as_dtype(dtype or "float32"))


def residual_add(inputs):
    """Two bfloat16 tensors of one shape through the compiled add where it may run, else None."""
    if len(inputs) == 2 and all(tf.is_tensor(x) and x.dtype == tf.bfloat16 for x in inputs) \
            and inputs[0].shape.as_list() == inputs[1].shape.as_list():
        library = fused.for_here()
        if library is not None:
            return fused_add(library, *inputs)
    return None
