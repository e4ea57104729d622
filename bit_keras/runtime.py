"""Facts about the TensorFlow runtime that decide how fast a BiT runs here.

``import bit_keras`` before TensorFlow turns on TensorFlow's oneDNN CPU kernels (see
``bit_keras/__init__.py`` and the README's "Performance" section); these helpers tell
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


def log_cpu_speed_hint():
    """Logs one warning if oneDNN is off on a machine that trains on its CPU."""
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
        return
    if onednn_enabled() is False:
        logging.warning(
            "TensorFlow's oneDNN CPU kernels are off in this process, so convolution "
            "gradients run 2-4x slower on this CPU. Import bit_keras before tensorflow, or "
            "set TF_ENABLE_ONEDNN_OPTS=1 before starting Python (README, 'Performance').")
