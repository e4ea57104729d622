"""``bit_synthetic``: the synthetic transfer task as a TensorFlow Datasets builder.

Importing ``bit_keras.datasets`` registers it, after which ``tfds.load("bit_synthetic/...")``
generates it locally (NumPy drawing, no download) into ``data_dir`` on first use.
"""

import dataclasses

import tensorflow_datasets as tfds
from etils import epath

from bit_keras.datasets import drawing, synthetic

_DESCRIPTION = """\
Procedurally drawn objects for transfer learning. A class is a (colour, texture, shape)
triple; 168 of the 4 x 6 x 8 = 192 triples form the upstream group, the 24 others (new
combinations of the same primitives) the downstream group. Objects are drawn at random
position, scale and rotation over a gradient background with line and blob clutter.
Generated from a seed in seconds; no download.
"""


@dataclasses.dataclass(eq=False)
class BitSyntheticConfig(tfds.core.BuilderConfig):
    """What a ``bit_synthetic`` build holds: class group, image size, sizes, seed.

    Attributes:
        group: ``"upstream"`` (168 classes) or ``"downstream"`` (24 disjoint classes).
        image_size: side of the square images in pixels.
        train_per_class, test_per_class: images per class in ``train`` and ``test``.
        seed: the dataset seed; the same seed gives the same pixels.

    Example (a custom build; give it a new ``name`` so that it is stored apart):

    >>> config = bit_keras.datasets.BitSyntheticConfig(name="down96", group="downstream",
    ...                                                image_size=96)
    >>> ds = tfds.load("bit_synthetic", builder_kwargs={"config": config}, split="train")
    """

    group: str = "upstream"
    image_size: int = 64
    train_per_class: int = 100
    test_per_class: int = 10
    seed: int = 0


def _configs():
    sizes = {"upstream": (100, 10), "downstream": (30, 30)}
    configs = []
    for suffix, image_size in (("", 64), ("_32px", 32)):
        for group, (train, test) in sizes.items():
            configs.append(BitSyntheticConfig(
                name=group + suffix, group=group, image_size=image_size, train_per_class=train,
                test_per_class=test,
                description=f"{group} classes, {image_size}x{image_size}, {train}/{test} per class"))
    for group, (train, test) in {"upstream": (2, 1), "downstream": (5, 2)}.items():
        configs.append(BitSyntheticConfig(
            name=f"tiny_{group}", group=group, image_size=32, train_per_class=train,
            test_per_class=test, description=f"{group} classes, 32x32, {train}/{test}, for tests"))
    return configs


class BitSynthetic(tfds.core.GeneratorBasedBuilder):
    """The ``bit_synthetic`` dataset: drawn objects in an upstream and a downstream group.

    Configs (``bit_synthetic/<name>``): ``upstream`` (the default: 168 classes, 64x64,
    100 train / 10 test images per class), ``downstream`` (24 other classes, 64x64,
    30 / 30), ``upstream_32px`` and ``downstream_32px`` (the same at 32x32),
    ``tiny_upstream`` and ``tiny_downstream`` (32x32, a few images, for tests). Splits
    ``train`` and ``test``. Features: ``image``, ``label``, the factor labels ``colour``,
    ``texture`` and ``shape`` (shared by both groups), and ``id``.

    Example:

    >>> import bit_keras.datasets  # registers the builder
    >>> ds = tfds.load("bit_synthetic/downstream", split="train", data_dir="/tmp/tfds")
    """

    # TFDS finds a builder's own files (checksums) through ``code_path``; its default lookup
    # needs the ``importlib_resources`` backport, which TFDS does not install. This builder
    # has no such files, so name the module file directly.
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First version."}
    BUILDER_CONFIGS = _configs()

    def _info(self):
        config = self.builder_config
        if config.group not in synthetic.GROUPS:
            raise ValueError(f"group must be one of {synthetic.GROUPS}. "
                             f"Received: group={config.group!r}")
        size = config.image_size
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 3)),
                "label": tfds.features.ClassLabel(names=synthetic.class_names(config.group)),
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
        per_class = config.train_per_class if split == "train" else config.test_per_class
        for row, (class_id, index) in enumerate(synthetic.example_order(config.group, per_class)):
            colour, texture, shape = synthetic.CLASSES[config.group][class_id]
            key = f"{split}/{row:05d}"
            image = synthetic.render(config.group, split, class_id, index, config.image_size,
                                     config.seed)
            yield key, {"image": image, "label": class_id, "colour": colour,
                        "texture": texture, "shape": shape, "id": key}
