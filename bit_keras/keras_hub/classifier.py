"""BiT's keras-hub task and preprocessing: ``BiTImageClassifier`` and its image converter.

keras-hub's convention is raw 0-255 pixels in; the converter resizes and rescales to what the
backbone takes. BiT models take float32 in [0, 1] and map them to [-1, 1] inside (the rescale
happens once, in the model: docs/design.md), so the converter's scale is 1/255, no offset.
"""

import keras
import keras_hub

from bit_keras.keras_hub.backbone import BiTBackbone

# 0-255 pixels to the [0, 1] BiT models take.
PIXEL_SCALE = 1.0 / 255.0


@keras.saving.register_keras_serializable(package="bit_keras")
class BiTImageConverter(keras_hub.layers.ImageConverter):
    """Resizes 0-255 images to the preset's side and scales them to [0, 1] for BiT.

    Example:

    >>> converter = bit_keras.keras_hub.BiTImageConverter(image_size=(224, 224))
    >>> x = converter(raw_uint8_images)  # float32 in [0, 1], 224x224
    """

    backbone_cls = BiTBackbone

    def __init__(self, image_size=None, scale=PIXEL_SCALE, offset=None, **kwargs):
        super().__init__(image_size=image_size, scale=scale, offset=offset, **kwargs)


@keras.saving.register_keras_serializable(package="bit_keras")
class BiTImageClassifierPreprocessor(keras_hub.models.ImageClassifierPreprocessor):
    """keras-hub's image classifier preprocessing with ``BiTImageConverter``."""

    backbone_cls = BiTBackbone
    image_converter_cls = BiTImageConverter


@keras.saving.register_keras_serializable(package="bit_keras")
class BiTImageClassifier(keras_hub.models.ImageClassifier):
    """BiT as a keras-hub ``ImageClassifier``: backbone, average pool, dense head.

    BiT's head is GroupNorm, ReLU, global average pooling and a dense layer; the backbone
    ends after the GroupNorm and ReLU, so keras-hub's pooler and ``predictions`` layer are
    the rest of it, and a preset from ``bit_keras.save_preset`` gives ``bit_keras.load``'s
    logits.

    Example:

    >>> classifier = keras_hub.models.ImageClassifier.from_preset("./bit_s_r50x1")
    >>> logits = classifier.predict(raw_uint8_images)
    """

    backbone_cls = BiTBackbone
    preprocessor_cls = BiTImageClassifierPreprocessor
