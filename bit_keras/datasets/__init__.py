"""Datasets of bit_keras: ``bit_synthetic``, a procedurally drawn transfer task.

Importing this package registers the TFDS builder, so ``tfds.load("bit_synthetic")`` finds
it; ``generate`` draws the same images with NumPy alone.

Example:

>>> import bit_keras.datasets
>>> images, labels = bit_keras.datasets.generate("downstream_train", examples_per_class=10)
>>> ds = tfds.load("bit_synthetic", split="upstream_train", data_dir="/tmp/tfds")
"""

from bit_keras.datasets.builder import BitSynthetic, BitSyntheticConfig
from bit_keras.datasets.synthetic import (CLASS_NAMES, CLASSES, NUM_CLASSES, NUM_DOWNSTREAM,
                                          NUM_UPSTREAM, SPLITS, factors, generate, render,
                                          split_classes)

__all__ = ["BitSynthetic", "BitSyntheticConfig", "CLASS_NAMES", "CLASSES", "NUM_CLASSES",
           "NUM_DOWNSTREAM", "NUM_UPSTREAM", "SPLITS", "factors", "generate", "render",
           "split_classes"]
