"""bit_keras: Big Transfer (BiT, Kolesnikov et al., arXiv 1912.11370) for TensorFlow 2 / Keras 3.

The model (``build``, ``load``, ``save_npz``, ``feature_extractor``, class names,
``fold_standardization``, the HyperRule) runs on every Keras 3 backend: TensorFlow (the
default here), JAX and PyTorch, chosen with ``KERAS_BACKEND`` before Keras is imported. What
is TensorFlow's by nature (tf.data pipelines, ``fine_tune``/``pretrain``/``distill`` on
``tf.distribute``, SavedModel, TFLite and ONNX export) raises one error naming the backend
it needs when called on another.

Example:

>>> import bit_keras
>>> model = bit_keras.load("BiT-M-R50x1", weights="BiT-M-R50x1.npz", num_classes=10)
>>> logits = model(images)  # float32 NHWC images in [0, 1], any size
"""

import os as _os
import sys as _sys

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow turns on its oneDNN CPU kernels by itself only on CPUs with AVX-512 VNNI/BF16 or
# AMX. Elsewhere (AVX2 machines, AMD Zen among them) its own convolution gradients run 2-4
# times slower, so a BiT fine-tuning step takes about 1.5 times as long. The switch is read
# once, when TensorFlow is imported: it takes effect if bit_keras is imported first, and a
# user's own TF_ENABLE_ONEDNN_OPTS=0 wins. ``bit_keras.runtime.onednn_enabled()`` tells.
if "tensorflow" not in _sys.modules:
    _os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras as _keras  # noqa: E402

from bit_keras import layers  # noqa: E402
from bit_keras.checkpoints import (  # noqa: E402
    CheckpointError,
    load_weights,
    official_weights,
    read_checkpoint,
    save_npz,
)
from bit_keras.models import (  # noqa: E402
    VARIANTS,
    BiTModel,
    Variant,
    build,
    feature_extractor,
    get_variant,
    load,
    resnet_v2,
)

__version__ = "0.1.0"
__all__ = ["VARIANTS", "BiTModel", "CheckpointError", "Variant", "build", "feature_extractor",
           "get_variant", "layers", "load", "load_weights", "official_weights", "read_checkpoint",
           "resnet_v2", "save_npz"]

# Heavier parts load on first use: "attribute": "module:name" (an empty name: the module).
_LAZY = {
    "class_names": "bit_keras.classes:class_names",
    "classes": "bit_keras.classes:",
    "data": "bit_keras.data:",
    "decode_predictions": "bit_keras.classes:decode_predictions",
    "distill": "bit_keras.training.distillation:distill",
    "datasets": "bit_keras.datasets:",
    "demo": "bit_keras.demo:",
    "export": "bit_keras.exporter:export",
    "export_onnx": "bit_keras.exporter:export_onnx",
    "export_tflite": "bit_keras.exporter:export_tflite",
    "publish": "bit_keras.exporter:publish",
    "fold_standardization": "bit_keras.models.fold:fold_standardization",
    "SavedModelLayer": "bit_keras.exporter:SavedModelLayer",
    "fine_tune": "bit_keras.training.finetuning:fine_tune",
    "hyperrule": "bit_keras.training.hyperrule:",
    "keras_hub": "bit_keras.keras_hub:",
    "training": "bit_keras.training:",
    "fewshot": "bit_keras.fewshot:",
    "few_shot": "bit_keras.fewshot:evaluate",
    "pretrain": "bit_keras.training.pretraining:pretrain",
    "runtime": "bit_keras.runtime:",
    "save_preset": "bit_keras.keras_hub.presets:save_preset",
    "vtab": "bit_keras.vtab:",
}


# What runs on TensorFlow only (tf.distribute, SavedModel and friends) refuses when called on
# another backend. Modules stay importable (TensorFlow is installed): ``data``'s tf.data
# pipelines feed Keras' fit on every backend.
_TENSORFLOW_FUNCTIONS = {"distill", "export", "export_onnx", "export_tflite", "publish",
                         "SavedModelLayer", "fine_tune", "few_shot", "pretrain"}


def _needs_tensorflow(name):
    return RuntimeError(
        f"bit_keras.{name} needs Keras' TensorFlow backend (tf.distribute, SavedModel), but KERAS_BACKEND is {_keras.backend.backend()!r}. Run it in a process "
        "started with KERAS_BACKEND=tensorflow; on JAX and PyTorch, fine-tune with Keras' fit "
        "and export with model.export (docs/backends.md).")


def __getattr__(name):
    if name in _TENSORFLOW_FUNCTIONS and _keras.backend.backend() != "tensorflow":
        def refuse(*args, **kwargs):
            raise _needs_tensorflow(name)
        refuse.__name__ = refuse.__qualname__ = name
        return refuse
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name].split(":")
        value = importlib.import_module(module)
        value = getattr(value, attr) if attr else value
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bit_keras' has no attribute {name!r}")


# BiT's keras-hub classes register when keras-hub is already imported (``import keras_hub``
# first, or ``import bit_keras.keras_hub``): importing keras-hub here would cost every
# ``import bit_keras`` seconds.
if "keras_hub" in _sys.modules:
    import importlib as _importlib
    _importlib.import_module("bit_keras.keras_hub")
