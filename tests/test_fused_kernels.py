"""The compiled kernels (bit_keras/layers/fused.py): built, used, exact, optional.

tests/test_numerics.py runs its GroupNorm and Weight Standardization checks (float64 NumPy
reference, finite differences, bfloat16 rounding) on both the compiled kernels and the
TensorFlow ops; here:
the awkward shapes, large means, that the kernel is what actually runs (and what does not
reach an export), and that a machine that cannot build it still gets GroupNorm.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import bit_keras
from bit_keras import layers
from bit_keras.layers import fused


@pytest.fixture(scope="module")
def library():
    lib = fused.library()
    if lib is None:
        pytest.fail(f"the compiled kernels are unavailable: {fused.status()}")
    return lib


def _reference(x, gamma, beta, groups, relu, upstream):
    """float64 GroupNorm (+ ReLU) output and its gradients for (x, gamma, beta)."""
    n, h, w, c = x.shape
    xg = x.reshape(n, h * w, groups, c // groups)
    mean = xg.mean(axis=(1, 3), keepdims=True)
    rstd = 1.0 / np.sqrt(xg.var(axis=(1, 3), keepdims=True) + 1e-5)
    xhat = ((xg - mean) * rstd).reshape(x.shape)
    z = xhat * gamma + beta
    y = np.maximum(z, 0.0) if relu else z
    dz = upstream * (z > 0) if relu else upstream
    dxhat = (dz * gamma).reshape(xg.shape)
    xhat_g = xhat.reshape(xg.shape)
    dx = rstd * (dxhat - dxhat.mean(axis=(1, 3), keepdims=True)
                 - xhat_g * (dxhat * xhat_g).mean(axis=(1, 3), keepdims=True))
    return y, dx.reshape(x.shape), (dz * xhat).sum(axis=(0, 1, 2)), dz.sum(axis=(0, 1, 2))


def _layer_outputs(x, gamma, beta, groups, relu, upstream, dtype="float32"):
    gn = layers.GroupNormalization(groups, activation="relu" if relu else None, dtype=dtype)
    gn.build(x.shape)
    gn.gamma.assign(gamma.astype(np.float32))
    gn.beta.assign(beta.astype(np.float32))
    inputs = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = tf.cast(gn(inputs), tf.float32)
        loss = tf.reduce_sum(y * upstream.astype(np.float32))
    grads = tape.gradient(loss, [inputs, gn.gamma, gn.beta])
    return [np.asarray(t, np.float64) for t in [y, *grads]]


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-30))


# (shape, groups): fewer pixels than one work block, a ragged last block, one pixel,
# one channel per group, BiT's 32 groups of 2048 channels.
SHAPES = [((1, 3, 3, 16), 8), ((3, 5, 7, 32), 4), ((2, 1, 1, 256), 8), ((2, 6, 6, 8), 8),
          ((1, 2, 3, 2048), 32)]


@pytest.mark.parametrize("shape,groups", SHAPES)
@pytest.mark.parametrize("relu", [True, False])
def test_compiled_kernel_matches_float64_on_awkward_shapes(library, shape, groups, relu):
    rng = np.random.default_rng(sum(shape) + groups)
    x = rng.normal(0.5, 2.0, shape)
    gamma, beta = rng.uniform(0.5, 1.5, shape[-1]), rng.normal(0, 0.3, shape[-1])
    upstream = rng.normal(0, 1, shape)
    want = _reference(x, gamma, beta, groups, relu, upstream)
    with layers.compiled_kernels(True):
        got = _layer_outputs(x, gamma, beta, groups, relu, upstream)
    for name, g, w in zip(("y", "dx", "dgamma", "dbeta"), got, want):
        assert rel_err(g, w) < 2e-5, name


def test_large_means_keep_their_variance(library):
    # Sums of squares are float64: a mean 1000 spreads apart cancels in float32 one-pass
    # sums (var = E[x^2] - mean^2), not in these.
    rng = np.random.default_rng(3)
    x = 1000.0 + rng.normal(0, 1.0, (2, 8, 8, 32))
    gamma, beta, upstream = np.ones(32), np.zeros(32), rng.normal(0, 1, x.shape)
    want = _reference(x, gamma, beta, 8, False, upstream)
    with layers.compiled_kernels(True):
        got = _layer_outputs(x, gamma, beta, 8, False, upstream)
    # x itself is rounded to float32 (spacing 6e-5 at 1000), hence not 1e-6.
    assert rel_err(got[0], want[0]) < 2e-4
    assert rel_err(got[1], want[1]) < 2e-3


def test_bfloat16_kernel_rounds_once(library):
    rng = np.random.default_rng(4)
    x = np.asarray(tf.cast(tf.cast(rng.normal(0.5, 2.0, (2, 4, 4, 32)), tf.bfloat16),
                           tf.float64))
    gamma, beta, upstream = rng.uniform(0.5, 1.5, 32), rng.normal(0, 0.3, 32), np.ones(x.shape)
    want = _reference(x, gamma, beta, 8, True, upstream)
    with layers.compiled_kernels(True):
        got = _layer_outputs(x, gamma, beta, 8, True, upstream, dtype="mixed_bfloat16")
        as_float32 = _layer_outputs(x, gamma, beta, 8, True, upstream)
    assert rel_err(got[0], want[0]) < 2 ** -8  # half a bfloat16 unit, plus float32 noise
    assert rel_err(got[1], want[1]) < 4e-3
    # Rounded once: the float32 kernel's output on the same values, rounded to bfloat16.
    np.testing.assert_array_equal(
        got[0], np.asarray(tf.cast(tf.cast(as_float32[0], tf.bfloat16), tf.float64)))


def _op_types(fn, *args):
    graph = tf.function(fn).get_concrete_function(*args).graph
    types = {op.type for op in graph.get_operations()}
    for f in graph.as_graph_def().library.function:  # custom_gradient bodies
        types |= {node.op for node in f.node_def}
    return types


def test_the_kernel_is_what_runs_forward_and_backward_and_can_be_turned_off(library):
    gn = layers.GroupNormalization(4, activation="relu")
    x = tf.random.normal((2, 4, 4, 16))
    gn(x)

    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(gn(x))
        return tape.gradient(y, [x, gn.gamma])

    with layers.compiled_kernels(True):
        on = _op_types(step, x)
    with layers.compiled_kernels(False):
        off = _op_types(step, x)
    assert {"BitKerasGroupNorm", "BitKerasGroupNormGrad"} <= on
    assert not {t for t in off if t.startswith("BitKeras")}
    assert fused.status() == "on"


def test_exports_hold_no_compiled_op(library, tmp_path):
    model = bit_keras.resnet_v2((1, 1, 1, 1), 1, num_classes=3, base_filters=16, groups=8)
    model(np.zeros((1, 32, 32, 3), np.float32))
    bit_keras.export(model, str(tmp_path / "sm"), kind="classifier")
    with open(tmp_path / "sm" / "saved_model.pb", "rb") as f:
        assert b"BitKeras" not in f.read()
    assert fused.status() == "on"  # turned off for the export only
    # A process that never imports bit_keras (so never loads the kernel) serves it.
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        m = tf.saved_model.load({str(tmp_path / 'sm')!r})
        out = m.signatures["serving_default"](images=tf.zeros((1, 32, 32, 3)))
        print(sorted(out))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def _standardize_reference(kernel, upstream):
    """float64 Weight Standardization per output channel and its gradient."""
    axes = tuple(range(kernel.ndim - 1))
    mean = kernel.mean(axis=axes, keepdims=True)
    rstd = 1.0 / np.sqrt(kernel.var(axis=axes, keepdims=True) + 1e-10)
    what = (kernel - mean) * rstd
    grad = rstd * (upstream - upstream.mean(axis=axes, keepdims=True)
                   - what * (upstream * what).mean(axis=axes, keepdims=True))
    return what, grad


# A 3x3 kernel, rows not a multiple of the work block, a 7x7 stem, a 1x1 with many rows.
KERNELS = [(3, 3, 16, 32), (1, 1, 100, 24), (7, 7, 3, 64), (1, 1, 1024, 8)]


@pytest.mark.parametrize("shape", KERNELS)
def test_compiled_standardization_matches_float64(library, shape):
    rng = np.random.default_rng(sum(shape))
    kernel = rng.normal(0.2, 1.5, shape)
    upstream = rng.normal(0, 1, shape)
    want, want_grad = _standardize_reference(kernel, upstream)
    k = tf.constant(kernel, tf.float32)
    with layers.compiled_kernels(True), tf.GradientTape() as tape:
        tape.watch(k)
        got = layers.standardize_kernel(k)
        loss = tf.reduce_sum(got * upstream.astype(np.float32))
    grad = tape.gradient(loss, k)
    assert rel_err(np.asarray(got, np.float64), want) < 2e-6
    assert rel_err(np.asarray(grad, np.float64), want_grad) < 2e-5
    # bfloat16 written directly: the float32 result rounded once, to nearest even.
    with layers.compiled_kernels(True):
        direct = layers.standardize_kernel(k, dtype="bfloat16")
    assert direct.dtype == tf.bfloat16
    np.testing.assert_array_equal(np.asarray(tf.cast(direct, tf.float32)),
                                  np.asarray(tf.cast(tf.cast(got, tf.bfloat16), tf.float32)))


def test_the_standardization_kernel_is_what_runs_and_can_be_turned_off(library):
    conv = layers.StandardizedConv2D(8, 3, use_bias=False)
    x = tf.random.normal((1, 5, 5, 4))
    conv(x)

    def step(x):
        with tf.GradientTape() as tape:
            y = tf.reduce_sum(conv(x))
        return tape.gradient(y, conv.kernel)

    with layers.compiled_kernels(True):
        on = _op_types(step, x)
    with layers.compiled_kernels(False):
        off = _op_types(step, x)
    assert {"BitKerasStandardize", "BitKerasStandardizeGrad"} <= on
    assert not {t for t in off if t.startswith("BitKeras")}


def test_without_a_compiler_group_norm_falls_back_to_tensorflow_ops(tmp_path):
    script = textwrap.dedent("""
        import numpy as np
        import bit_keras
        from bit_keras.layers import fused
        y = bit_keras.layers.GroupNormalization(4)(np.ones((1, 2, 2, 8), np.float32))
        print(fused.status())
        print(float(np.abs(np.asarray(y)).max()))
    """)
    env = {**os.environ, "CXX": "no-such-compiler", "BIT_KERAS_KERNEL_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    status, value = done.stdout.strip().splitlines()[-2:]
    assert status.startswith("unavailable: no C++ compiler 'no-such-compiler'")
    assert float(value) == 0.0  # a constant input normalizes to beta = 0
    assert "GroupNorm and Weight Standardization run on TensorFlow ops" in done.stderr
    assert not os.listdir(tmp_path)  # no half-built file left


def test_a_build_failure_leaves_no_file_and_is_reported(tmp_path):
    fake = tmp_path / "cxx"
    fake.write_text("#!/bin/sh\necho 'fatal error: pretend' >&2\nexit 1\n")
    fake.chmod(0o755)
    script = "import numpy as np, bit_keras\nfrom bit_keras.layers import fused\n" \
             "bit_keras.layers.GroupNormalization(4)(np.ones((1, 2, 2, 8), np.float32))\n" \
             "print(fused.status())"
    env = {**os.environ, "CXX": str(fake), "BIT_KERAS_KERNEL_DIR": str(tmp_path / "k")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "failed to build" in done.stdout and "pretend" in done.stdout
    assert os.listdir(tmp_path / "k") == []


def test_xla_compiled_functions_use_the_tensorflow_ops(library):
    # XLA cannot compile a custom op: inside jit_compile the layers take the TensorFlow ops.
    conv = layers.StandardizedConv2D(8, 3, use_bias=False)
    gn = layers.GroupNormalization(4, activation="relu")
    x = tf.random.normal((2, 6, 6, 4))

    def f(x):
        return gn(conv(x))

    want = f(x)
    got = tf.function(f, jit_compile=True)(x)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
    assert not {t for t in _op_types(tf.function(f, jit_compile=True), x)
                if t.startswith("BitKeras")}


def test_a_damaged_cached_build_is_built_again(tmp_path):
    script = textwrap.dedent("""
        import os, numpy as np, bit_keras
        from bit_keras.layers import fused
        path = fused.library_path()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"not a shared library")  # e.g. a disk that filled up
        bit_keras.layers.GroupNormalization(4)(np.ones((1, 2, 2, 8), np.float32))
        print(fused.status())
        print(os.path.getsize(path) > 10000)
    """)
    env = {**os.environ, "BIT_KERAS_KERNEL_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["on", "True"]
    assert "rebuilding the damaged kernel file" in done.stderr
    assert "compiling the GroupNorm and Weight Standardization kernels" in done.stderr


def test_a_cut_cached_build_is_not_loaded(library, tmp_path):
    # A build cut short (a full disk, a killed copy) kills a process that loads it with
    # SIGBUS and no message: its bytes are checked against the digest recorded at build time.
    # The rebuild is made to fail here (a compiler that refuses), so the check alone keeps the
    # process alive: it warns, falls back to the TensorFlow ops and computes GroupNorm.
    import shutil
    built = fused.library_path()
    name = os.path.basename(built)
    with open(built, "rb") as f:
        data = f.read()
    fake = tmp_path / "cxx"
    fake.write_text("#!/bin/sh\necho 'fatal error: no compiler today' >&2\nexit 1\n")
    fake.chmod(0o755)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / name).write_bytes(data[: len(data) // 2])
    shutil.copy(built + ".sha256", cache / (name + ".sha256"))
    script = ("import numpy as np, bit_keras\nfrom bit_keras.layers import fused\n"
              "y = bit_keras.layers.GroupNormalization(4)(np.ones((1, 2, 2, 8), np.float32))\n"
              "print(fused.status())\nprint(float(np.abs(np.asarray(y)).max()))")
    # The cache key holds $CXX: the same name as the real build only with the same CXX, so
    # the fake compiler is reached through PATH under the real compiler's name.
    compiler = os.environ.get("CXX", "g++")
    (tmp_path / compiler).symlink_to(fake)
    env = {**os.environ, "BIT_KERAS_KERNEL_DIR": str(cache),
           "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    status, value = done.stdout.strip().splitlines()[-2:]
    assert "differ from the recorded digest" in done.stderr
    assert status.startswith("unavailable:") and "no compiler today" in status
    assert float(value) == 0.0


def test_results_do_not_depend_on_the_thread_count(library, tmp_path):
    # Fixed work blocks, partial sums added in block order: one thread or two, same bits.
    script = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
        from bit_keras import layers
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(0.5, 2.0, (3, 17, 19, 64)).astype(np.float32))
        k = tf.constant(rng.normal(0.1, 1.0, (3, 3, 64, 128)).astype(np.float32))
        u = rng.normal(size=x.shape).astype(np.float32)
        v = rng.normal(size=k.shape).astype(np.float32)
        gn = layers.GroupNormalization(32, activation="relu")
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            y = gn(x)
            w = layers.standardize_kernel(k)
            loss = tf.reduce_sum(y * u) + tf.reduce_sum(w * v)
        grads = tape.gradient(loss, [x, k, gn.gamma, gn.beta])
        assert layers.fused.status() == "on"
        np.savez(sys.argv[2], y=np.asarray(y), w=np.asarray(w), *[np.asarray(g) for g in grads])
    """)
    outputs = []
    for threads in (1, 2):
        out = tmp_path / f"out{threads}.npz"
        done = subprocess.run([sys.executable, "-c", script, str(threads), str(out)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(np.load(out))
    for name in outputs[0].files:
        np.testing.assert_array_equal(outputs[0][name], outputs[1][name], err_msg=name)


def test_bfloat16_residual_add_is_eigens_sum_bit_for_bit(library):
    rng = np.random.default_rng(5)
    a = tf.cast(rng.normal(0, 3, (2, 7, 9, 48)), tf.bfloat16)
    b = tf.cast(rng.normal(0, 3, (2, 7, 9, 48)), tf.bfloat16)
    add = layers.ResidualAdd(dtype="mixed_bfloat16")

    def f(a, b):
        with tf.GradientTape() as tape:
            tape.watch([a, b])
            y = add([a, b])
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * 3.0)
        return y, tape.gradient(loss, [a, b])

    with layers.compiled_kernels(True):
        y, grads = f(a, b)
        on = _op_types(f, a, b)
    with layers.compiled_kernels(False):
        want, want_grads = f(a, b)
    assert "BitKerasAdd" in on and y.dtype == tf.bfloat16
    np.testing.assert_array_equal(np.asarray(tf.cast(y, tf.float32)),
                                  np.asarray(tf.cast(want, tf.float32)))
    for g, w in zip(grads, want_grads):
        np.testing.assert_array_equal(np.asarray(tf.cast(g, tf.float32)),
                                      np.asarray(tf.cast(w, tf.float32)))
    # float32, or shapes that broadcast, are keras.layers.Add's own.
    assert "BitKerasAdd" not in _op_types(lambda a, b: layers.ResidualAdd()([a, b]),
                                          tf.cast(a, tf.float32), tf.cast(b, tf.float32))


def test_the_ops_refuse_parameters_of_the_wrong_size(library):
    x = tf.zeros((1, 4, 8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="gamma must hold 8 values"):
        library.bit_keras_group_norm(x, tf.ones(4), tf.zeros(8), groups=4, epsilon=1e-5,
                                     relu=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="do not divide by groups=3"):
        library.bit_keras_group_norm(x, tf.ones(8), tf.zeros(8), groups=3, epsilon=1e-5,
                                     relu=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="mean must hold 3 values"):
        library.bit_keras_standardize_grad(tf.zeros((2, 3)), tf.zeros((2, 3)), tf.zeros(2),
                                           tf.ones(3))
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match="rank"):
        library.bit_keras_standardize(tf.zeros(()), T=tf.float32, epsilon=1e-10)


def test_a_scope_in_one_thread_does_not_reach_a_trace_in_another(library):
    # An export traced in one thread while a training step holds compiled_kernels() in
    # another stays portable; a trace outside any scope takes the TensorFlow ops even after
    # eager calls have run the kernels.
    import threading
    gn = layers.GroupNormalization(4, activation="relu")
    x = tf.random.normal((2, 4, 4, 16))
    gn(x)  # eager: the kernels
    inside, leave = threading.Event(), threading.Event()

    def other():
        with layers.compiled_kernels():
            inside.set()
            leave.wait(30)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(30)
    try:
        plain = _op_types(lambda x: gn(x), x)
        with layers.compiled_kernels():
            scoped = _op_types(lambda x: gn(x), x)
    finally:
        leave.set()
        thread.join()
    assert not {t for t in plain if t.startswith("BitKeras")}
    assert "BitKerasGroupNorm" in scoped
    assert "use" not in dir(fused)  # no process-wide switch left


def test_second_order_gradients_outside_the_compiled_kernels(library):
    # The kernels' gradients are not differentiable themselves; the TensorFlow ops are.
    gn = layers.GroupNormalization(4, activation="relu")
    x = tf.random.normal((2, 3, 3, 8))
    gn(x)
    with layers.compiled_kernels(False):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.reduce_sum(gn(x) ** 2)
            g = inner.gradient(y, x)
            penalty = tf.reduce_sum(g ** 2)
        assert outer.gradient(penalty, gn.gamma) is not None
