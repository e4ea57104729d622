"""``ArrayRecordStore``: a TFDS split prepared as ArrayRecord, read by random access.

TFDS's random-access data source (``builder.as_data_source``) reads record ``i`` of a
split without reading the others, so the pipelines treat it as they treat a folder:
element ``g`` of a stream is a pure function of ``(seed, g)`` and a resumed run is exact.
The store keeps the data source (open file handles, no records) and, in the ``Source``,
one int label per example from one cached pass over the label feature.
"""

import numpy as np
import tensorflow as tf

from bit_keras.data import headers
from bit_keras.data.files import SIZE_SAMPLE, header_sizes_of_bytes, sampled_median_area
from bit_keras.data.store import Store

_READ_BATCH = 1024  # records read together by the label pass


class ArrayRecordStore(Store):
    """Records ``indices`` of a TFDS ArrayRecord data source; ``parse(serialized) ->
    (encoded image, int64 label)``."""

    may_fail = True  # a damaged record fails its element, which is passed over and reported
    reads_in_python = True  # through TFDS's data source, in tf.numpy_function

    def __init__(self, data_source, parse, description, indices=None, shape=(None, None)):
        self.data_source, self.parse, self.description = data_source, parse, description
        self.indices = (np.arange(len(data_source), dtype=np.int64) if indices is None
                        else np.asarray(indices, np.int64))
        self._shape, self._shapes = shape, None

    def __len__(self):
        return len(self.indices)

    def subset(self, indices):
        """The records at ``indices`` of this store (no record is read)."""
        return ArrayRecordStore(self.data_source, self.parse, self.description,
                                self.indices[np.asarray(indices, np.int64)], self._shape)

    def read(self, positions):
        """The serialized records at ``positions`` of this store (a NumPy array of bytes)."""
        keys = self.indices[np.asarray(positions, np.int64).reshape(-1)].tolist()
        if len(keys) == 1:  # one record: indexing is ~40x cheaper than __getitems__'s pool
            return np.array([self.data_source[keys[0]]], dtype=object)
        return np.array(self.data_source.__getitems__(keys) if keys else [], dtype=object)

    def records(self):
        """Every serialized record of this store in order, as a ``tf.data.Dataset``."""
        starts = tf.data.Dataset.range(0, len(self), _READ_BATCH)
        return starts.map(lambda low: tf.numpy_function(
            lambda lo: self.read(np.arange(lo, min(lo + _READ_BATCH, len(self)))),
            [low], tf.string, stateful=False)).unbatch()

    def _encoded(self, positions):
        return [self.parse(tf.constant(r))[0].numpy() for r in self.read(positions)]

    @property
    def shapes(self):
        """Every image's (height, width): the feature's fixed shape, else each header."""
        if self._shapes is None:
            if None not in self._shape:
                self._shapes = np.tile(np.array([self._shape], np.int64), (len(self), 1))
            else:
                self._shapes = header_sizes_of_bytes(self._encoded(np.arange(len(self))))
        return self._shapes

    def median_area(self):
        """The median height x width, over a fixed sample of ``SIZE_SAMPLE`` records at most."""
        known = None not in self._shape or len(self) <= SIZE_SAMPLE
        return sampled_median_area(len(self), (lambda: self.shapes) if known else None,
                                   lambda picked: header_sizes_of_bytes(self._encoded(picked)))

    def describe(self, i):
        """Names element ``i`` (a string tensor), for reports of unreadable records."""
        return tf.strings.join([self.description + " record ",
                                tf.strings.as_string(tf.gather(self.indices, i))])

    def loader(self):
        def load(i):
            serialized = tf.numpy_function(lambda p: self.read(p)[0], [i], tf.string,
                                           stateful=False)
            serialized.set_shape([])
            return headers.decode(self.parse(serialized)[0])
        return load
