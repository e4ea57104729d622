"""The compiled BiT kernels: built from source on first use, or not used.

Two TensorFlow CPU ops, each with its gradient, in two memory passes each where the
TensorFlow ops take five to seven: GroupNorm (+ ReLU) (``kernels/group_norm.cc``) and
Weight Standardization (``kernels/standardize.cc``, writing the bfloat16 kernel directly
under mixed precision); and a vectorized bfloat16 residual addition (``kernels/add.cc``).
``tf_ops.py`` calls them for the layers, on Keras' TensorFlow backend only.
They ship as source: the first BiT layer call of a process compiles them with the
C++ compiler (``$CXX``, default ``g++``) against the installed TensorFlow's headers, once per
TensorFlow version, source and CPU, into ``$BIT_KERAS_KERNEL_DIR`` (default
``~/.cache/bit_keras/kernels``); about 15 s, logged. Where that cannot be done (no
compiler, a failed build, a GPU, ``BIT_KERAS_FUSED_KERNELS=0``) the layers run on the
TensorFlow ops instead, which compute the same function (tests/test_fused_kernels.py);
so do functions compiled with XLA (``jit_compile=True``), which cannot run a custom op.

Nothing written to disk ever holds them (docs/design.md, "Stack"): a traced function takes
the kernels only inside ``compiled_kernels()``, which the library opens where it runs the
model itself (its training and evaluation steps, ``BiTModel``'s ``train_step``,
``test_step`` and ``predict_step`` under ``fit``, ``evaluate`` and ``predict``); eager calls
take them too, since they trace nothing. Every other trace (``bit_keras.export``,
``Model.export`` in each format, ``tf.saved_model.save``, ``ExportArchive``, the TFLite,
ONNX and OpenVINO converters) holds plain TensorFlow ops, whoever calls it.
The kernels' gradients are not themselves differentiable: for second-order gradients
(gradient penalties, Hessian-vector products) open ``compiled_kernels(False)``.
"""

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from absl import logging

from bit_keras.utils import atomic

KERNELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")
SOURCES = tuple(os.path.join(KERNELS, name)
                for name in ("group_norm.cc", "standardize.cc", "add.cc"))
HEADERS = (os.path.join(KERNELS, "common.h"),)
ENV = "BIT_KERAS_FUSED_KERNELS"
DIR_ENV = "BIT_KERAS_KERNEL_DIR"
# -march=native: the file is built on the machine that runs it (the CPU is in the cache key).
# AVX512-FP16 is left out: TensorFlow's Eigen headers do not compile with it.
NATIVE_FLAGS = ("-O3", "-march=native", "-mno-avx512fp16", "-mprefer-vector-width=512")
PORTABLE_FLAGS = ("-O3",)

_lock = threading.Lock()
_state = {"library": None, "tried": False, "error": None}
# The open compiled_kernels() scopes of each thread, innermost last. Per thread, not
# process-wide: an export traced in one thread never sees a training step's scope in another
# (strategy replicas trace in threads of their own, so each step opens it in its replica).
_scopes = threading.local()


def enabled():
    """Whether this process may use the compiled kernels at all (``$BIT_KERAS_FUSED_KERNELS``)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _scope():
    stack = getattr(_scopes, "stack", ())
    return stack[-1] if stack else None


@contextlib.contextmanager
def compiled_kernels(on=True):
    """BiT layers called in this thread within this context use (or avoid) the compiled kernels.

    Outside any such context, eager calls use them and traced functions do not, so that
    whatever a trace may be saved into stays portable. Open ``compiled_kernels()`` around a
    training loop of your own traced with ``tf.function`` (the library's own steps, ``fit``,
    ``evaluate`` and ``predict`` on a ``BiTModel`` do); never around the tracing of anything
    you save: an artefact traced inside would need bit_keras' kernels to load.
    ``compiled_kernels(False)`` keeps them out even of eager calls (second-order gradients).

    Example:

    >>> @tf.function
    ... def step(images):
    ...     with bit_keras.layers.compiled_kernels():
    ...         return model(images, training=True)
    """
    stack = getattr(_scopes, "stack", ())
    _scopes.stack = (*stack, bool(on))
    try:
        yield
    finally:
        _scopes.stack = stack


def library():
    """The loaded op library, building it first if needed; None where it cannot be had."""
    if not enabled() or _scope() is False:
        return None
    with _lock:
        if not _state["tried"]:
            _state["tried"] = True
            try:
                _state["library"] = _load()
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                _state["error"] = str(e)
                logging.warning("bit_keras: GroupNorm and Weight Standardization run on "
                                "TensorFlow ops (slower): the compiled kernels are "
                                "unavailable: %s", e)
        return _state["library"]


def for_here():
    """``library()`` where this call may use it, else None: eagerly, or traced inside
    ``compiled_kernels()`` and not XLA-compiled (XLA knows no custom op)."""
    import tensorflow as tf
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util
    scope = _scope()
    if scope is False or (scope is None and not tf.executing_eagerly()):
        return None
    if control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()):
        return None
    return library()


def status():
    """A one-line account of the kernels in this process, for logs and benchmark reports."""
    if not enabled():
        return f"off ({ENV}=0)"
    if not _state["tried"]:
        return "not built yet"
    return "on" if _state["library"] is not None else f"unavailable: {_state['error']}"


def library_path():
    """Where this machine's build of the kernels is (or will be) cached."""
    import tensorflow as tf
    sources = []
    for name in SOURCES + HEADERS:
        with open(name, "rb") as f:
            sources.append(f.read())
    from bit_keras import runtime
    cpu = " ".join(sorted(runtime.cpu_flags() or ()))
    parts = [*sources, tf.__version__, cpu, os.environ.get("CXX", "g++"), sys.version]
    key = hashlib.sha256(b"\0".join(
        p if isinstance(p, bytes) else p.encode() for p in parts)).hexdigest()[:16]
    folder = os.environ.get(DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "bit_keras", "kernels")
    return os.path.join(folder, f"bit_keras_kernels-{key}.so")


def _load():
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        raise RuntimeError("a GPU is visible, and the kernel is CPU-only")
    path = library_path()
    if os.path.exists(path):
        # A cut or altered file can kill the process on load (SIGBUS, no message): only a
        # build whose bytes match the digest written beside it at build time is loaded.
        problem = _damage(path)
        if problem is None:
            try:
                return tf.load_op_library(path)
            except tf.errors.OpError as e:
                problem = str(e).strip().splitlines()[-1:]
        logging.warning("bit_keras: rebuilding the damaged kernel file %s (%s)", path, problem)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _build(path, tf)
    try:
        return tf.load_op_library(path)
    except tf.errors.OpError as e:
        raise RuntimeError(f"the built {path} does not load: {e}") from e


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _damage(path):
    """None if ``path`` holds the bytes its build recorded, else what is wrong with it."""
    try:
        with open(path + ".sha256", encoding="ascii") as f:
            recorded = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return "no digest recorded beside it"
    return None if _digest(path) == recorded else "its bytes differ from the recorded digest"


def _build(path, tf):
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set CXX to one)")
    # A warning, so that a ~15 s pause is explained at the default log level; once per machine.
    logging.warning("bit_keras: compiling the GroupNorm and Weight Standardization kernels "
                    "(once per machine and TensorFlow version, ~15 s) into %s", path)
    errors = []
    for flags in (NATIVE_FLAGS, PORTABLE_FLAGS):
        handle, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
        os.close(handle)
        command = [compiler, *flags, "-shared", "-fPIC", "-w", *tf.sysconfig.get_compile_flags(),
                   *SOURCES, "-o", tmp, *tf.sysconfig.get_link_flags()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                                  timeout=600)
            if done.returncode == 0:
                digest = _digest(tmp)
                os.replace(tmp, path)  # whole or not at all, even with builds racing
                atomic.write_text(path + ".sha256", digest + "\n")
                return
        finally:
            if os.path.exists(tmp):  # a failed, timed-out or interrupted build leaves nothing
                os.remove(tmp)
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        errors.append(next((line.strip() for line in lines if "error" in line), lines[-1].strip()))
    raise RuntimeError(f"{compiler} failed to build {KERNELS}: " + " | ".join(errors))
