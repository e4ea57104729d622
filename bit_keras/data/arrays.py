"""Sources from memory: NumPy arrays (``from_arrays``) and finite ``tf.data`` datasets."""

import numpy as np
import tensorflow as tf

from bit_keras.data import sampling
from bit_keras.data.source import ArrayStore, Source


def from_arrays(images, labels, class_names=None, examples_per_class=None, seed=0):
    """A ``Source`` of images held in memory.

    Args:
        images: NHWC array (all one size) or a list of HWC arrays (any sizes); uint8
            0..255 or float in [0, 1]. One channel (or none: HW) is grayscale and becomes
            RGB; four channels are RGBA and the alpha channel is dropped.
        labels: int class indices ``(N,)``, or multi-hot rows ``(N, K)`` of 0/1 (multi-label
            data; rows that are all one-hot are taken as single-label classes).
        class_names: a name per class; default ``"0"``, ``"1"``, ... (``max(labels) + 1``
            classes for int labels).
        examples_per_class: keep only K images per class (few-shot), drawn by ``seed``.
        seed: the few-shot draw's seed.

    Returns:
        A ``bit_keras.data.Source``.

    Example:

    >>> x = np.random.randint(0, 256, (100, 32, 32, 3), np.uint8)
    >>> source = bit_keras.data.from_arrays(x, np.arange(100) % 10)
    """
    examples_per_class = sampling.check_examples_per_class(examples_per_class)
    seed = sampling.check_seed(seed)
    images = _rgb_images(images)
    labels, multi_label, num_classes = _labels(labels, len(images), class_names)
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    source = Source(ArrayStore.from_images(images), labels, [str(n) for n in class_names],
                    multi_label, description=f"{len(images)} images in memory")
    if examples_per_class is not None:
        source = source.per_class(examples_per_class, seed)
    return source


def from_dataset(ds, num_classes=None, examples_per_class=None, seed=0):
    """A ``Source`` from a finite ``tf.data.Dataset`` of ``(image, label)`` pairs.

    The dataset is read once into memory. Elements may also be dicts with ``"image"`` and
    ``"label"`` (TFDS style), and a batched dataset is unbatched.

    Args:
        ds: a finite ``tf.data.Dataset``; images as for ``from_arrays``, labels int scalars
            or multi-hot vectors.
        num_classes: the number of classes; default ``max(label) + 1`` (or the vector length).
        examples_per_class, seed: as for ``from_arrays``.

    Returns:
        A ``bit_keras.data.Source``.

    Example:

    >>> ds = tf.data.Dataset.from_tensor_slices((images, labels))
    >>> source = bit_keras.data.from_dataset(ds, num_classes=10)
    """
    if not isinstance(ds, tf.data.Dataset):
        raise TypeError(f"ds must be a tf.data.Dataset. Received: ds of type {type(ds).__name__}")
    if ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("ds must be finite (it is read once into memory), but it repeats "
                         "forever. Received: a dataset with infinite cardinality; drop its "
                         ".repeat().")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(
            num_classes, (int, np.integer)) or num_classes < 1):
        raise ValueError(f"num_classes must be a positive int or None. Received: "
                         f"num_classes={num_classes!r}")
    spec = ds.element_spec
    if isinstance(spec, dict) and {"image", "label"} <= set(spec):
        ds = ds.map(lambda e: (e["image"], e["label"]))
    elif not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError("ds must yield (image, label) pairs or {'image', 'label'} dicts. "
                         f"Received: elements {spec}")
    if ds.element_spec[0].shape.rank == 4:
        ds = ds.unbatch()
    images, labels = [], []
    for image, label in ds.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    if not images:
        raise ValueError("ds must hold at least one example. Received: an empty dataset")
    labels = np.stack(labels)
    class_names = None if num_classes is None else [str(i) for i in range(num_classes)]
    return from_arrays(images, labels, class_names, examples_per_class, seed)


def _rgb_images(images):
    """A list of HxWx3 arrays, uint8 or float32 in [0, 1]."""
    if isinstance(images, (np.ndarray, tf.Tensor)) or hasattr(images, "__array__"):
        images = np.asarray(images)
        if images.ndim not in (3, 4):
            raise ValueError("images must be NHWC (or NHW grayscale) or a list of HWC "
                             f"arrays. Received: images of shape {images.shape}")
        images = list(images)
    elif not isinstance(images, (list, tuple)):
        raise TypeError("images must be an array or a list of arrays. Received: "
                        f"{type(images).__name__}")
    if not images:
        raise ValueError("images must hold at least one image. Received: 0 images")
    return [_rgb(np.asarray(im), i) for i, im in enumerate(images)]


def _rgb(image, i):
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
        raise ValueError("every image must be HxW or HxWxC with C in 1, 3, 4. Received: "
                         f"image {i} of shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating):
        if not (np.all(np.isfinite(image)) and image.min() >= 0 and image.max() <= 1):
            raise ValueError("float images must lie in [0, 1] (uint8 images in 0..255). "
                             f"Received: image {i} with values in [{image.min()}, {image.max()}]")
        image = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.integer) and image.dtype != np.bool_:
        if image.min() < 0 or image.max() > 255:
            raise ValueError("integer images must lie in 0..255. Received: image "
                             f"{i} with values in [{image.min()}, {image.max()}]")
        image = image.astype(np.uint8)
    else:
        raise ValueError(f"images must be uint8 or float. Received: image {i} of dtype "
                         f"{image.dtype}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _labels(labels, n, class_names):
    """(labels, multi_label, num_classes): int64 (N,) or float32 multi-hot (N, K)."""
    labels = np.asarray(labels)
    if labels.shape[:1] != (n,) or labels.ndim not in (1, 2):
        raise ValueError(f"labels must be ({n},) class indices or ({n}, K) multi-hot rows, "
                         f"one per image. Received: labels of shape {labels.shape}")
    if labels.ndim == 2:
        if not np.all((labels == 0) | (labels == 1)):
            raise ValueError("multi-hot labels must be 0 or 1. Received: values "
                             f"{np.unique(labels)[:10]}")
        k = labels.shape[1]
        if class_names is not None and len(class_names) != k:
            raise ValueError(f"class_names must name all {k} label columns. Received: "
                             f"{len(class_names)} class_names")
        if np.all(labels.sum(axis=1) == 1):
            return labels.argmax(axis=1).astype(np.int64), False, k
        return labels.astype(np.float32), True, k
    if not (np.issubdtype(labels.dtype, np.integer) or np.all(labels == np.round(labels))):
        raise ValueError(f"labels must be int class indices. Received: dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    k = int(labels.max()) + 1 if class_names is None else len(class_names)
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"labels must lie in [0, {k}) for {k} classes. Received: labels in "
                         f"[{labels.min()}, {labels.max()}]")
    return labels, False, k
