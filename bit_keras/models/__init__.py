"""BiT architectures: the variant table, the ResNet-v2 builder, and ``build``/``load`` by name."""

from bit_keras.models.network import BiTModel, feature_extractor, resnet_v2
from bit_keras.models.variants import TINY, VARIANTS, Variant, architecture_name, get_variant
from bit_keras.models.zoo import build, load

__all__ = ["BiTModel", "TINY", "VARIANTS", "Variant", "architecture_name", "build",
           "feature_extractor", "get_variant", "load", "resnet_v2"]
