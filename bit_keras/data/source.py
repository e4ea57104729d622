"""``Source``: a random-access set of labelled images, the one thing the pipelines read.

Images live in one of five stores, each an implementation of ``store.Store``: decoded
pixels in memory (``ArrayStore``: ``from_arrays``, ``from_dataset``), encoded images, each a
file path or its encoded bytes in memory (``EncodedStore``: a few-shot ``from_folder`` draw,
a TFDS split read into memory), files decoded lazily in the pipeline (``files.FileStore``:
``from_folder``), TFRecord shards streamed in file order (``records.RecordStore``) and a TFDS
split read by random access (``array_records.ArrayRecordStore``). A random-access store gives
the pipelines a TensorFlow function from an example index to a float32 HWC image in [0, 1],
so the same index always yields the same image and a pipeline can start anywhere in its
stream.
"""

import numpy as np
import tensorflow as tf

from bit_keras.data import headers
from bit_keras.data.store import Store


class ArrayStore(Store):
    """Decoded RGB images in one flat buffer (uint8 0..255 or float32 0..1), any sizes."""

    def __init__(self, flat, offsets, shapes):
        self.flat, self.offsets, self._shapes = flat, offsets, shapes

    @property
    def shapes(self):
        return self._shapes

    @classmethod
    def from_images(cls, images):
        shapes = np.array([im.shape[:2] for im in images], np.int64).reshape(-1, 2)
        sizes = shapes[:, 0] * shapes[:, 1] * 3
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        dtype = images[0].dtype if len(images) else np.uint8
        flat = np.concatenate([im.reshape(-1) for im in images]) if len(images) else (
            np.zeros([0], dtype))
        return cls(flat, offsets, shapes)

    def subset(self, indices):
        return ArrayStore.from_images([self.image(i) for i in indices])

    def image(self, i):
        h, w = self.shapes[i]
        return self.flat[self.offsets[i]:self.offsets[i + 1]].reshape(h, w, 3)

    def loader(self):
        flat = tf.constant(self.flat)
        offsets, shapes = tf.constant(self.offsets), tf.constant(self.shapes)
        scale = 255.0 if self.flat.dtype == np.uint8 else 1.0

        def load(i):
            pixels = flat[offsets[i]:offsets[i + 1]]
            image = tf.reshape(pixels, tf.concat([shapes[i], [3]], 0))
            return tf.cast(image, tf.float32) / scale
        return load


class EncodedStore(Store):
    """Encoded images (JPEG, PNG, BMP, GIF): a file path each, or the bytes in memory.

    ``blobs[i]`` non-empty means the bytes are in memory (a TFDS record, or a file that
    only Pillow could read, re-encoded as PNG); otherwise ``paths[i]`` is read.
    """

    def __init__(self, paths, blobs, shapes):
        self.paths, self.blobs, self._shapes = list(paths), list(blobs), shapes

    @property
    def shapes(self):
        return self._shapes

    def subset(self, indices):
        return EncodedStore([self.paths[i] for i in indices], [self.blobs[i] for i in indices],
                            self.shapes[np.asarray(indices, np.int64)].reshape(-1, 2))

    def loader(self):
        in_memory = [len(b) > 0 for b in self.blobs]
        paths, blobs = tf.constant(self.paths or [""]), tf.constant(self.blobs or [b""])

        def read(i):
            if all(in_memory):
                return tf.gather(blobs, i)
            if not any(in_memory):
                return tf.io.read_file(tf.gather(paths, i))
            blob = tf.gather(blobs, i)
            return tf.cond(tf.strings.length(blob) > 0, lambda: blob,
                           lambda: tf.io.read_file(tf.gather(paths, i)))

        def load(i):
            return headers.decode(read(i))
        return load


class Source:
    """Random-access labelled images, in memory or as file paths.

    Made by ``bit_keras.data.from_folder``, ``from_tfds``, ``from_arrays``,
    ``from_dataset`` or ``load_source``; read by ``bit_keras.data.train_dataset`` and
    ``eval_dataset``.

    Attributes:
        num_examples: how many images.
        num_classes: the number of classes (the width of the one-hot labels).
        class_names: a name per class, in label order.
        multi_label: True when an image may carry several labels (multi-hot labels,
            sigmoid cross-entropy), as in ImageNet-21k.
        labels: int64 ``(N,)`` class indices, or float32 ``(N, K)`` multi-hot rows.
        description: where the images came from, for logs.

    Example:

    >>> source = bit_keras.data.from_folder("flowers/", examples_per_class=5, seed=0)
    >>> source.num_examples, source.class_names[:2], source.median_image_area()
    """

    def __init__(self, store, labels, class_names, multi_label=False, description=""):
        self._store = store
        self.labels = labels
        self.class_names = list(class_names)
        self.multi_label = bool(multi_label)
        self.description = description

    @property
    def store(self):
        """The ``store.Store`` the images live in (a streamed source's files: ``streams``)."""
        return self._store

    @property
    def num_examples(self):
        return len(self.labels)

    @property
    def num_classes(self):
        return len(self.class_names)

    def __len__(self):
        return self.num_examples

    def __repr__(self):
        kind = "multi-label" if self.multi_label else "single-label"
        return (f"Source({self.description or 'images'}: {self.num_examples} images, "
                f"{self.num_classes} classes, {kind})")

    def image_sizes(self):
        """The original (height, width) of every image, an int64 ``(N, 2)`` array."""
        return self._store.shapes

    def median_image_area(self):
        """The median height x width of the original images (the HyperRule's resolution rule)."""
        if self.num_examples == 0:
            raise ValueError(f"{self!r} has no images, so it has no median image area.")
        return self._store.median_area()

    def one_hot_labels(self):
        """float32 ``(N, num_classes)``: one-hot rows, or the multi-hot rows as they are."""
        if self.multi_label:
            return self.labels.astype(np.float32)
        return np.eye(self.num_classes, dtype=np.float32)[self.labels].reshape(
            -1, self.num_classes)

    def subset(self, indices):
        """A new ``Source`` of the examples at ``indices`` (in that order)."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_examples):
            raise ValueError(f"indices must lie in [0, {self.num_examples}). Received: "
                             f"min {indices.min()}, max {indices.max()}")
        return Source(self._store.subset(indices), self.labels[indices], self.class_names,
                      self.multi_label, self.description)

    def per_class(self, examples_per_class, seed=0):
        """A few-shot subset: ``examples_per_class`` images of every class, drawn by ``seed``."""
        from bit_keras.data import sampling
        return self.subset(sampling.choose_per_class(
            self.labels, self.class_names, examples_per_class, seed, multi_label=self.multi_label))

    def image_loader(self):
        """A TensorFlow function: example index (int64 scalar) -> float32 HWC image in [0, 1]."""
        return self._store.loader()

    @property
    def streaming(self):
        """True when the pipelines stream the images from files (TFRecords) in file order."""
        return self._store.streaming

    @property
    def reads_in_python(self):
        """True when the pipelines read some images through Python (``tf.numpy_function``):
        ArrayRecord records, or files only Pillow decodes. A tf.data service worker cannot."""
        return self._store.reads_in_python

    @property
    def may_fail(self):
        """True when an image can fail to decode in the pipeline (files read lazily)."""
        return self._store.may_fail

    def describe_example(self, i):
        """A string tensor naming example ``i`` (its file path), for skip reports."""
        return self._store.describe(i)
