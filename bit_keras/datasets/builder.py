"""``bit_synthetic``: the synthetic transfer task as a TensorFlow Datasets builder.

Importing ``bit_keras.datasets`` registers it, after which ``tfds.load("bit_synthetic")``
generates it locally (NumPy drawing, no download) into ``data_dir`` on first use.
"""

import dataclasses

import tensorflow_datasets as tfds
from etils import epath

from bit_keras.datasets import drawing
from bit_keras.datasets import synthetic

_DESCRIPTION = """\
Procedurally drawn objects for transfer learning: a class is a (colour, texture, shape)
triple, 4 x 6 x 8 = 192 classes, drawn at random position, scale and rotation over a
gradient background with line and blob clutter. 168 classes form the upstream splits
(labels 0..167), 24 held-out combinations of the same primitives the downstream splits
(labels 168..191). Generated from a seed in seconds; no download.
"""


@dataclasses.dataclass(eq=False)
class BitSyntheticConfig(tfds.core.BuilderConfig):
    """Image size, examples per class of each split, and the seed of a ``bit_synthetic`` build.

    Example (a custom size; give it a new ``name`` so it is stored apart):

    >>> config = bit_keras.datasets.BitSyntheticConfig(name="s96", image_size=96)
    >>> ds = tfds.load("bit_synthetic", builder_kwargs={"config": config}, split="upstream_train")
    """

    image_size: int = 64
    upstream_train: int = 100
    upstream_test: int = 10
    downstream_train: int = 30
    downstream_test: int = 30
    seed: int = 0

    def examples_per_class(self, split):
        return getattr(self, split)


class BitSynthetic(tfds.core.GeneratorBasedBuilder):
    """The ``bit_synthetic`` dataset: upstream and disjoint downstream classes of drawn objects.

    Splits ``upstream_train``, ``upstream_test`` (168 classes), ``downstream_train`` and
    ``downstream_test`` (24 other classes). Configs: ``64px`` (default: 100/10/30/30 images
    per class, about 20k images, 64x64), ``32px`` (the same at 32x32) and ``tiny``
    (32x32, 2/1/5/2 per class, for tests).

    Example:

    >>> import bit_keras.datasets  # registers the builder
    >>> ds = tfds.load("bit_synthetic/64px", split="downstream_train", data_dir="/tmp/tfds")
    """

    # TFDS finds a builder's own files (checksums) through ``code_path``; its default lookup
    # needs the ``importlib_resources`` backport, which TFDS does not install. This builder
    # has no such files, so name the module file directly.
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    BUILDER_CONFIGS = [
        BitSyntheticConfig(name="64px", description="64x64 images, 100/10/30/30 per class."),
        BitSyntheticConfig(name="32px", image_size=32,
                           description="32x32 images, 100/10/30/30 per class."),
        BitSyntheticConfig(name="tiny", image_size=32, upstream_train=2, upstream_test=1,
                           downstream_train=5, downstream_test=2,
                           description="32x32 images, 2/1/5/2 per class, for tests."),
    ]

    def _info(self):
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "label": tfds.features.ClassLabel(names=synthetic.CLASS_NAMES),
                "colour": tfds.features.ClassLabel(names=list(drawing.COLOURS)),
                "texture": tfds.features.ClassLabel(names=drawing.TEXTURES),
                "shape": tfds.features.ClassLabel(names=drawing.SHAPES),
                "id": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # everything is drawn locally
        return {split: self._generate_examples(split) for split in synthetic.SPLITS}

    def _generate_examples(self, split):
        config = self.builder_config
        order = synthetic.example_order(split, config.examples_per_class(split))
        for row, (class_id, index) in enumerate(order):
            colour, texture, shape = synthetic.CLASSES[class_id]
            key = f"{split}/{row:05d}"
            yield key, {
                "image": synthetic.render(class_id, split, index, config.image_size, config.seed),
                "label": class_id, "colour": colour, "texture": texture, "shape": shape,
                "id": key,
            }
