"""The compiled GroupNorm (+ ReLU) kernel: built from source on first use, or not used.

``kernels/group_norm.cc`` is a TensorFlow CPU op doing GroupNorm's forward pass and its
gradient in two memory passes each (the TensorFlow ops of ``group_norm.py`` take five and
seven). It ships as source: the first GroupNorm call of a process compiles it with the
C++ compiler (``$CXX``, default ``g++``) against the installed TensorFlow's headers, once per
TensorFlow version, source and CPU, into ``$BIT_KERAS_KERNEL_DIR`` (default
``~/.cache/bit_keras/kernels``); about 15 s, logged. Where that cannot be done (no
compiler, a failed build, a GPU, ``BIT_KERAS_FUSED_KERNELS=0``) GroupNorm runs on the
TensorFlow ops instead, which compute the same function (tests/test_fused_kernels.py).

Exports never hold it: they trace GroupNorm with ``hand_written_gradient=False``, which is
always the TensorFlow ops, so a SavedModel or TFLite file runs anywhere.
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

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "group_norm.cc")
ENV = "BIT_KERAS_FUSED_KERNELS"
DIR_ENV = "BIT_KERAS_KERNEL_DIR"
# -march=native: the file is built on the machine that runs it (the CPU is in the cache key).
# AVX512-FP16 is left out: TensorFlow's Eigen headers do not compile with it.
NATIVE_FLAGS = ("-O3", "-march=native", "-mno-avx512fp16", "-mprefer-vector-width=512")
PORTABLE_FLAGS = ("-O3",)

_lock = threading.Lock()
_state = {"library": None, "tried": False, "error": None, "forced": None}


def enabled():
    """Whether GroupNorm may use the compiled kernel in this process (before building it)."""
    if _state["forced"] is not None:
        return _state["forced"]
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def use(on):
    """Within this context, GroupNorm layers traced in it use (``True``) or avoid the kernel.

    Example:

    >>> with bit_keras.layers.fused.use(False):
    ...     y = gn(x)  # the TensorFlow ops
    """
    previous, _state["forced"] = _state["forced"], bool(on)
    try:
        yield
    finally:
        _state["forced"] = previous


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
                logging.warning("bit_keras: GroupNorm runs on TensorFlow ops (slower): the "
                                "compiled kernel is unavailable: %s", e)
        return _state["library"]


def status():
    """A one-line account of the kernel in this process, for logs and benchmark reports."""
    if not enabled():
        return f"off ({ENV}=0 or fused.use(False))"
    if not _state["tried"]:
        return "not built yet"
    return "on" if _state["library"] is not None else f"unavailable: {_state['error']}"


def _cpu_key():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return ""


def _load():
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        raise RuntimeError("a GPU is visible, and the kernel is CPU-only")
    with open(SOURCE, "rb") as f:
        source = f.read()
    parts = [source, tf.__version__, _cpu_key(), os.environ.get("CXX", "g++"), sys.version]
    key = hashlib.sha256(b"\0".join(
        p if isinstance(p, bytes) else p.encode() for p in parts)).hexdigest()[:16]
    folder = os.environ.get(DIR_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "bit_keras", "kernels")
    path = os.path.join(folder, f"group_norm-{key}.so")
    if not os.path.exists(path):
        os.makedirs(folder, exist_ok=True)
        _build(path, tf)
    return tf.load_op_library(path)


def _build(path, tf):
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler {compiler!r} on PATH (set CXX to one)")
    logging.info("bit_keras: compiling the GroupNorm kernel (once per machine, ~15 s) into %s",
                 path)
    errors = []
    for flags in (NATIVE_FLAGS, PORTABLE_FLAGS):
        handle, tmp = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(path))
        os.close(handle)
        command = [compiler, *flags, "-shared", "-fPIC", "-w", *tf.sysconfig.get_compile_flags(),
                   SOURCE, "-o", tmp, *tf.sysconfig.get_link_flags()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            os.replace(tmp, path)  # whole or not at all, even with builds racing
            return
        os.remove(tmp)
        errors.append(done.stderr.strip().splitlines()[-1:] or ["(no output)"])
    raise RuntimeError(f"{compiler} failed to build {SOURCE}: {errors}")
