"""The streams of a TFRecord source (``records.RecordStore``): files dealt out to the
input pipelines, read in a drawn order, permuted in windows, resumable by position."""

import sys

import numpy as np
import tensorflow as tf

from bit_keras.data import augment as aug
from bit_keras.data import headers
from bit_keras.data import records as records_lib

AUTOTUNE = tf.data.AUTOTUNE
PERMUTE, AUGMENT, MIXUP = 0, 1, 2  # independent random streams of one pipeline
SHUFFLE_BUFFER = 10_000  # records permuted together: ~1 GB at ImageNet's ~110 KB a JPEG


_CHUNK = 64  # records decoded together before the names of those that failed are printed


def decode(encoded):
    return headers.decode(encoded)


def named_records(path, skip, take):
    """Records ``skip .. skip + take`` of one file, each with its name, ``FILE record N``."""
    names = tf.data.Dataset.range(skip, skip + take).map(
        lambda r: tf.strings.join([path, " record ", tf.strings.as_string(r)]))
    return tf.data.Dataset.zip((records_lib.read_file(path, skip, take), names))


def decoded(ds, example, skipped_log):
    """``example(g, serialized)`` -> ``(image, label, g)`` for each ``(g, (serialized,
    name))`` of ``ds`` whose record decodes, in order; the records that do not (no image,
    undecodable bytes, over the pixel limit) are left out and named on stderr and in
    ``skipped_log``. Chunks of ``_CHUNK`` records are decoded in parallel with their errors
    ignored; a position missing from a chunk's results marks a failure."""
    def chunk(gs, records):
        serialized, names = records
        inner = tf.data.Dataset.from_tensor_slices((gs, serialized)).map(
            example, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors()
        empty = tf.nest.map_structure(lambda s: tf.zeros([0, *s.shape], s.dtype),
                                      inner.element_spec)
        got = inner.batch(_CHUNK).concatenate(
            tf.data.Dataset.from_tensors(empty)).take(1).get_single_element()
        failed = tf.logical_not(tf.reduce_any(tf.equal(gs[:, None], got[-1][None, :]), axis=1))
        named = tf.strings.reduce_join(tf.boolean_mask(names, failed), separator="\n")

        def say():
            ops = [tf.print("bit_keras: skipped undecodable record(s):", named,
                            output_stream=sys.stderr)]
            if skipped_log:
                ops.append(tf.print(named, output_stream=f"file://{skipped_log}"))
            with tf.control_dependencies(ops):
                return tf.constant(True)

        said = tf.cond(tf.reduce_any(failed), say, lambda: tf.constant(True))
        with tf.control_dependencies([said]):
            return tf.nest.map_structure(tf.identity, got)

    return ds.batch(_CHUNK).map(chunk, num_parallel_calls=2, deterministic=True).unbatch()


def stream_files(source, input_context):
    """(pipeline id, the indices of this pipeline's files, its record count): files are
    dealt out."""
    store = source.store
    i, n = (0, 1) if input_context is None else (input_context.input_pipeline_id,
                                                 input_context.num_input_pipelines)
    if len(store.files) < n:
        raise ValueError(f"a TFRecord source is sharded by file: {n} input pipelines need at "
                         f"least {n} files. Received: {len(store.files)} file(s); write the "
                         "records as more shards")
    mine = np.arange(len(store.files))[i::n]
    return i, mine, int(store.counts[mine].sum())


def train_stream(source, batch_size, resize, crop, mixup_alpha, seed, start_step, augment,
            input_context, skipped_log):
    """The training stream of a streaming source: deterministic, resumable by position.

    Epoch ``e`` of pipeline ``i`` reads its files in an order drawn from ``(seed, i, e)``,
    interleaved deterministically, and permutes each window of ``SHUFFLE_BUFFER`` records
    by ``(seed, i, e, window)``. So
    element ``g`` is a function of ``(seed, i, g)`` as for random-access sources: a resumed
    stream starts at epoch ``g // n`` and skips ``g % n`` raw records (read, not decoded).
    """
    store = source.store
    pipeline, files, n = stream_files(source, input_context)
    first = start_step * batch_size
    paths = tf.constant([store.files[f] for f in files])
    skips, takes = tf.constant(store.skips[files]), tf.constant(store.counts[files])
    base = tf.constant([seed, pipeline * 3 + PERMUTE], tf.int64)
    aug_key = tf.constant([seed, pipeline * 3 + AUGMENT], tf.int64)
    mix_key = tf.constant([seed, pipeline * 3 + MIXUP], tf.int64)
    label_of = lambda label: tf.one_hot(label, source.num_classes, dtype=tf.float32)  # noqa: E731

    def epoch(e):
        key = tf.random.experimental.stateless_fold_in(base, e)
        order = tf.random.experimental.index_shuffle(
            tf.range(len(files), dtype=tf.int64), key, tf.constant(len(files) - 1, tf.int64))
        records = tf.data.Dataset.from_tensor_slices(
            (tf.gather(paths, order), tf.gather(skips, order), tf.gather(takes, order))
        ).interleave(named_records, cycle_length=min(16, len(files)), block_length=1,
            num_parallel_calls=AUTOTUNE, deterministic=True)
        # A stateless shuffle: windows of SHUFFLE_BUFFER records, each permuted by
        # (key, window); no buffer state, so nothing but the position decides an element.
        windows = records.batch(SHUFFLE_BUFFER).enumerate()

        def permute(w, window):
            noise = tf.random.stateless_uniform(
                tf.shape(window[0]), tf.random.experimental.stateless_fold_in(key, w))
            order = tf.argsort(noise)
            return tf.data.Dataset.from_tensor_slices(
                tuple(tf.gather(part, order) for part in window))

        return windows.flat_map(permute)

    ds = tf.data.Dataset.counter(start=first // n).flat_map(epoch).skip(first % n)
    ds = ds.enumerate(start=first)

    def example(g, serialized):
        encoded, label = store.parse(serialized)
        key = tf.random.experimental.stateless_fold_in(aug_key, g)
        return aug.training(decode(encoded), key, augment, resize, crop), label_of(label), g

    ds = decoded(ds, example, skipped_log)  # an undecodable record is dropped, and named
    ds = ds.batch(batch_size, drop_remainder=True)
    if mixup_alpha > 0:
        def mix(images, batch_labels, g):
            key = tf.random.experimental.stateless_fold_in(mix_key, g[0] // batch_size)
            return aug.mixup(images, batch_labels, float(mixup_alpha), key)
        return ds.map(mix, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.map(lambda images, batch_labels, g: (images, batch_labels))


def eval_stream(source, batch_size, crop, input_context, skipped_log):
    """Every record of this pipeline's files once, in file order (undecodable ones left out)."""
    store = source.store
    _, files, _ = stream_files(source, input_context) if input_context else (0, None, 0)

    def example(g, serialized):
        encoded, label = store.parse(serialized)
        return aug.center(decode(encoded), crop), tf.one_hot(label, source.num_classes), g

    indices = np.arange(len(store.files)) if files is None else np.asarray(files)
    records = tf.data.Dataset.from_tensor_slices(
        (tf.constant([store.files[i] for i in indices]), store.skips[indices],
         store.counts[indices])).flat_map(named_records)
    ds = decoded(records.enumerate(), example, skipped_log)
    return ds.map(lambda image, label, g: (image, label)).batch(batch_size)
