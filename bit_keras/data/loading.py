"""``load_source``: one argument that names the data, as the command lines take it."""

import os

import tensorflow as tf

from bit_keras.data.arrays import from_arrays, from_dataset
from bit_keras.data.folder import from_folder
from bit_keras.data.records import from_tfrecords
from bit_keras.data.source import Source
from bit_keras.data.tfds_source import from_tfds

_KEYWORDS = {
    "folder": ("examples_per_class", "seed", "max_pixels"),
    "tfds": ("data_dir", "examples_per_class", "seed", "download", "manual_dir", "stream"),
    "dataset": ("num_classes", "examples_per_class", "seed"),
    "arrays": ("class_names", "examples_per_class", "seed"),
    "source": ("examples_per_class", "seed"),
    "tfrecords": ("class_names", "examples_per_class", "seed", "label_offset", "bad_records"),
}
TFRECORDS = "tfrecords:"
# The official BiT code's splits of the datasets it names: 2% (1%) of the training images are
# held out, and ImageNet is evaluated on its validation split.
OFFICIAL_SPLITS = {
    "cifar10": {"train": "train[:98%]", "test": "test"},
    "cifar100": {"train": "train[:98%]", "test": "test"},
    "imagenet2012": {"train": "train[:99%]", "test": "validation"},
}


def official_split(name, split):
    """The split the official BiT code reads for ``split`` ("train" or "test") of TFDS
    dataset ``name``; any other split (a slice such as "train[:100%]") as it is."""
    base = name.split(":")[0].split("/")[0]
    return OFFICIAL_SPLITS.get(base, {}).get(split, split)


def load_source(spec, split="train", **kwargs):
    """A ``Source`` from whatever names the data.

    Args:
        spec: one of
            - a ``bit_keras.data.Source`` (returned as is, or few-shot sampled);
            - a folder path: ``spec/<split>/`` when that subfolder exists (a folder with
              ``train/`` and ``test/``), else ``spec`` itself for ``split="train"``;
            - ``"tfds:NAME"`` or a TFDS name (``"cifar10"``); ``"train"`` and ``"test"``
              of the datasets the official BiT code names are its splits
              (``OFFICIAL_SPLITS``: cifar10/100 ``train[:98%]``/``test``, imagenet2012
              ``train[:99%]``/``validation``);
            - ``"tfrecords:GLOB"``: TFRecord files of ``tf.train.Example``; ``{split}`` in
              the glob is replaced by ``split`` (``"tfrecords:imagenet/{split}-*"``);
            - a finite ``tf.data.Dataset`` of ``(image, label)``;
            - an ``(images, labels)`` pair of arrays.
        split: the split to read (TFDS split, or the folder's subfolder).
        **kwargs: passed on to ``from_folder``, ``from_tfds``, ``from_dataset`` or
            ``from_arrays`` (``examples_per_class``, ``seed``, ``data_dir``, ...).

    Returns:
        A ``bit_keras.data.Source``.

    Example:

    >>> train = bit_keras.data.load_source("tfds:cifar10", "train", examples_per_class=10)
    >>> test = bit_keras.data.load_source("my_images/", "test")
    """
    if isinstance(spec, Source):
        _check_keywords("source", kwargs)
        if kwargs.get("examples_per_class") is not None:
            return spec.per_class(kwargs["examples_per_class"], kwargs.get("seed", 0))
        return spec
    if isinstance(spec, tf.data.Dataset):
        return from_dataset(spec, **_check_keywords("dataset", kwargs))
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        return from_arrays(spec[0], spec[1], **_check_keywords("arrays", kwargs))
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec:
        raise TypeError("spec must be a Source, a folder path, a TFDS name, a tf.data.Dataset "
                        f"or an (images, labels) pair. Received: {type(spec).__name__}")
    if spec.startswith(TFRECORDS):
        pattern = spec[len(TFRECORDS):]
        if "{split}" not in pattern and split != "train":
            raise FileNotFoundError(
                f"split {split!r} of {spec!r}: put {{split}} in the glob to name the files of "
                f"each split (\"tfrecords:data/{{split}}-*\"). Received: split={split!r}")
        return from_tfrecords(pattern.replace("{split}", split),
                              **_check_keywords("tfrecords", kwargs))
    if spec.startswith("tfds:"):
        name = spec[len("tfds:"):]
        return from_tfds(name, official_split(name, split), **_check_keywords("tfds", kwargs))
    if os.path.isdir(spec):
        if os.path.isdir(os.path.join(spec, split)):
            return from_folder(os.path.join(spec, split), **_check_keywords("folder", kwargs))
        if split != "train":
            raise FileNotFoundError(f"split {split!r} of folder {spec!r} must be its subfolder "
                                    f"{os.path.join(spec, split)!r}, which does not exist. "
                                    f"Received: split={split!r}")
        return from_folder(spec, **_check_keywords("folder", kwargs))
    # TFDS names hold "/" too ("bit_synthetic/downstream"), so only these look like paths.
    if spec.startswith((os.sep, ".", "~")) or os.path.exists(spec):
        raise FileNotFoundError(f"spec looks like a path but is not a folder. Received: "
                                f"spec={spec!r}")
    return from_tfds(spec, official_split(spec, split), **_check_keywords("tfds", kwargs))


def _check_keywords(kind, kwargs):
    unknown = sorted(set(kwargs) - set(_KEYWORDS[kind]))
    if unknown:
        raise ValueError(f"Unknown argument(s) for a {kind} source: {', '.join(unknown)}. "
                         f"Accepted: {', '.join(_KEYWORDS[kind])}")
    return kwargs
