"""``BiTBackbone``: BiT's ResNet-v2 as a keras-hub ``FeaturePyramidBackbone``.

The graph is a ``bit_keras.models.BiTModel``'s own (same layers, same flat names), cut after
the final GroupNorm + ReLU, so ``bit_keras.load_weights`` (strict, every layout) loads into
it and keras-hub's ``ImageClassifier`` head (average pool, dense) on top of it computes BiT's
logits. ``pyramid_outputs`` are the pre-activation block outputs ``block1..block4``.
"""

import keras
import keras_hub

from bit_keras import layers as bit_layers
from bit_keras.checkpoints import transfer
from bit_keras.models import network

# keras-hub's level names: P{n} has stride 2**n. BiT's block b has stride 2**(b+1).
PYRAMID_LEVELS = dict(zip(("P2", "P3", "P4", "P5"), network.BLOCK_NAMES))
# The BiTModel arguments the backbone carries and passes through, in its config. A new
# BiTModel argument is one more entry here and one more constructor argument below.
ARCHITECTURE = ("units", "width", "base_filters", "groups", "output_stride", "drop_path_rate")


@keras.saving.register_keras_serializable(package="bit_keras")
class BiTBackbone(keras_hub.models.FeaturePyramidBackbone):
    """BiT (ResNet-v2, GroupNorm, Weight Standardization) as a keras-hub backbone.

    Maps float32 images in [0, 1] (keras-hub's ``BiTImageConverter`` makes them from 0-255
    pixels) to the final ``[batch, h/32, w/32, 2048 * width]`` feature map after BiT's last
    GroupNorm and ReLU. ``pyramid_outputs`` holds ``P2``..``P5`` (strides 4 to 32) for
    detection and segmentation heads. Layer names are ``bit_keras``' checkpoint names.

    Args:
        units: units per block, e.g. ``(3, 4, 6, 3)`` for R50.
        width: the width multiplier.
        base_filters: bottleneck channels of block 1 at width 1 (64 for BiT).
        groups: GroupNorm groups (32 for BiT).
        image_shape: NHWC input shape without batch; height and width may be None.
        output_stride, drop_path_rate: dense prediction (``bit_keras.BiTModel``): 16 or 8
            dilates the later blocks (the P-levels then keep that stride); stochastic depth.
        variant: the ``bit_keras.VARIANTS`` name it was built as, or None.
        dtype: a Keras dtype policy.

    Example:

    >>> backbone = bit_keras.keras_hub.BiTBackbone(units=(3, 4, 6, 3), width=1)
    >>> bit_keras.load_weights(backbone, "BiT-M-R50x1.npz", skip_head=True)
    >>> features = keras.Model(backbone.inputs, backbone.pyramid_outputs)(images)
    """

    def __init__(self, units=(3, 4, 6, 3), width=1, base_filters=network.BASE_FILTERS,
                 groups=bit_layers.GN_GROUPS, image_shape=(None, None, 3), variant=None,
                 dtype=None, output_stride=32, drop_path_rate=0.0, **kwargs):
        bit = network.BiTModel(units=units, width=width, include_top=False,
                               base_filters=base_filters, groups=groups,
                               input_shape=tuple(image_shape), variant=variant, dtype=dtype,
                               output_stride=output_stride, drop_path_rate=drop_path_rate)
        super().__init__(inputs=bit.input, outputs=bit.get_layer("final_gn").output,
                         dtype=dtype, **kwargs)
        blocks = {layer.name for layer in bit.layers}
        self.pyramid_outputs = {level: bit.get_layer(block).output
                                for level, block in PYRAMID_LEVELS.items() if block in blocks}
        self.units, self.width = bit.units, bit.width
        self.base_filters, self.groups = bit.base_filters, bit.groups
        self.image_shape, self.variant = tuple(image_shape), variant
        self.output_stride, self.drop_path_rate = bit.output_stride, bit.drop_path_rate

    def architecture_kwargs(self):
        """The ``BiTModel`` arguments that fix the architecture."""
        return {name: getattr(self, name) for name in ARCHITECTURE}

    def get_config(self):
        config = super().get_config()
        config.update(self.architecture_kwargs())
        config.update(units=list(self.units), image_shape=list(self.image_shape),
                      variant=self.variant)
        return config

    @classmethod
    def from_bit_model(cls, model, image_shape=None):
        """A backbone with ``model``'s architecture and weights (the head is left out).

        Args:
            model: a ``bit_keras.BiTModel`` (``bit_keras.load``/``build``/``resnet_v2``).
            image_shape: the input shape; default: the model's.

        Returns:
            A ``BiTBackbone`` whose variables are copies of ``model``'s, set through the
            strict loader.
        """
        if not isinstance(model, network.BiTModel):
            raise TypeError("model must be a bit_keras.BiTModel. Received: "
                            f"model of type {type(model).__name__}")
        spec = model.spec()
        backbone = cls(**{name: spec[name] for name in ARCHITECTURE},
                       image_shape=image_shape or spec["input_shape"], variant=spec["variant"],
                       dtype=spec["dtype"])
        transfer.load_weights(backbone, transfer.official_weights(model), skip_head=True)
        return backbone
