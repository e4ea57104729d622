"""The synthetic transfer task: classes, their upstream/downstream split, and image generation.

A class is a (colour, texture, shape) triple: 4 colours x 6 textures x 8 shapes = 192
classes. 24 of them are held out as *downstream* classes: they are new combinations of
primitives that all appear upstream (every shape with every texture, every colour with
every shape and every texture), so features learnt upstream can transfer while the
downstream classes themselves were never seen. Labels are global: the 168 upstream classes
are 0..167 (so a head of 168 outputs fits the upstream splits), the downstream ones 168..191.

Every example is drawn from its own generator seeded by (seed, split, class, index), so an
image does not depend on which other examples are generated, and ``generate`` here and the
TFDS builder give identical pixels.
"""

import itertools

import numpy as np

from bit_keras.datasets import drawing

SPLITS = ("upstream_train", "upstream_test", "downstream_train", "downstream_test")


def _catalog():
    triples = list(itertools.product(drawing.COLOURS, drawing.TEXTURES, drawing.SHAPES))
    # Held out: one shape per (colour, texture) pair, chosen so that no (shape, texture),
    # (shape, colour) or (texture, colour) pair is held out entirely.
    n_c, n_t, n_s = len(drawing.COLOURS), len(drawing.TEXTURES), len(drawing.SHAPES)

    def held_out(triple):
        c, t, s = (list(drawing.COLOURS).index(triple[0]), drawing.TEXTURES.index(triple[1]),
                   drawing.SHAPES.index(triple[2]))
        return (s + 2 * t + 3 * c) % n_s == 0

    assert n_s == 8 and n_c <= 4  # 3 * c mod 8 differs for c < 4: one colour per (shape, texture)
    upstream = [t for t in triples if not held_out(t)]
    downstream = [t for t in triples if held_out(t)]
    return upstream + downstream, len(upstream)


CLASSES, NUM_UPSTREAM = _catalog()
NUM_CLASSES = len(CLASSES)
NUM_DOWNSTREAM = NUM_CLASSES - NUM_UPSTREAM
CLASS_NAMES = tuple("_".join(triple) for triple in CLASSES)


def split_classes(split):
    """The global class ids present in ``split`` (upstream: 0..167, downstream: 168..191).

    Example:

    >>> bit_keras.datasets.split_classes("downstream_test")[:3]
    [168, 169, 170]
    """
    _check_split(split)
    if split.startswith("upstream"):
        return list(range(NUM_UPSTREAM))
    return list(range(NUM_UPSTREAM, NUM_CLASSES))


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}. Received: split={split!r}")


def render(class_id, split, index, image_size=64, seed=0):
    """One uint8 HxWx3 image of class ``class_id``: example ``index`` of ``split``."""
    colour, texture, shape = CLASSES[class_id]
    rng = np.random.default_rng([seed, SPLITS.index(split), class_id, index])
    image = drawing.draw(shape, texture, colour, image_size, rng)
    return np.round(image * 255).astype(np.uint8)


def example_order(split, examples_per_class):
    """(class id, index) pairs of a split, round-robin over classes so any prefix is balanced."""
    classes = split_classes(split)
    return [(c, i) for i in range(examples_per_class) for c in classes]


def generate(split, examples_per_class, image_size=64, seed=0):
    """Draws a split of the synthetic dataset with NumPy alone (no TFDS, no files).

    Gives the same images and labels as ``tfds.load("bit_synthetic/...", split=split)`` with
    the same image size, examples per class and seed (TFDS stores them in another order;
    the ``id`` feature there is ``f"{split}/{index:05d}"`` with ``index`` the row here).

    Args:
        split: ``"upstream_train"``, ``"upstream_test"``, ``"downstream_train"`` or
            ``"downstream_test"``.
        examples_per_class: images drawn per class (a positive int).
        image_size: side of the square images in pixels (at least 16; 64 is the default).
        seed: the dataset seed; the same seed gives the same pixels.

    Returns:
        ``(images, labels)``: uint8 ``[N, image_size, image_size, 3]`` and int64 ``[N]``
        global class ids (see ``CLASS_NAMES``), classes interleaved round-robin.

    Example:

    >>> images, labels = bit_keras.datasets.generate("downstream_train", 5, image_size=64)
    >>> images.shape, labels[:3]
    ((120, 64, 64, 3), array([168, 169, 170]))
    """
    _check_split(split)
    if not isinstance(examples_per_class, (int, np.integer)) or examples_per_class < 1:
        raise ValueError("examples_per_class must be a positive int. "
                         f"Received: examples_per_class={examples_per_class!r}")
    if not isinstance(image_size, (int, np.integer)) or image_size < 16:
        raise ValueError(f"image_size must be an int of at least 16. Received: image_size={image_size!r}")
    order = example_order(split, int(examples_per_class))
    images = np.empty((len(order), image_size, image_size, 3), np.uint8)
    for row, (class_id, index) in enumerate(order):
        images[row] = render(class_id, split, index, image_size, seed)
    labels = np.array([class_id for class_id, _ in order], np.int64)
    return images, labels


def factors(labels):
    """(colour, texture, shape) index arrays of global labels, e.g. for multi-label training."""
    labels = np.asarray(labels)
    table = np.array([(list(drawing.COLOURS).index(c), drawing.TEXTURES.index(t),
                       drawing.SHAPES.index(s)) for c, t, s in CLASSES], np.int64)
    return table[labels, 0], table[labels, 1], table[labels, 2]
