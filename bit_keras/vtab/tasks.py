"""The 19 VTAB-1k tasks as ``task_adaptation`` defines them (Zhai et al., arXiv 1910.04867).

Each task is a TFDS dataset, a label (a feature, possibly binned), a head size, a category
(natural, specialized, structured) and a rule that cuts its TFDS splits into ``train800``,
``val200``, ``train800val200`` (the 1000 examples VTAB-1k trains on) and ``test``:

- ``("cut", p)``: the TFDS ``train`` split's first p% is VTAB's train split, the rest val:
  ``val200`` is the 200 examples after the first p% (caltech101, cifar100, svhn: 90;
  oxford_iiit_pet: 80; clevr: 90); ``test`` is TFDS ``test``.
- ``("cut3", p, q)``: one TFDS split cut p% / q% / the rest into train / val / test
  (eurosat, resisc45: 60/20; dsprites: 80/10).
- ``("validation", name)``: ``val200`` is ``name[:200]`` (dtd, flowers, sun397,
  patch_camelyon, diabetic_retinopathy, dmlab, kitti: ``validation``; smallnorb: ``test``,
  whose first half is VTAB's val and second half its test).
"""

import dataclasses

import numpy as np
import tensorflow as tf

from bit_keras.models import variants

CATEGORIES = ("natural", "specialized", "structured")


@dataclasses.dataclass(frozen=True)
class Task:
    """One VTAB-1k task.

    Attributes:
        name: the bucket's spelling (``"clevr-count"``).
        tfds: the TFDS name and version task_adaptation loads (``"clevr:3.*.*"``).
        category: ``"natural"``, ``"specialized"`` or ``"structured"``.
        num_classes: the head size.
        label: the TFDS feature holding the label.
        bins: the label is ``feature // bins`` (dSprites' 32 positions and 40 orientations
            into 16 classes), or 1.
        rule: how the TFDS splits become VTAB's (see the module docstring).
        computed: the name of a function in ``LABEL_FUNCTIONS`` that computes the label
            from the object annotations (CLEVR, KITTI), or ``""``.
    """

    name: str
    tfds: str
    category: str
    num_classes: int
    label: str = "label"
    bins: float = 1
    rule: tuple = ("validation", "validation")
    computed: str = ""

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"category must be one of {CATEGORIES}. Received: "
                             f"category={self.category!r}")


def _task(name, tfds, category, **kw):
    return Task(name, tfds, category, variants.VTAB_TASKS[name], **kw)


TASKS = {t.name: t for t in (
    _task("caltech101", "caltech101:3.*.*", "natural", rule=("cut", 90)),
    _task("cifar100", "cifar100:3.*.*", "natural", rule=("cut", 90)),
    _task("dtd", "dtd:3.*.*", "natural"),
    _task("oxford_flowers102", "oxford_flowers102:2.*.*", "natural"),
    _task("oxford_iiit_pet", "oxford_iiit_pet:3.*.*", "natural", rule=("cut", 80)),
    _task("sun397", "sun397/tfds:4.*.*", "natural"),
    _task("svhn", "svhn_cropped:3.*.*", "natural", rule=("cut", 90)),
    _task("patch_camelyon", "patch_camelyon:2.*.*", "specialized"),
    _task("eurosat", "eurosat/rgb:2.*.*", "specialized", rule=("cut3", 60, 20)),
    _task("resisc45", "resisc45:3.*.*", "specialized", rule=("cut3", 60, 20)),
    _task("diabetic_retinopathy", "diabetic_retinopathy_detection/btgraham-300:3.*.*",
          "specialized"),
    _task("clevr-count", "clevr:3.*.*", "structured", rule=("cut", 90),
          computed="clevr_count"),
    _task("clevr-distance", "clevr:3.*.*", "structured", rule=("cut", 90),
          computed="clevr_distance"),
    _task("dmlab", "dmlab:2.0.1", "structured"),
    _task("kitti-distance", "kitti:3.1.0", "structured",
          computed="kitti_distance"),
    _task("dsprites-xpos", "dsprites:2.*.*", "structured", label="label_x_position",
          bins=2, rule=("cut3", 80, 10)),
    _task("dsprites-orientation", "dsprites:2.*.*", "structured", label="label_orientation",
          bins=2.5, rule=("cut3", 80, 10)),
    _task("smallnorb-azimuth", "smallnorb:2.*.*", "structured", label="label_azimuth",
          rule=("validation", "test")),
    _task("smallnorb-elevation", "smallnorb:2.*.*", "structured", label="label_elevation",
          rule=("validation", "test")),
)}


def _bin(value, thresholds):
    """The index of the last threshold below ``value`` (task_adaptation's binning)."""
    below = tf.where(tf.constant(thresholds, tf.float32) - tf.cast(value, tf.float32) < 0)
    return tf.reduce_max(below)


def clevr_count(example):
    """CLEVR: the number of objects, 3..10, as 0..7."""
    return tf.cast(tf.size(example["objects"]["size"]) - 3, tf.int64)


def clevr_distance(example):
    """CLEVR: the closest object's depth (``pixel_coords[:, 2]``) in 6 bins."""
    depth = tf.reduce_min(example["objects"]["pixel_coords"][:, 2])
    return _bin(depth, np.array([0.0, 8.0, 8.5, 9.0, 9.5, 10.0, 100.0]))


def kitti_distance(example):
    """KITTI: the closest car, van or truck (types 0-2) in 3 distance bins, or no vehicle."""
    objects = example["objects"]
    vehicles = tf.where(objects["type"] < 3)
    z = tf.gather(objects["location"][:, 2], vehicles)
    z = tf.concat([tf.cast(z, tf.float32), tf.constant([[1000.0]])], axis=0)
    return _bin(tf.reduce_min(z), np.array([-100.0, 8.0, 20.0, 999.0]))


LABEL_FUNCTIONS = {"clevr_count": clevr_count, "clevr_distance": clevr_distance,
                   "kitti_distance": kitti_distance}


def label_of(task, example):
    """The task's int64 label of one TFDS example (a dict of tensors)."""
    if task.computed:
        return LABEL_FUNCTIONS[task.computed](example)
    label = example[task.label]
    if task.bins == 1:
        return tf.cast(label, tf.int64)
    return tf.cast(tf.math.floordiv(tf.cast(label, tf.float32), float(task.bins)), tf.int64)


def splits(task, counts):
    """VTAB's splits of ``task`` as TFDS split strings.

    Args:
        task: a ``Task``.
        counts: examples per TFDS split, e.g. ``{"train": 3060, "test": 6084}``.

    Returns:
        dict with ``train800``, ``val200``, ``train800val200`` and ``test``.

    Example:

    >>> splits(TASKS["caltech101"], {"train": 3060, "test": 6084})["val200"]
    'train[2754:2954]'
    """
    kind = task.rule[0]
    if kind == "validation":
        val = task.rule[1]
        test = "test[50%:]" if val == "test" else "test"
        return {"train800": "train[:800]", "val200": f"{val}[:200]",
                "train800val200": f"train[:800]+{val}[:200]", "test": test}
    total = counts["train"]
    cut = task.rule[1] * total // 100
    val200 = f"train[{cut}:{cut + 200}]"
    if kind == "cut":
        test = "test"
    elif kind == "cut3":
        test = f"train[{cut + task.rule[2] * total // 100}:]"
    else:
        raise ValueError(f"Unknown split rule {task.rule!r} of task {task.name!r}")
    return {"train800": "train[:800]", "val200": val200,
            "train800val200": f"train[:800]+{val200}", "test": test}


def chosen_tasks(tasks, name=None):
    """The ``Task`` objects that ``tasks`` names (names or ``Task`` objects; default all 19);
    a ValueError listing the unknown ones (``name``: the flag they came from)."""
    unknown = [t for t in tasks or () if not isinstance(t, Task) and t not in TASKS]
    if unknown:
        accepted = ", ".join(TASKS)
        raise ValueError(f"{name} has unknown VTAB-1k tasks {unknown}. Accepted: {accepted}"
                         if name else f"Unknown VTAB-1k tasks {unknown}. Accepted: {accepted} "
                         "or bit_keras.vtab.Task objects")
    return [TASKS[t] if isinstance(t, str) else t for t in (tasks or list(TASKS))]
