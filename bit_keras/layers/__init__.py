"""The layers that make a ResNet a BiT: weight-standardized convolution and GroupNorm (both as
the official ``bit_tf2`` code, Kolesnikov et al., arXiv 1912.11370, and the numerics of
``docs/design.md``, "The BiT model"), the residual add, and stochastic depth (``DropPath``);
``compiled_kernels`` is the scope in which traced calls may use the compiled CPU kernels.
"""

from bit_keras.layers import fused
from bit_keras.layers.drop_path import DropPath
from bit_keras.layers.fused import compiled_kernels
from bit_keras.layers.group_norm import GN_EPSILON, GN_GROUPS, GroupNormalization
from bit_keras.layers.residual_add import ResidualAdd
from bit_keras.layers.standardized_conv import (
                                                WS_EPSILON,
                                                StandardizedConv2D,
                                                given_standardized_kernels,
                                                standardize_kernel,
)

__all__ = ["DropPath", "GN_EPSILON", "GN_GROUPS", "GroupNormalization", "ResidualAdd", "StandardizedConv2D",
           "WS_EPSILON", "compiled_kernels", "fused", "given_standardized_kernels", "standardize_kernel"]
