"""The compiled BiT kernels: built from source on first use, or not used.

Two TensorFlow CPU ops, each with its gradient, in two memory passes each where the
TensorFlow ops take five to seven: GroupNorm (+ ReLU) (``kernels/group_norm.cc``, for
``group_norm.py``) and Weight Standardization (``kernels/standardize.cc``, for
``standardized_conv.py``, writing the bfloat16 kernel directly under mixed precision); and
a vectorized bfloat16 residual addition (``kernels/add.cc``, for ``residual_add.py``).
They ship as source: the first BiT layer call of a process compiles them with the
C++ compiler (``$CXX``, default ``g++``) against the installed TensorFlow's headers, once per
TensorFlow version, source and CPU, into ``$BIT_KERAS_KERNEL_DIR`` (default
``~/.cache/bit_keras/kernels``); about 15 s, logged. Where that cannot be done (no
compiler, a failed build, a GPU, ``BIT_KERAS_FUSED_KERNELS=0``) the layers run on the
TensorFlow ops instead, which compute the same function (tests/test_fused_kernels.py);
so do functions compiled with XLA (``jit_compile=True``), which cannot run a custom op.

Exports never hold them: ``bit_keras.export`` and ``export_tflite`` trace inside
``use(False)``, so a SavedModel or TFLite file holds plain TensorFlow ops and runs anywhere.
The kernels' gradients are not themselves differentiable: for second-order gradients
(gradient penalties, Hessian-vector products) trace inside ``use(False)``.
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
# Open use(False) and use(True) contexts, process-wide (strategy replicas trace in threads of
# their own and must follow them); counted, so that contexts in two threads cannot undo
# each other. Any open use(False) wins: an export must never trace the kernels.
_open = {False: 0, True: 0}


def enabled():
    """Whether the layers may use the compiled kernels in this process (before building)."""
    if _open[False]:
        return False
    if _open[True]:
        return True
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def use(on):
    """Within this context, BiT layers traced or run use (``True``) or avoid the kernels.

    Process-wide while open, in every thread; a ``use(False)`` anywhere wins over any
    ``use(True)`` (exports open one). Functions traced inside keep what they traced.

    Example:

    >>> with bit_keras.layers.fused.use(False):
    ...     y = gn(x)  # the TensorFlow ops
    """
    on = bool(on)
    with _lock:
        _open[on] += 1
    try:
        yield
    finally:
        with _lock:
            _open[on] -= 1


def library():
    """The loaded op library, building it first if needed; None where it cannot be had."""
    if not enabled():
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
    """``library()``, or None inside an XLA-compiled function (XLA knows no custom op)."""
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import control_flow_util
    if control_flow_util.GraphOrParentsInXlaContext(ops.get_default_graph()):
        return None
    return library()


def status():
    """A one-line account of the kernels in this process, for logs and benchmark reports."""
    if not enabled():
        return f"off ({ENV}=0 or fused.use(False))"
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
        try:
            return tf.load_op_library(path)
        except tf.errors.OpError as e:  # a damaged cache entry: built again below
            logging.warning("bit_keras: rebuilding the damaged kernel file %s (%s)", path,
                            str(e).strip().splitlines()[-1:])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _build(path, tf)
    try:
        return tf.load_op_library(path)
    except tf.errors.OpError as e:
        raise RuntimeError(f"the built {path} does not load: {e}") from e


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
                os.replace(tmp, path)  # whole or not at all, even with builds racing
                return
        finally:
            if os.path.exists(tmp):  # a failed, timed-out or interrupted build leaves nothing
                os.remove(tmp)
        lines = done.stderr.strip().splitlines() or ["(no output)"]
        errors.append(next((line.strip() for line in lines if "error" in line), lines[-1].strip()))
    raise RuntimeError(f"{compiler} failed to build {KERNELS}: " + " | ".join(errors))
