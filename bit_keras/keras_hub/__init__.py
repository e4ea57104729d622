"""BiT in keras-hub: a ``FeaturePyramidBackbone``, an image classifier and its converter.

Importing this package imports keras-hub (the ``keras_hub`` extra) and registers BiT's
classes with it, so ``keras_hub.models.Backbone.from_preset`` and
``keras_hub.models.ImageClassifier.from_preset`` load a BiT preset folder. ``import
bit_keras`` alone never imports keras-hub (it takes seconds); it registers these classes
only when keras-hub was imported before it. ``bit_keras.save_preset`` writes a preset folder
from any checkpoint the loader reads (docs/keras_hub.md).

Example:

>>> import keras_hub, bit_keras.keras_hub
>>> classifier = keras_hub.models.ImageClassifier.from_preset("./bit_m_r50x1_ilsvrc2012")
>>> logits = classifier.predict(images)  # raw 0-255 pixels, any size
"""

try:
    import keras_hub  # noqa: F401
except ImportError as error:  # pragma: no cover - the extra is in the test extra
    raise ImportError("bit_keras.keras_hub needs keras-hub: pip install 'bit_keras[keras_hub]' "
                      f"(or pip install keras-hub). Import failed with: {error}") from error

from bit_keras.keras_hub.backbone import PYRAMID_LEVELS, BiTBackbone  # noqa: E402
from bit_keras.keras_hub.classifier import (  # noqa: E402
    BiTImageClassifier,
    BiTImageClassifierPreprocessor,
    BiTImageConverter,
)
from bit_keras.keras_hub.presets import (  # noqa: E402
    PUBLIC_PRESETS,
    preset_name,
    preset_table,
    save_preset,
)

__all__ = ["PUBLIC_PRESETS", "PYRAMID_LEVELS", "BiTBackbone", "BiTImageClassifier",
           "BiTImageClassifierPreprocessor", "BiTImageConverter", "preset_name", "preset_table",
           "save_preset"]
