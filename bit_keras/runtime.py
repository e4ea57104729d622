"""Facts about the TensorFlow runtime that decide how fast a BiT runs here.

``import bit_keras`` before TensorFlow turns on TensorFlow's oneDNN CPU kernels (see
``bit_keras/__init__.py`` and docs/performance.md); these helpers tell
whether that took effect, so long jobs can say so once instead of silently running slower.
"""

from absl import logging


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN CPU kernels in this process; None if unknown.

    Fixed when TensorFlow is imported: set ``TF_ENABLE_ONEDNN_OPTS=1`` before that (importing
    ``bit_keras`` first does it).

    Example:

    >>> bit_keras.runtime.onednn_enabled()
    True
    """
    try:  # not a public API; absent in some builds
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


def cpu_flags():
    """The CPU feature flags of ``/proc/cpuinfo`` as a set; None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            line = next((line for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if line is None else set(line.split(":", 1)[1].split())


def cpu_has_bfloat16():
    """Whether this CPU has bfloat16 arithmetic (AVX512-BF16 or AMX); None if unknown."""
    flags = cpu_flags()
    return None if flags is None else bool(flags & {"avx512_bf16", "amx_bf16"})


def log_cpu_speed_hint(precision="float32"):
    """Logs a warning for a CPU training setting that is known to be slow here.

    Two cases: oneDNN off (convolution gradients 2-4x slower), and bfloat16 training on a
    CPU without bfloat16 arithmetic, which oneDNN emulates about ten times slower than
    float32 (measured for R50x1 on an AVX2 EPYC: docs/performance.md).
    """
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
        return
    onednn = onednn_enabled()
    if precision == "bfloat16" and onednn and cpu_has_bfloat16() is False:
        logging.warning(
            "precision='bfloat16' on a CPU without AVX512-BF16 or AMX: oneDNN emulates "
            "bfloat16 and a training step runs about 10x slower than float32 here. Use "
            "precision='float32' on this machine.")
    if onednn is False:
        logging.warning(
            "TensorFlow's oneDNN CPU kernels are off in this process, so convolution "
            "gradients run 2-4x slower on this CPU. Import bit_keras before tensorflow, or "
            "set TF_ENABLE_ONEDNN_OPTS=1 before starting Python (docs/performance.md).")
