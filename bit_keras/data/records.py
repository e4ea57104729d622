"""``from_tfrecords``: a streaming ``Source`` over TFRecord shards of ``tf.train.Example``.

The records are never held: the pipelines stream them (``pipeline.py``, "streams"),
sharded by file across input pipelines, each epoch in a file order and a shuffle drawn from
``(seed, pipeline, epoch)`` (windows of ``streams.SHUFFLE_BUFFER`` records permuted statelessly). What the source keeps is one int label per example and a
record count per file, from one pass that parses the label feature only (no image is
decoded) and is cached in ``$BIT_KERAS_HOME/record_index/`` keyed by the files' names,
sizes and modification times, so a resume or an evaluation does not read them again.
"""

import glob
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from bit_keras.checkpoints.cache import cache_dir
from bit_keras.data import headers, record_check, sampling
from bit_keras.data.files import SIZE_SAMPLE
from bit_keras.data.source import EncodedStore, Source
from bit_keras.data.store import Store
from bit_keras.utils import atomic, checks

IMAGE_KEY, LABEL_KEY, TEXT_KEY = "image/encoded", "image/class/label", "image/class/text"


def read_file(path, skip, take):
    """Records ``skip .. skip + take`` of one TFRecord file."""
    return tf.data.TFRecordDataset(path).skip(skip).take(take)


def example_parser(image_key, label_key, label_offset=0):
    """``serialized tf.train.Example -> (encoded image, int64 label)``."""
    def parse(serialized):
        features = tf.io.parse_single_example(serialized, {
            image_key: tf.io.FixedLenFeature([], tf.string),
            label_key: tf.io.FixedLenFeature([], tf.int64)})
        return features[image_key], features[label_key] - label_offset
    return parse


class RecordStore(Store):
    """TFRecord files; file ``f`` contributes its records ``skips[f] .. skips[f] +
    counts[f]``; ``parse(serialized) -> (encoded image, int64 label)``."""

    may_fail = True
    streaming = True

    def __init__(self, files, counts, parse, skips=None):
        self.files, self.counts = list(files), np.asarray(counts, np.int64)
        self.skips = (np.zeros(len(self.files), np.int64) if skips is None
                      else np.asarray(skips, np.int64))
        self.parse = parse

    def records(self, indices=None):
        """The raw records of the files at ``indices`` (default all), in order."""
        indices = np.arange(len(self.files)) if indices is None else np.asarray(indices)
        return tf.data.Dataset.from_tensor_slices(
            (tf.constant([self.files[i] for i in indices]), self.skips[indices],
             self.counts[indices])).flat_map(read_file)

    def subset(self, indices):
        """An in-memory ``EncodedStore`` of the records at ``indices``: one pass over the
        files, stopping after the last index (few-shot draws; keep subsets small)."""
        from bit_keras.data.files import header_sizes_of_bytes
        indices = np.asarray(indices, np.int64)
        wanted, blobs = set(indices.tolist()), {}
        if len(indices):
            for i, serialized in enumerate(self.records().take(int(indices.max()) + 1)):
                if i in wanted:
                    blobs[i] = self.parse(serialized)[0].numpy()
        chosen = [blobs[i] for i in indices.tolist()]
        return EncodedStore([""] * len(chosen), chosen, header_sizes_of_bytes(chosen))

    def median_area(self):
        """The median height x width of the first ``SIZE_SAMPLE`` records, from their
        headers (nothing decoded); records without a readable image are passed over."""
        shape = lambda s: headers.encoded_shape(self.parse(s)[0])  # noqa: E731
        sizes = [int(h) * int(w) for h, w in self.records().take(SIZE_SAMPLE).map(
            shape).ignore_errors().as_numpy_iterator() if h * w > 0]
        if not sizes:
            raise ValueError("no record of this source has a readable JPEG, PNG, GIF or BMP "
                             "header to estimate the median image area")
        return float(np.median(sizes))


def from_tfrecords(pattern, class_names=None, examples_per_class=None, seed=0,
                   image_key=IMAGE_KEY, label_key=LABEL_KEY, label_offset=0, cache_index=True,
                   bad_records="warn"):
    """A streaming ``Source`` over TFRecord files of ``tf.train.Example`` records.

    Args:
        pattern: a glob (``"imagenet/train-*"``), or a list of files or globs. Files are
            sorted; under ``tf.distribute`` each input pipeline reads its own files.
        class_names: the class names in label order, or a text file of one name a line.
            Default: the ``image/class/text`` values met for each label, else ``"0"``,
            ``"1"``, ...
        examples_per_class: keep K per class (few-shot), drawn by ``seed`` from the labels;
            the drawn records (only those) are then read into memory in one pass.
        image_key, label_key: the feature keys (the standard ``image/encoded`` and
            ``image/class/label``).
        label_offset: subtracted from every label (1 for ImageNet TFRecords made by the
            TPU scripts, whose labels run 1..1000).
        cache_index: reuse the labels and counts of unchanged files.
        bad_records: what a shard cut mid-record, or a record without ``image_key`` bytes or
            with bytes of no image format, does: ``"warn"`` names the file and record in a
            warning and trains on the rest (whole records; a bad image is dropped when met);
            ``"stop"`` raises a ValueError naming them (``record_check.py``).

    Labels must be below the number of ``class_names``, or without them below
    ``record_check.MAX_CLASSES`` (100,000): a larger one is refused, naming its file and
    record, before anything is built.

    Returns:
        A ``bit_keras.data.Source`` that the pipelines stream (``source.streaming``).

    Example:

    >>> train = bit_keras.data.from_tfrecords("imagenet/train-*", label_offset=1)
    >>> result = bit_keras.fine_tune(model, train, run_dir="runs/imagenet")
    """
    examples_per_class = sampling.check_examples_per_class(examples_per_class)
    seed = sampling.check_seed(seed)
    checks.one_of(bad_records, "bad_records", record_check.BAD_RECORDS)
    files = _files(pattern)
    labels, counts, texts, damage = _index(files, image_key, label_key, TEXT_KEY, cache_index)
    record_check.report(damage, bad_records)
    labels = labels - label_offset
    if labels.size and labels.min() < 0:
        raise ValueError(f"labels must be >= 0 after label_offset={label_offset}; the records "
                         f"hold {int(labels.min()) + label_offset}. Pass label_offset=1 for "
                         "labels that start at 1.")
    class_names = _read_names(class_names)
    record_check.check_labels(labels, counts, files, class_names)
    num_classes = int(labels.max()) + 1 if labels.size else 0
    names = _class_names(class_names, num_classes, texts, label_offset)
    store = RecordStore(files, counts, example_parser(image_key, label_key, label_offset))
    source = Source(store, labels, names, description=f"tfrecords {pattern}")
    if examples_per_class is not None:
        indices = sampling.choose_per_class(labels, names, examples_per_class, seed)
        source = source.subset(indices)  # the drawn records, read into memory
    return source


def _files(pattern):
    patterns = [pattern] if isinstance(pattern, (str, os.PathLike)) else list(pattern)
    files = sorted({f for p in patterns for f in (glob.glob(os.fspath(p))
                                                   or ([os.fspath(p)] if os.path.isfile(os.fspath(p)) else []))})
    if not files:
        raise FileNotFoundError(f"pattern must name TFRecord files (a glob or a list). "
                                f"Received: pattern={pattern!r}, which matches no file")
    return files


def _index(files, image_key, label_key, text_key, use_cache):
    """``(int64 labels, per-file counts, {label: text}, damage)``: one pass over the labels
    (and the first bytes of the images) of each file's whole records; ``damage`` names the
    records cut short, without an image or of no image format."""
    stats = [(os.path.realpath(f), os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    key = hashlib.sha256(json.dumps([stats, label_key, text_key, image_key, 2]).encode())
    path = os.path.join(cache_dir(), "record_index", key.hexdigest()[:32] + ".npz")
    if use_cache and os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as cached:
                texts = json.loads(str(cached["texts"]))
                return (cached["labels"], cached["counts"], {int(k): v for k, v in texts.items()},
                        json.loads(str(cached["damage"])))
        except (OSError, ValueError, KeyError):
            pass  # damaged: read the files again
    spec = {label_key: tf.io.FixedLenFeature([], tf.int64),
            text_key: tf.io.FixedLenFeature([], tf.string, default_value=""),
            image_key: tf.io.FixedLenFeature([], tf.string, default_value="")}

    def parse(s):
        parsed = tf.io.parse_example(s, spec)
        return parsed[label_key], parsed[text_key], record_check.image_codes(parsed[image_key])

    labels, counts, texts, damage = [], [], {}, []
    for f in files:
        count, cut = record_check.whole_records(f)
        if cut is not None:
            damage.append(f"{f} record {count}: cut short at byte {cut} of "
                          f"{os.path.getsize(f)} (the file is truncated)")
        codes = []
        ds = tf.data.TFRecordDataset(f).take(count).batch(4096).map(
            parse, num_parallel_calls=tf.data.AUTOTUNE)
        try:
            for batch_labels, batch_texts, batch_codes in ds.as_numpy_iterator():
                labels.append(batch_labels)
                codes.append(batch_codes)
                for label, text in zip(labels[-1][:64], batch_texts[:64]):
                    if text and int(label) not in texts:
                        texts[int(label)] = text.decode("utf-8", "replace")
        except tf.errors.OpError as e:
            raise ValueError(f"TFRecord file {f!r} does not hold tf.train.Example records with "
                             f"an int64 {label_key!r} feature ({e.message.splitlines()[0]})") from None
        counts.append(count)
        damage += record_check.describe_codes(f, np.concatenate(codes or [[]]), image_key)
    labels = np.concatenate(labels) if labels else np.zeros([0], np.int64)
    counts = np.asarray(counts, np.int64)
    logging.info("Indexed %d records in %d TFRecord files", len(labels), len(files))
    if use_cache:
        try:
            with atomic.atomic_file(path) as tmp:
                with open(tmp, "wb") as out:
                    np.savez(out, labels=labels, counts=counts, texts=np.array(json.dumps(texts)),
                             damage=np.array(json.dumps(damage)))
        except OSError as e:
            logging.warning("Could not cache the record index in %s: %s", path, e)
    return labels, counts, texts, damage


def label_pass(store, key):
    """The int64 label of every record of ``store`` (one pass, no image decoded), cached in
    ``$BIT_KERAS_HOME/record_index/`` under ``key`` (a string naming the files' versions)."""
    path = os.path.join(cache_dir(), "record_index",
                        hashlib.sha256(key.encode()).hexdigest()[:32] + ".labels.npy")
    if os.path.isfile(path):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            pass  # damaged: read the records again
    labels = [batch.numpy() for batch in store.records().map(
        lambda s: store.parse(s)[1], num_parallel_calls=tf.data.AUTOTUNE).batch(4096)]
    labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros([0], np.int64)
    try:
        with atomic.atomic_file(path) as tmp:
            with open(tmp, "wb") as out:
                np.save(out, labels)
    except OSError as e:
        logging.warning("Could not cache the labels in %s: %s", path, e)
    return labels


def _read_names(class_names):
    if isinstance(class_names, (str, os.PathLike)):
        with open(class_names, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    return None if class_names is None else list(class_names)


def _class_names(class_names, num_classes, texts, label_offset):
    if class_names is None:
        return [texts.get(c + label_offset, str(c)) for c in range(num_classes)]
    if len(class_names) < num_classes:
        raise ValueError(f"class_names must name every label: the records hold labels up to "
                         f"{num_classes - 1}. Received: {len(class_names)} names")
    return class_names
