"""``FileStore``: image files read and decoded lazily, in the pipeline, one at a time.

Nothing is decoded when a source is made: the store holds the paths only. TensorFlow
decodes JPEG, PNG, GIF and BMP; other extensions (TIFF, WebP, PPM, ...) and palette BMPs
(which TensorFlow 2.21 misreads as gray levels) go to Pillow through ``tf.numpy_function``.
A file that cannot be read or decoded fails its element; the pipelines then take the next
candidate (see ``pipeline.py``) and report the file, so one bad file never stops a run.
"""

import concurrent.futures

import numpy as np
import tensorflow as tf

from bit_keras.data import headers
from bit_keras.data.store import Store

# What tf.io.decode_image reads right; the rest goes to Pillow.
TF_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp")
SIZE_SAMPLE = 1000  # files whose headers estimate the median image area


def _pillow_decode(path, limit):
    """The RGB pixels, or an empty array when Pillow cannot read the file or it is over
    ``limit`` pixels (the graph then fails the element with a message, and no Python
    traceback is printed)."""
    from PIL import Image
    try:
        with Image.open(path.decode("utf-8", "surrogateescape")) as im:
            headers.check_pillow(im, limit)  # before any pixel is decoded
            return np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001 - any failure means the file is skipped and reported
        return np.zeros([0, 0, 3], np.uint8)


def _palette_bmp(data):
    """True for a BMP of 1-8 bits a pixel (its bit count is the uint16 at byte 28)."""
    head = tf.io.decode_raw(tf.strings.substr(tf.strings.join([data, b"\0" * 30]), 0, 30),
                            tf.uint8)
    bits = tf.cast(head[28], tf.int32) + 256 * tf.cast(head[29], tf.int32)
    return tf.logical_and(tf.equal(tf.strings.substr(data, 0, 2), b"BM"), bits <= 8)


def header_size(path):
    """(height, width) from an image file's header (Pillow reads no pixels), or None."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            return im.height, im.width
    except Exception:  # noqa: BLE001 - unreadable: left out of the estimate
        return None


def header_sizes_of_bytes(blobs):
    """The (height, width) of encoded images in memory (``(0, 0)`` for unreadable ones)."""
    import io
    return header_sizes([io.BytesIO(b) for b in blobs], workers=1)


def header_sizes(paths, workers=8):
    """The (height, width) of every path (``(0, 0)`` for unreadable ones), in threads."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(header_size, paths, chunksize=64))
    return np.array([s or (0, 0) for s in sizes], np.int64).reshape(-1, 2)


def sampled_median_area(count, all_shapes, shapes_of):
    """The median height x width of ``count`` images, over a fixed sample of ``SIZE_SAMPLE``
    of them at most: ``all_shapes()`` gives every ``(height, width)`` (a small store, or
    shapes known already), else ``shapes_of(sorted positions)`` the sample's. Unreadable
    images (``(0, 0)``) are left out; None when none is readable."""
    if all_shapes is not None:
        shapes = all_shapes()
    else:
        picked = np.random.default_rng(0).choice(count, SIZE_SAMPLE, replace=False)
        shapes = shapes_of(np.sort(picked))
    shapes = shapes[(shapes > 0).all(axis=1)].astype(np.float64)
    return float(np.median(shapes[:, 0] * shapes[:, 1])) if len(shapes) else None


class FileStore(Store):
    """Image files, decoded in the pipeline. ``may_fail``: an element can fail to decode
    (an image over ``max_pixels`` fails from its header, before decoding)."""

    may_fail = True

    def __init__(self, paths, max_pixels=None):
        self.paths = list(paths)
        self.max_pixels = headers.max_pixels(max_pixels)
        self._shapes = self._tensor = None

    def subset(self, indices):
        return FileStore([self.paths[i] for i in indices], self.max_pixels)

    @property
    def reads_in_python(self):
        """True when some file goes to Pillow (an extension TensorFlow does not decode, or a
        BMP, which may be a palette one)."""
        return any(not p.lower().endswith(TF_EXTENSIONS) or p.lower().endswith(".bmp")
                   for p in self.paths)

    @property
    def shapes(self):
        """Every file's original (height, width), read from the headers on first use (this
        opens every file: a full folder's ``median_area`` uses a sample instead)."""
        if self._shapes is None:
            self._shapes = header_sizes(self.paths)
        return self._shapes

    def median_area(self):
        """The median height x width, over a fixed sample of ``SIZE_SAMPLE`` files at most."""
        known = self._shapes is not None or len(self.paths) <= SIZE_SAMPLE
        area = sampled_median_area(len(self.paths), (lambda: self.shapes) if known else None,
                                   lambda picked: header_sizes([self.paths[i] for i in picked]))
        if area is None:
            raise ValueError("no image file of this source could be read to estimate the "
                             "median image area; run bit_keras.data.scan on the folder")
        return area

    def describe(self, i):
        """The path of element ``i`` (a string tensor), for reports of unreadable files."""
        return tf.gather(self._paths_tensor(), i)

    def _paths_tensor(self):
        if self._tensor is None:
            self._tensor = tf.constant(self.paths)
        return self._tensor

    def loader(self):
        paths = self._paths_tensor()
        pillow_maybe = self.reads_in_python
        tf_pattern = "(?i).*(" + "|".join(e.replace(".", r"\.") for e in TF_EXTENSIONS) + ")"

        limit = self.max_pixels

        def pillow(path):
            image = tf.numpy_function(_pillow_decode, [path, limit], tf.uint8, stateful=False)
            read = tf.debugging.Assert(tf.size(image) > 0, [
                "Pillow cannot read", path, f"or it is over {limit} pixels (max_pixels)"])
            with tf.control_dependencies([read]):
                image = tf.reshape(image, tf.concat([tf.shape(image)[:2], [3]], 0))
            return tf.cast(image, tf.float32) / 255.0

        def load(i):
            path = tf.gather(paths, i)
            data = tf.io.read_file(path)

            def with_tf():
                return headers.decode(data, limit)

            image = with_tf() if not pillow_maybe else tf.cond(
                tf.logical_and(tf.strings.regex_full_match(path, tf_pattern),
                               tf.logical_not(_palette_bmp(data))),
                with_tf, lambda: pillow(path))
            image.set_shape([None, None, 3])
            return image
        return load
