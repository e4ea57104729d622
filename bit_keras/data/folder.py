"""``from_folder``: a ``Source`` from a folder of class subfolders of image files.

Making the source lists the files (cached: ``folder_index.py``) and decodes nothing: the
pipelines read and decode each file when the stream reaches it (``files.FileStore``), so
start-up and memory do not grow with the images' bytes, only with the number of paths. A
file that turns out unreadable is skipped there and reported (``pipeline.py``).
``scan(folder)`` decodes every file up front, in threads, for those who want the check first.

A few-shot draw (``examples_per_class=K``) decodes the K files drawn per class (and any
unreadable ones it passes over) when the source is made, as before: that is bounded by
``K x classes``, not by the folder.
"""

import concurrent.futures
import dataclasses
import io
import os
import stat
import warnings

import numpy as np
import tensorflow as tf

from bit_keras.data import folder_index, headers, sampling
from bit_keras.data.files import FileStore
from bit_keras.data.source import EncodedStore, Source
from bit_keras.utils import checks

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm")
_MAX_NAMED = 50  # files named in the skip warning; the count covers them all


def from_folder(path, examples_per_class=None, seed=0, cache_listing=True, max_pixels=None):
    """A ``Source`` from ``path/<class name>/**/<image file>``.

    Classes are the subfolder names, sorted; files are found recursively and sorted, so
    labels and few-shot draws do not depend on the file system's listing order. Files
    whose extension is not an image extension (``IMAGE_EXTENSIONS``) and hidden files are
    ignored. Grayscale, palette and RGBA images become RGB (alpha is dropped).

    Args:
        path: the folder.
        examples_per_class: keep K images per class (few-shot), drawn by ``seed``; only
            the files drawn (and any unreadable ones passed over) are decoded.
        seed: the few-shot draw's seed.
        cache_listing: reuse the file list of an unchanged folder from
            ``$BIT_KERAS_HOME/folder_index`` (``folder_index.py``), and write it there.
        max_pixels: an image whose header declares more pixels (height x width) is skipped
            and reported, never decoded. Default ``$BIT_KERAS_MAX_IMAGE_PIXELS``, else
            36,000,000 (``bit_keras.data.headers``).

    Returns:
        A ``bit_keras.data.Source`` whose images are read and decoded by the pipelines. A
        file that cannot be decoded is skipped when the stream reaches it and reported
        (the log, and ``<run_dir>/skipped_files.txt`` for a training run).

    Raises:
        FileNotFoundError / NotADirectoryError: ``path`` is not a folder.
        ValueError: no class subfolders, a class without image files, or (with
            ``examples_per_class``) a class with fewer than K readable; the message names
            the class.

    Example:

    >>> source = bit_keras.data.from_folder("flowers/train", examples_per_class=10, seed=0)
    """
    examples_per_class = sampling.check_examples_per_class(examples_per_class)
    seed = sampling.check_seed(seed)
    limit = headers.max_pixels(max_pixels)
    path = _check_folder(path)
    classes, relative, labels = folder_index.list_folder(path, IMAGE_EXTENSIONS, cache_listing)
    if not classes:
        raise ValueError(f"path must hold one subfolder per class, but {path!r} has none. "
                         "Expected path/<class name>/<image files>.")
    files = [os.path.join(path, f) for f in relative]
    labels = np.asarray(labels, np.int64)
    description = f"folder {path}"
    if examples_per_class is None:
        counts = np.bincount(labels, minlength=len(classes))
        if np.any(counts == 0):
            empty = [classes[c] for c in np.flatnonzero(counts == 0)]
            raise ValueError(f"every class needs at least one image file, but class(es) "
                             f"{', '.join(map(repr, empty))} in {path!r} have none "
                             f"(looked for files ending in {', '.join(IMAGE_EXTENSIONS)}).")
        return Source(FileStore(files, limit), labels, classes, description=description)
    prober = _Prober(limit)
    try:
        indices = sampling.choose_per_class(labels, classes, examples_per_class, seed,
                                            accept=lambda batch: prober.probe(batch, files))
    finally:
        prober.warn(path)  # also when the choice fails: the skipped files may be why
    store = EncodedStore([files[i] if not prober.blobs[i] else "" for i in indices],
                         [prober.blobs[i] for i in indices],
                         np.array([prober.shapes[i] for i in indices], np.int64).reshape(-1, 2))
    return Source(store, labels[np.asarray(indices, np.int64)], classes, description=description)


@dataclasses.dataclass
class ScanReport:
    """What ``scan`` found: how many files, and the unreadable ones with the reason."""

    folder: str
    num_files: int
    unreadable: dict

    @property
    def ok(self):
        return not self.unreadable


def scan(path, workers=None, max_pixels=None):
    """Decodes every image file of a folder in parallel threads; returns a ``ScanReport``.

    ``from_folder`` decodes nothing up front (a bad file is skipped when a stream meets
    it); ``scan`` is the check for those who want it first: every file is decoded as the
    pipelines would (TensorFlow, else Pillow), once its header is checked against
    ``max_pixels`` (as ``from_folder``'s): a larger image is reported, not decoded.

    Example:

    >>> report = bit_keras.data.scan("imagenet/train")
    >>> report.num_files, sorted(report.unreadable)[:3]
    """
    limit = headers.max_pixels(max_pixels)
    checks.positive_int(workers, "workers", allow_none=True)
    path = _check_folder(path)
    _, relative, _ = folder_index.list_folder(path, IMAGE_EXTENSIONS)
    workers = workers or min(32, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda f: _decode(os.path.join(path, f), limit)[2], relative,
                           chunksize=16)
        unreadable = {f: error for f, error in zip(relative, results) if error is not None}
    return ScanReport(path, len(relative), unreadable)


def _check_folder(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path must be an existing folder. Received: path={path!r}")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"path must be a folder of class subfolders. Received: "
                                 f"path={path!r} (a file)")
    return path


class _Prober:
    """Decodes files once (in threads), remembering sizes, Pillow fallbacks and failures."""

    def __init__(self, limit):
        self.limit = limit
        self.shapes, self.blobs, self.failed = {}, {}, {}

    def probe(self, indices, files):
        workers = min(8, len(indices)) or 1
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda i: (i, _decode(files[i], self.limit)), indices))
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


def _decode(filename, limit):
    """(shape, png_bytes or b"", error or None): TensorFlow first, Pillow second; only a
    regular file (after links) is opened, and only an image of at most ``limit`` pixels
    (its header says) is decoded."""
    try:
        if not stat.S_ISREG(os.stat(filename).st_mode):  # a FIFO would block open() forever
            return None, b"", "not a regular file (a FIFO, socket or device)"
        with open(filename, "rb") as f:
            data = f.read()
        headers.check_bytes(data, limit)
    except OSError as e:
        return None, b"", e.strerror or str(e)
    except ValueError as e:
        return None, b"", str(e)
    if _tf_decodes_right(data):
        try:
            image = tf.io.decode_image(headers.check_encoded(data, limit), channels=3,
                                       expand_animations=False)
            return tuple(image.shape[:2]), b"", None
        except tf.errors.OpError:
            pass
    try:
        from PIL import Image
        with Image.open(io.BytesIO(data)) as im:
            headers.check_pillow(im, limit)
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
