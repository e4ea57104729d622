"""Fault-tolerant reading of sources whose images can fail to decode (files): a bad file
is passed over for the next candidate and reported, and never stops the stream."""

import sys

import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE
# Unreadable files in a row a training element passes over before the stream stops with an
# error (the folder is then mostly damaged: bit_keras.data.scan lists its bad files).
CANDIDATES = 8
_CHUNK = 64  # positions decoded together before the failures among them are filled in


def first_readable(source, candidates_of, example, size, skipped_log, drop,
                    start=0, end=None):
    """Each position ``g`` (consecutive from ``start``) becomes ``example(index, g)``
    for the first of ``candidates_of(g)`` that decodes.

    The first candidates are decoded in parallel maps over chunks of ``_CHUNK`` positions
    whose errors are ignored; a gap in ``g`` marks a failure, and only then are the other
    candidates tried, each in its own small dataset whose errors are ignored. The files passed over are printed on
    stderr and appended to ``skipped_log``. When no candidate decodes, the element is
    dropped (``drop``) or the stream stops with an error naming the files. A finite
    stream gives ``end`` (one past its last ``g``).
    """
    classes = source.num_classes

    def say(indices):
        names = tf.strings.reduce_join(source.describe_example(indices), separator="\n")

        def emit():
            ops = [tf.print("bit_keras: skipped unreadable image file(s):", names,
                            output_stream=sys.stderr)]
            if skipped_log:
                ops.append(tf.print(names, output_stream=f"file://{skipped_log}"))
            with tf.control_dependencies(ops):
                return tf.constant(True)

        return tf.cond(tf.size(indices) > 0, emit, lambda: tf.constant(True)), names

    def fallback(g):
        """The first of ``g``'s other candidates that decodes (its first one did not)."""
        indices = candidates_of(g)
        rest = tf.data.Dataset.from_tensor_slices(
            (indices[1:], tf.range(1, tf.size(indices, tf.int64), dtype=tf.int64)))
        tried = rest.map(lambda i, rank: (*example(i, g), rank)).ignore_errors()
        none = tf.data.Dataset.from_tensors((tf.zeros([*size, 3]), tf.zeros([classes]), g,
                                             tf.constant(-1, tf.int64)))

        def report(image, label, g, rank):
            failed = tf.cond(rank < 0, lambda: indices, lambda: indices[:rank])
            said, names = say(failed)
            checks_ = [said]
            if not drop:
                checks_.append(tf.debugging.Assert(rank >= 0, [
                    f"{CANDIDATES} image files in a row could not be decoded:", names,
                    "; the data is damaged: bit_keras.data.scan(folder) lists every "
                    "unreadable file"]))
            with tf.control_dependencies(checks_):
                return tf.identity(image), label, g, rank

        found = tried.concatenate(none).take(1).map(report)
        return found.filter(lambda image, label, g, rank: rank >= 0).map(
            lambda image, label, g, rank: (image, label, g))

    def empty():
        return (tf.zeros([0, *size, 3]), tf.zeros([0, classes]), tf.zeros([0], tf.int64))

    def collect(ds):
        """The elements of a small dataset as one batch (an empty one if it has none)."""
        return ds.batch(_CHUNK).concatenate(
            tf.data.Dataset.from_tensors(empty())).take(1).get_single_element()

    def chunk(low):
        """Positions ``low..`` of one chunk, decoded in parallel (bad ones dropped), then
        completed by the fallbacks of the positions that failed, in position order."""
        high = low + _CHUNK if end is None else tf.minimum(low + _CHUNK, end)
        positions = tf.range(low, high, dtype=tf.int64)
        images, labels, gs = collect(tf.data.Dataset.from_tensor_slices(positions).map(
            lambda g: example(candidates_of(g)[0], g), num_parallel_calls=AUTOTUNE,
            deterministic=True).ignore_errors())
        present = tf.reduce_any(tf.equal(positions[:, None], gs[None, :]), axis=1)
        missing = tf.boolean_mask(positions, tf.logical_not(present))
        if drop:
            said, _ = say(tf.reshape(candidates_of(missing), [-1]))
            with tf.control_dependencies([said]):
                return tf.identity(images), labels, gs
        more = collect(tf.data.Dataset.from_tensor_slices(missing).flat_map(fallback))
        images, labels, gs = (tf.concat([a, b], 0) for a, b in zip((images, labels, gs), more))
        order = tf.argsort(gs)
        return tf.gather(images, order), tf.gather(labels, order), tf.gather(gs, order)

    lows = (tf.data.Dataset.counter(start, _CHUNK) if end is None
            else tf.data.Dataset.range(start, end, _CHUNK))
    return lows.map(chunk, num_parallel_calls=2, deterministic=True).unbatch()
