"""``from_folder``: a ``Source`` from a folder of class subfolders of image files.

Every file is decoded once when the source is made: by TensorFlow when it can (JPEG, PNG,
24/32-bit BMP, GIF, which the pipelines then read from disk), else by Pillow (TIFF, WebP,
PPM, palette BMP, and variants TensorFlow refuses, kept in memory re-encoded as PNG). A
file neither can read is skipped, and all such files are reported in one warning.
"""

import concurrent.futures
import io
import os
import warnings

import numpy as np
import tensorflow as tf

from bit_keras.data import sampling
from bit_keras.data.source import EncodedStore, Source

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")
_MAX_NAMED = 50  # files named in the skip warning; the count covers them all


def from_folder(path, examples_per_class=None, seed=0):
    """A ``Source`` from ``path/<class name>/**/<image file>``.

    Classes are the subfolder names, sorted; files are found recursively and sorted, so
    labels and few-shot draws do not depend on the file system's listing order. Files
    whose extension is not an image extension (``IMAGE_EXTENSIONS``) and hidden files are
    ignored. Grayscale, palette and RGBA images become RGB (alpha is dropped).

    Args:
        path: the folder.
        examples_per_class: keep K images per class (few-shot), drawn by ``seed``; then
            only files drawn (and any unreadable ones passed over) are decoded.
        seed: the few-shot draw's seed.

    Returns:
        A ``bit_keras.data.Source`` whose images are read from disk by the pipelines.

    Raises:
        FileNotFoundError / NotADirectoryError: ``path`` is not a folder.
        ValueError: no class subfolders, a class without readable images, or (with
            ``examples_per_class``) a class with fewer than K; the message names the class.

    Example:

    >>> source = bit_keras.data.from_folder("flowers/train", examples_per_class=10, seed=0)
    """
    examples_per_class = sampling.check_examples_per_class(examples_per_class)
    seed = sampling.check_seed(seed)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path must be an existing folder. Received: path={path!r}")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"path must be a folder of class subfolders. Received: "
                                 f"path={path!r} (a file)")
    classes = sorted(d.name for d in os.scandir(path)
                     if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"path must hold one subfolder per class, but {path!r} has none. "
                         "Expected path/<class name>/<image files>.")
    files, labels = [], []
    for c, name in enumerate(classes):
        found = _image_files(os.path.join(path, name))
        files += found
        labels += [c] * len(found)
    labels = np.asarray(labels, np.int64)
    prober = _Prober()
    try:
        indices = _choose(files, labels, classes, examples_per_class, seed, prober, path)
    finally:
        prober.warn(path)  # also when the choice fails: the skipped files may be why
    store = EncodedStore([files[i] if not prober.blobs[i] else "" for i in indices],
                         [prober.blobs[i] for i in indices],
                         np.array([prober.shapes[i] for i in indices], np.int64).reshape(-1, 2))
    return Source(store, labels[np.asarray(indices, np.int64)], classes,
                  description=f"folder {path}")


def _choose(files, labels, classes, examples_per_class, seed, prober, path):
    """Indices of the readable files kept: all of them, or K per class."""
    if examples_per_class is not None:
        return sampling.choose_per_class(labels, classes, examples_per_class, seed,
                                         accept=lambda batch: prober.probe(batch, files))
    readable = prober.probe(list(range(len(files))), files)
    indices = [i for i, ok in enumerate(readable) if ok]
    counts = np.bincount(labels[indices], minlength=len(classes))
    if np.any(counts == 0):
        empty = [classes[c] for c in np.flatnonzero(counts == 0)]
        raise ValueError(f"every class needs at least one readable image, but class(es) "
                         f"{', '.join(map(repr, empty))} in {path!r} have none "
                         f"(looked for files ending in {', '.join(IMAGE_EXTENSIONS)}).")
    return indices


def _image_files(folder):
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(root, n) for n in names
                  if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


class _Prober:
    """Decodes files once (in threads), remembering sizes, Pillow fallbacks and failures."""

    def __init__(self):
        self.shapes, self.blobs, self.failed = {}, {}, {}

    def probe(self, indices, files):
        workers = min(8, len(indices)) or 1
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda i: (i, _decode(files[i])), indices))
        for i, (shape, blob, error) in results:
            if error is not None:
                self.failed[files[i]] = error
            else:
                self.shapes[i], self.blobs[i] = shape, blob
        return [error is None for _, (_, _, error) in results]

    def warn(self, path):
        if not self.failed:
            return
        names = sorted(self.failed)
        listed = "; ".join(f"{os.path.relpath(f, path)} ({self.failed[f]})"
                           for f in names[:_MAX_NAMED])
        more = f"; and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else ""
        warnings.warn(f"Skipped {len(names)} unreadable image file(s) in {path}: {listed}{more}",
                      stacklevel=3)
        self.failed = {}


def _decode(filename):
    """(shape, png_bytes or b"", error or None): TensorFlow first, Pillow second."""
    try:
        with open(filename, "rb") as f:
            data = f.read()
    except OSError as e:
        return None, b"", e.strerror or str(e)
    if _tf_decodes_right(data):
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tuple(image.shape[:2]), b"", None
        except tf.errors.OpError:
            pass
    try:
        from PIL import Image
        with Image.open(io.BytesIO(data)) as im:
            pixels = np.asarray(im.convert("RGB"))
    except Exception as e:  # Pillow raises many kinds; any of them means unreadable.
        return None, b"", _short(e)
    return pixels.shape[:2], tf.io.encode_png(pixels).numpy(), None


def _tf_decodes_right(data):
    """False for palette BMPs (1-8 bits a pixel): TensorFlow 2.21 decodes their palette
    indices as gray levels, silently. Seen here; Pillow maps the palette."""
    if data[:2] == b"BM" and len(data) >= 30:
        return int.from_bytes(data[28:30], "little") in (24, 32)
    return True


def _short(error):
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:120]
