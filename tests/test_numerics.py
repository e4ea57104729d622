"""Parity of the BiT layers and whole networks with an independent float64 NumPy reference."""

import numpy as np
import numpy_bit
import pytest
import tensorflow as tf

import bit_keras
from bit_keras import layers


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))


@pytest.fixture(params=["compiled", "tensorflow"])
def kernel_path(request):
    """Runs a GroupNorm or Weight Standardization test on the compiled kernels and on the
    TensorFlow ops (bit_keras/layers/fused.py)."""
    compiled = request.param == "compiled"
    if compiled and layers.fused.library() is None:
        pytest.fail(f"the compiled kernels are unavailable: {layers.fused.status()}")
    with layers.compiled_kernels(compiled):
        yield request.param


def test_standardized_conv_matches_numpy(kernel_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 9, 5)).astype(np.float32)
    conv = layers.StandardizedConv2D(7, 3, strides=2, use_bias=False)
    conv.build(x.shape)
    kernel = rng.normal(1.0, 2.0, (3, 3, 5, 7)).astype(np.float32)
    conv.kernel.assign(kernel)
    want = numpy_bit.conv(x.astype(np.float64), numpy_bit.standardize(kernel), 2)
    assert rel_err(np.asarray(conv(x)), want) < 1e-5
    # The stored variable stays the raw kernel.
    np.testing.assert_array_equal(conv.kernel.numpy(), kernel)


def test_standardized_conv_keeps_keras_call_channels_first_with_bias():
    # The standardization goes through Conv2D.convolution_op, so Keras' own call adds the
    # bias in the data format's layout (a copied call dropped the channels_first reshape).
    rng = np.random.default_rng(1)
    # NCHW: 5 channels, 7 x 9. (An output width equal to the filter count would hit a Keras
    # 3.15 bug: ops.add then takes the bias for an NHWC one, whatever the data format.)
    x = rng.normal(size=(2, 5, 7, 9)).astype(np.float32)
    conv = layers.StandardizedConv2D(4, 3, use_bias=True, data_format="channels_first",
                                     activation="relu")
    conv.build(x.shape)
    kernel = rng.normal(0.5, 2.0, (3, 3, 5, 4)).astype(np.float32)
    bias = rng.normal(0, 1, 4).astype(np.float32)
    conv.kernel.assign(kernel)
    conv.bias.assign(bias)
    nhwc = np.transpose(x, (0, 2, 3, 1)).astype(np.float64)
    want = numpy_bit.relu(numpy_bit.conv(nhwc, numpy_bit.standardize(kernel)) + bias)
    # TensorFlow's own CPU kernels have no NCHW convolution (oneDNN's and XLA's do).
    got = np.transpose(np.asarray(tf.function(conv, jit_compile=True)(x)), (0, 2, 3, 1))
    assert got.shape == want.shape == (2, 5, 7, 4)
    assert rel_err(got, want) < 1e-5


def test_group_norm_without_the_hand_written_gradient_has_the_same_gradients():
    # Exports trace GroupNorm with hand_written_gradient=False (plain ops in the artefact).
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(0.3, 1.5, (2, 4, 4, 16)), tf.float32)
    weights = tf.constant(rng.normal(0, 1, (2, 4, 4, 16)), tf.float32)
    grads = []
    for hand_written in (True, False):
        gn = layers.GroupNormalization(4, activation="relu", hand_written_gradient=hand_written)
        gn.build(x.shape)
        gn.gamma.assign(np.linspace(0.5, 1.5, 16, dtype=np.float32))
        gn.beta.assign(np.linspace(-0.3, 0.3, 16, dtype=np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(gn(x) * weights)
        grads.append([np.asarray(g) for g in tape.gradient(value, [x, gn.gamma, gn.beta])])
    for a, b in zip(*grads):
        assert rel_err(b, a) < 1e-5


def test_given_standardized_kernels_replace_the_standardization_in_this_thread_only():
    import threading
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 5, 5, 4)).astype(np.float32)
    conv = layers.StandardizedConv2D(3, 3, use_bias=False)
    conv.build(x.shape)
    given = rng.normal(size=(3, 3, 4, 3)).astype(np.float32)  # not standardized: it shows
    own = np.asarray(conv(x))
    seen_elsewhere = []
    with layers.given_standardized_kernels({conv: tf.constant(given)}):
        inside = np.asarray(conv(x))
        thread = threading.Thread(target=lambda: seen_elsewhere.append(np.asarray(conv(x))))
        thread.start()
        thread.join()
    assert rel_err(inside, numpy_bit.conv(x.astype(np.float64), given.astype(np.float64), 1)) < 1e-5
    np.testing.assert_array_equal(seen_elsewhere[0], own)
    np.testing.assert_array_equal(np.asarray(conv(x)), own)  # and after the context


def test_mixed_precision_standardizes_the_float32_kernel_and_rounds_once(kernel_path):
    # Keras would hand call() the kernel already rounded to bfloat16; the standardization
    # must see the float32 weights, inside call() as outside (batch_split, folding).
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1, 6, 6, 8)).astype(np.float32)
    conv = layers.StandardizedConv2D(16, 3, use_bias=False, dtype="mixed_bfloat16")
    conv.build(x.shape)
    conv.kernel.assign(rng.normal(0.3, 1.0, (3, 3, 8, 16)).astype(np.float32))
    got = np.asarray(tf.cast(conv(x), tf.float32))
    kernel = tf.constant(conv.kernel.numpy())  # a tensor: the path under test takes it

    def conv_bf16(k):
        return np.asarray(tf.cast(tf.nn.conv2d(tf.cast(x, tf.bfloat16), tf.cast(k, tf.bfloat16),
                                               1, "VALID"), tf.float32))

    np.testing.assert_array_equal(got, conv_bf16(layers.standardize_kernel(kernel)))
    rounded_first = tf.cast(tf.cast(kernel, tf.bfloat16), tf.float32)
    assert not np.array_equal(got, conv_bf16(layers.standardize_kernel(rounded_first)))
    np.testing.assert_array_equal(np.asarray(conv.standardized_kernel()),
                                  np.asarray(layers.standardize_kernel(kernel)))


def test_ws_epsilon_is_the_official_one(kernel_path):
    # A near-constant kernel: 1e-10 (official) and 1e-8 (timm) give clearly different outputs.
    assert layers.WS_EPSILON == 1e-10
    kernel = np.random.default_rng(0).normal(0, 1e-5, (1, 1, 16, 1)).astype(np.float32)
    got = np.asarray(layers.standardize_kernel(tf.constant(kernel)))
    want = numpy_bit.standardize(kernel, eps=1e-10)
    wrong = numpy_bit.standardize(kernel, eps=1e-8)
    assert np.allclose(got, want, rtol=1e-3)
    assert not np.allclose(got, wrong, rtol=1e-2)


def test_group_norm_matches_numpy(kernel_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (2, 5, 6, 64)).astype(np.float32)
    gn = layers.GroupNormalization(32, activation="relu")
    gn.build(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 64), rng.normal(0, 0.3, 64)
    gn.gamma.assign(gamma.astype(np.float32))
    gn.beta.assign(beta.astype(np.float32))
    want = numpy_bit.relu(numpy_bit.group_norm(x.astype(np.float64), gamma, beta, 32))
    assert rel_err(np.asarray(gn(x)), want) < 1e-5


def _numeric_gradients(f, arrays, eps=1e-6):
    """Central differences of the scalar f(*arrays) with respect to each array, float64."""
    grads = []
    for i, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            plus, minus = [b.copy() for b in arrays], [b.copy() for b in arrays]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (f(*plus) - f(*minus)) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("relu,groups", [(True, 4), (False, 8)])
def test_group_norm_gradients_match_numpy_finite_differences(relu, groups, kernel_path):
    # The layer's gradient is written out by hand (layers._group_norm_backward); check it
    # for the input, gamma and beta against float64 central differences of the NumPy
    # reference, with a weighted-sum loss so every output position matters.
    rng = np.random.default_rng(0)
    x = rng.normal(0.7, 2.0, (2, 3, 4, 16))
    gamma, beta = rng.uniform(0.5, 1.5, 16), rng.normal(0, 0.3, 16)
    weights = rng.normal(0, 1, x.shape)

    def loss(x, gamma, beta):
        y = numpy_bit.group_norm(x, gamma, beta, groups)
        return np.sum((numpy_bit.relu(y) if relu else y) * weights)

    want = _numeric_gradients(loss, [x, gamma, beta])
    gn = layers.GroupNormalization(groups, activation="relu" if relu else None)
    gn.build(x.shape)
    gn.gamma.assign(gamma.astype(np.float32))
    gn.beta.assign(beta.astype(np.float32))
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        value = tf.reduce_sum(gn(inputs) * weights.astype(np.float32))
    got = tape.gradient(value, [inputs, gn.gamma, gn.beta])
    assert abs(float(value) - loss(x, gamma, beta)) < 1e-4 * abs(loss(x, gamma, beta))
    for name, g, w in zip(("inputs", "gamma", "beta"), got, want):
        assert rel_err(np.asarray(g), w) < 1e-4, name


def test_group_norm_gradient_under_bfloat16_is_rounded_only_once(kernel_path):
    # Mixed precision: activations and the incoming gradient are bfloat16, but the backward
    # arithmetic is float32, so the input gradient is exact up to its final rounding to
    # bfloat16 (half a unit, 2^-9 relative). Doing the backward in bfloat16 gives ~7e-3.
    rng = np.random.default_rng(1)

    def bf16(a):
        return np.asarray(tf.cast(tf.cast(a, tf.bfloat16), tf.float32), dtype=np.float64)

    x, weights = bf16(rng.normal(0.5, 2.0, (2, 4, 4, 32))), bf16(rng.normal(0, 1, (2, 4, 4, 32)))
    want = _numeric_gradients(
        lambda x: np.sum(numpy_bit.group_norm(x, 1.0, 0.0, 8) * weights), [x], eps=1e-5)[0]
    gn = layers.GroupNormalization(8, dtype="mixed_bfloat16")
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        value = tf.reduce_sum(tf.cast(gn(inputs), tf.float32) * weights.astype(np.float32))
    assert rel_err(np.asarray(tape.gradient(value, inputs)), want) < 4e-3


def test_group_norm_epsilon_is_bits_not_keras_default(kernel_path):
    assert layers.GN_EPSILON == 1e-5
    # Small-variance groups: eps 1e-3 would shrink the output visibly.
    x = np.random.default_rng(0).normal(0, 0.01, (1, 4, 4, 32)).astype(np.float32)
    got = np.asarray(layers.GroupNormalization(32)(x))
    want = numpy_bit.group_norm(x.astype(np.float64), 1.0, 0.0, 32, eps=1e-5)
    wrong = numpy_bit.group_norm(x.astype(np.float64), 1.0, 0.0, 32, eps=1e-3)
    assert rel_err(got, want) < 1e-4
    assert rel_err(got, wrong) > 0.1


def test_group_norm_statistics_stay_float32_under_bfloat16(kernel_path):
    # A large mean and small spread: bfloat16 statistics (8 bits of mantissa) lose the spread
    # entirely; float32 statistics keep it.
    rng = np.random.default_rng(0)
    x = (100.0 + rng.normal(0, 1.0, (1, 8, 8, 32))).astype(np.float32)
    gn = layers.GroupNormalization(32, dtype="mixed_bfloat16")
    got = np.asarray(gn(x), dtype=np.float64)
    want = numpy_bit.group_norm(x.astype(np.float64), 1.0, 0.0, 32)
    # The input itself is rounded to bfloat16 (spacing 0.5 at 100), so compare loosely,
    # but far tighter than bfloat16 statistics could reach.
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.95


def test_group_norm_rejects_bad_groups():
    with pytest.raises(ValueError, match="divisible by groups=32"):
        layers.GroupNormalization(32)(np.zeros((1, 2, 2, 48), np.float32))
    with pytest.raises(ValueError, match="groups must be a positive int"):
        layers.GroupNormalization(0)


@pytest.mark.parametrize("units,width,base,groups", [
    ((3, 4, 6, 3), 1, 8, 4),     # R50 family
    ((3, 4, 23, 3), 1, 8, 4),    # R101 family
    ((3, 8, 36, 3), 1, 8, 4),    # R152 family
    ((1, 1, 1, 1), 2, 16, 8),    # widths 2, 3, 4
    ((1, 1, 1, 1), 3, 16, 8),
    ((1, 1, 1, 1), 4, 16, 8),
    ((1, 1, 1, 1), 1, 32, 32),   # BiT's own 32 groups
])
def test_network_matches_numpy(units, width, base, groups):
    weights = numpy_bit.random_weights(units, width, 7, base=base, seed=sum(units) + width)
    model = bit_keras.resnet_v2(units, width, num_classes=7, base_filters=base, groups=groups)
    bit_keras.load_weights(model, weights)
    images = np.random.default_rng(2).uniform(0, 1, (2, 40, 36, 3)).astype(np.float32)
    want = numpy_bit.forward(weights, images, groups=groups)
    got = np.asarray(model(images))
    assert rel_err(got, want) < 1e-4


def test_model_rescales_images_from_unit_range(tiny_model, images):
    weights = numpy_bit.random_weights((1, 1, 1, 1), 1, 5, base=16)
    bit_keras.load_weights(tiny_model, weights)
    # The reference maps [0, 1] to [-1, 1]; feeding [-1, 1] to the model would be wrong.
    want = numpy_bit.forward(weights, images, groups=8)
    assert rel_err(np.asarray(tiny_model(images)), want) < 1e-4
    assert rel_err(np.asarray(tiny_model(images * 2 - 1)), want) > 1e-2


def test_features_are_pre_logits():
    weights = numpy_bit.random_weights((1, 1, 1, 1), 1, 0, base=16)
    model = bit_keras.resnet_v2((1, 1, 1, 1), 1, include_top=False, base_filters=16, groups=8)
    bit_keras.load_weights(model, weights)
    images = np.random.default_rng(3).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    got = np.asarray(model(images))
    assert got.shape == (3, 16 * 32)
    assert rel_err(got, numpy_bit.forward(weights, images, groups=8, include_top=False)) < 1e-4


def test_every_weight_gets_a_gradient_and_nothing_is_nan(tiny_model, images):
    import tensorflow as tf
    bit_keras.load_weights(tiny_model, numpy_bit.random_weights((1, 1, 1, 1), 1, 5, base=16))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tiny_model(images, training=True) ** 2)
    grads = tape.gradient(loss, tiny_model.trainable_variables)
    assert all(g is not None for g in grads)
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert all(np.any(g != 0) for g in grads)


@pytest.mark.slow
def test_real_size_r50x1_matches_numpy():
    weights = numpy_bit.random_weights((3, 4, 6, 3), 1, 10)
    model = bit_keras.build("R50x1", num_classes=10)
    bit_keras.load_weights(model, weights)
    images = np.random.default_rng(2).uniform(0, 1, (1, 64, 64, 3)).astype(np.float32)
    assert rel_err(np.asarray(model(images)), numpy_bit.forward(weights, images)) < 1e-4
