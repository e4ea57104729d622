"""The synthetic transfer task: classes, the upstream/downstream groups, image generation.

A class is a (colour, texture, shape) triple: 4 colours x 6 textures x 8 shapes = 192
classes. 24 of them are held out as the *downstream* group: new combinations of primitives
that all appear upstream (every shape with every texture, every colour with every shape and
every texture), so features learnt on the 168 *upstream* classes can transfer, while the
downstream classes themselves are never seen upstream. Each group has its own labels,
0..167 upstream and 0..23 downstream, and ``train``/``test`` splits.

Every example is drawn from its own generator seeded by (seed, group, split, class, index),
so an image does not depend on which other examples are generated, and ``generate`` here
and the TFDS builder give identical pixels.
"""

import itertools

import numpy as np

from bit_keras.datasets import drawing
from bit_keras.utils import checks

GROUPS = ("upstream", "downstream")
SPLITS = ("train", "test")


def _held_out(colour, texture, shape):
    # One shape per (colour, texture) pair; 3 * c mod 8 differs for the 4 colours, so no
    # (shape, texture) pair loses more than one of its colours, and none loses all.
    c, t, s = (list(drawing.COLOURS).index(colour), drawing.TEXTURES.index(texture),
               drawing.SHAPES.index(shape))
    return (s + 2 * t + 3 * c) % len(drawing.SHAPES) == 0


_ALL = list(itertools.product(drawing.COLOURS, drawing.TEXTURES, drawing.SHAPES))
CLASSES = {
    "upstream": tuple(t for t in _ALL if not _held_out(*t)),
    "downstream": tuple(t for t in _ALL if _held_out(*t)),
}


def class_names(group):
    """The class names of a group, in label order, e.g. ``"red_striped_star"``.

    Example:

    >>> bit_keras.datasets.class_names("downstream")[:2]
    ['red_solid_circle', 'red_striped_ring']
    """
    _check("group", group, GROUPS)
    return ["_".join(triple) for triple in CLASSES[group]]


def _check(name, value, accepted):
    if value not in accepted:
        raise ValueError(f"{name} must be one of {accepted}. Received: {name}={value!r}")


def render(group, split, class_id, index, image_size=64, seed=0):
    """One uint8 HxWx3 image: example ``index`` of class ``class_id`` in ``group``/``split``."""
    colour, texture, shape = CLASSES[group][class_id]
    rng = np.random.default_rng([seed, GROUPS.index(group), SPLITS.index(split),
                                 _ALL.index((colour, texture, shape)), index])
    image = drawing.draw(shape, texture, colour, image_size, rng)
    return np.round(image * 255).astype(np.uint8)


def example_order(group, examples_per_class):
    """(class id, index) pairs, round-robin over classes so that any prefix is balanced."""
    return [(c, i) for i in range(examples_per_class) for c in range(len(CLASSES[group]))]


def generate(group, split, examples_per_class, image_size=64, seed=0):
    """Draws a split of the synthetic dataset with NumPy alone (no TFDS, no files).

    Gives the images and labels of ``tfds.load("bit_synthetic/<group>...", split=split)``
    built with the same image size, examples per class and seed (TFDS stores them in
    another order; its ``id`` feature ``f"{split}/{row:05d}"`` names the row here).

    Args:
        group: ``"upstream"`` (168 classes) or ``"downstream"`` (24 other classes).
        split: ``"train"`` or ``"test"`` (different images of the same classes).
        examples_per_class: images drawn per class (a positive int).
        image_size: side of the square images in pixels (at least 16; default 64).
        seed: the dataset seed; the same seed gives the same pixels.

    Returns:
        ``(images, labels)``: uint8 ``[N, image_size, image_size, 3]`` and int64 ``[N]``
        labels of the group (``class_names(group)[label]``), classes round-robin.

    Example:

    >>> images, labels = bit_keras.datasets.generate("downstream", "train", 5)
    >>> images.shape, labels[:3]
    ((120, 64, 64, 3), array([0, 1, 2]))
    """
    _check("group", group, GROUPS)
    _check("split", split, SPLITS)
    checks.positive_int(examples_per_class, "examples_per_class")
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an int of at least 16. Received: image_size={image_size!r}")
    order = example_order(group, int(examples_per_class))
    images = np.empty((len(order), image_size, image_size, 3), np.uint8)
    for row, (class_id, index) in enumerate(order):
        images[row] = render(group, split, class_id, index, image_size, seed)
    labels = np.array([class_id for class_id, _ in order], np.int64)
    return images, labels


def factors(group, labels):
    """(colour, texture, shape) index arrays of a group's labels, e.g. for multi-label training.

    Indices refer to ``drawing.COLOURS``, ``drawing.TEXTURES`` and ``drawing.SHAPES``, the
    same in both groups, so they are the primitives the two groups share.
    """
    _check("group", group, GROUPS)
    table = np.array([(list(drawing.COLOURS).index(c), drawing.TEXTURES.index(t),
                       drawing.SHAPES.index(s)) for c, t, s in CLASSES[group]], np.int64)
    labels = np.asarray(labels, np.int64)
    return table[labels, 0], table[labels, 1], table[labels, 2]
