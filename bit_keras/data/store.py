"""``Store``: the declared protocol of what a ``Source`` keeps its images in.

Five stores implement it: ``ArrayStore`` (decoded pixels in memory), ``EncodedStore``
(encoded images, each a path or its bytes), ``FileStore`` (files decoded in the pipeline),
``RecordStore`` (TFRecord shards, streamed) and ``ArrayRecordStore`` (a TFDS split read by
random access). ``Source`` calls these methods and properties and nothing else, so a sixth
store is one class that implements them.
"""

import abc

import numpy as np
import tensorflow as tf


class Store(abc.ABC):
    """Where a ``Source``'s images live.

    Attributes (class defaults, overridden by the stores they do not fit):
        may_fail: an image can fail to decode in the pipeline (files, records read lazily).
        streaming: the pipelines stream the records in file order (no random access).
        reads_in_python: some image is read through Python (``tf.numpy_function``), which
            a tf.data service worker cannot run.
    """

    may_fail = False
    streaming = False
    reads_in_python = False

    @abc.abstractmethod
    def subset(self, indices):
        """A store of the images at ``indices`` (in that order)."""

    @property
    def shapes(self):
        """Every image's original (height, width), an int64 ``(N, 2)`` array."""
        raise ValueError(f"{type(self).__name__} does not know its images' sizes without "
                         "reading them all")

    def loader(self):
        """A TensorFlow function: index (int64 scalar) -> float32 HWC image in [0, 1]."""
        raise ValueError(f"{type(self).__name__} is streamed: its images have no random access")

    def median_area(self):
        """The median height x width of the images (the HyperRule's resolution rule)."""
        shapes = self.shapes.astype(np.float64)
        return float(np.median(shapes[:, 0] * shapes[:, 1]))

    def describe(self, i):
        """A string tensor naming element ``i``, for reports of unreadable images."""
        return tf.strings.as_string(i)
