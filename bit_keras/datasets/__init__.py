"""Datasets of bit_keras: ``bit_synthetic``, a procedurally drawn transfer task.

Importing this package registers the TFDS builder, so ``tfds.load("bit_synthetic/...")``
finds it; ``generate`` draws the same images with NumPy alone.

Example:

>>> import bit_keras.datasets
>>> images, labels = bit_keras.datasets.generate("downstream", "train", examples_per_class=10)
>>> ds = tfds.load("bit_synthetic/upstream", split="train", data_dir="/tmp/tfds")
"""

from bit_keras.datasets.builder import BitSynthetic, BitSyntheticConfig
from bit_keras.datasets.synthetic import (
                                          CLASSES,
                                          GROUPS,
                                          SPLITS,
                                          class_names,
                                          factors,
                                          generate,
                                          render,
)

__all__ = ["BitSynthetic", "BitSyntheticConfig", "CLASSES", "GROUPS", "SPLITS", "class_names",
           "factors", "generate", "render"]
