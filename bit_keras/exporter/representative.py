"""Calibration images for full-integer TFLite: from a folder, a ``Source`` or an iterable."""

import os

import numpy as np


def images(data, count, image_size):
    """Up to ``count`` float32 ``[height, width, 3]`` images in [0, 1] from ``data``.

    A folder (of class subfolders) or a ``bit_keras.data.Source`` gives ``count`` images
    spread evenly over its examples (all classes, not the first class's), resized to
    ``image_size`` as for evaluation; an iterable (or a function returning one) gives its
    first ``count`` images as they are.

    Raises:
        ValueError: ``data`` is none of those, holds no image, or an image is not a
            ``[h, w, 3]`` float array in [0, 1]; the message says what was received.
    """
    from bit_keras import data as bit_data

    if isinstance(data, (str, os.PathLike)):
        if not os.path.isdir(data):
            raise ValueError("representative_data must be a folder of images (class "
                             f"subfolders), a Source or an iterable. Received: {data!r}, "
                             "which is not a folder")
        data = bit_data.load_source(os.fspath(data))
    if isinstance(data, bit_data.Source):
        return _from_source(bit_data, data, count, image_size)
    if callable(data):
        data = data()
    try:
        iterator = iter(data)
    except TypeError:
        raise ValueError("representative_data must be a folder, a bit_keras.data.Source, or "
                         "an iterable of float32 image arrays in [0, 1]. Received: "
                         f"{type(data).__name__}") from None
    out = []
    for item in iterator:
        array = np.asarray(item[0] if isinstance(item, tuple) else item)
        for image in (array if array.ndim == 4 else [array]):
            out.append(_checked(image, len(out)))
            if len(out) == count:
                return out
    if not out:
        raise ValueError("representative_data gave no image")
    return out


def _from_source(bit_data, source, count, image_size):
    if not source.streaming and source.num_examples > count:
        picks = np.unique(np.linspace(0, source.num_examples - 1, count).round().astype(np.int64))
        source = source.subset(picks)
    batches = bit_data.eval_dataset(source, 16, image_size)
    out = []
    for images, _ in batches:
        out.extend(np.asarray(images, np.float32))
        if len(out) >= count:
            break
    return out[:count]


def _checked(image, index):
    if image.ndim != 3 or image.shape[-1] != 3 or not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"representative image {index} must be a float [height, width, 3] "
                         f"array. Received: dtype {image.dtype}, shape {image.shape}")
    if not np.all(np.isfinite(image)) or image.min() < 0 or image.max() > 1:
        raise ValueError(f"representative image {index} must hold values in [0, 1] (the "
                         f"model's input convention). Received: values in "
                         f"[{np.nanmin(image):g}, {np.nanmax(image):g}]")
    return image.astype(np.float32)
