"""``train_dataset`` and ``eval_dataset``: the ``tf.data`` pipelines over a ``Source``.

The training stream is a pure function of the element's global position ``g`` in it:
epoch ``g // n`` is a permutation of the pipeline's ``n`` examples
(``tf.random.experimental.index_shuffle`` seeded by ``(seed, pipeline, epoch)``), and every
random crop, flip and mixup weight is a stateless op seeded by ``(seed, pipeline, g)``.
So a stream started at ``start_step`` equals the tail of one started at 0, which is what a
resumed run needs, and nothing depends on thread timing.
"""

import numpy as np
import tensorflow as tf

from bit_keras.data import augment as aug
from bit_keras.data import sampling, service, streams, tolerant
from bit_keras.data.source import Source
from bit_keras.utils import checks

AUTOTUNE = tf.data.AUTOTUNE
_PERMUTE, _AUGMENT, _MIXUP = streams.PERMUTE, streams.AUGMENT, streams.MIXUP


def train_dataset(source, batch_size, resize=160, crop=128, mixup_alpha=0.0, seed=0,
                  start_step=0, augment="hyperrule", input_context=None, skipped_log=None,
                  data_service=None):
    """An infinite, deterministic training stream of augmented, labelled batches.

    Args:
        source: a ``bit_keras.data.Source``.
        batch_size: the batch of this input pipeline (per worker or replica under
            ``tf.distribute``, as ``input_context.get_per_replica_batch_size`` gives it).
        resize: ``"hyperrule"`` resizes every image to ``resize`` x ``resize`` first
            (ignored by ``"inception"``).
        crop: the side of the images produced.
        mixup_alpha: mixup within the batch with Beta(alpha, alpha); 0 turns it off.
        seed: a non-negative int; the stream is a function of ``(seed, input_context)``.
        start_step: the first batch to produce; the stream equals the stream started at 0
            after ``start_step`` batches (for resuming).
        augment: ``"hyperrule"`` (BiT fine-tuning: resize, random crop, random flip) or
            ``"inception"`` (pre-training: random-resized crop, random flip).
        input_context: a ``tf.distribute.InputContext``; pipeline ``i`` of ``n`` reads
            examples ``i, i + n, i + 2n, ...`` only.
        skipped_log: a file to which unreadable image files are appended, one path a
            line, when the stream meets them (they are printed on stderr either way).
        data_service: the address of a tf.data service dispatcher (``"host:port"``): the
            batches are made by its workers, each batch as without the service but in the
            order the workers finish them (``bit_keras.data.service``). Random-access
            sources whose images TensorFlow decodes (no ArrayRecord, no Pillow-only files).

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)``: float32 ``[B, crop, crop, 3]`` in
        [0, 1] and float32 ``[B, num_classes]`` one-hot, multi-hot or mixed.

    A file that cannot be decoded (a source with ``may_fail``, such as a folder) is
    replaced by the next example of the same epoch's permutation that decodes, so element
    ``g`` is still a pure function of ``(seed, pipeline, g)`` and resuming stays exact.

    Example:

    >>> source = bit_keras.data.from_folder("flowers/train")
    >>> ds = bit_keras.data.train_dataset(source, 64, resize=160, crop=128, mixup_alpha=0.1)
    >>> images, labels = next(iter(ds))
    """
    _check_source(source)
    batch_size = checks.positive_int(batch_size, "batch_size")
    seed = sampling.check_seed(seed)
    start_step = sampling.check_seed(start_step, "start_step")
    resize, crop = check_augmentation(augment, resize, crop, mixup_alpha)
    if data_service is not None:
        data_service = service.check_address(data_service)
        service.check_source(source)
    if source.streaming:
        return _finish(streams.train_stream(source, batch_size, resize, crop, mixup_alpha, seed,
                                            start_step, augment, input_context, skipped_log),
                       input_context)
    pipeline, shard = _shard(source, input_context)
    n = len(shard)
    load, label_of = source.image_loader(), _labels(source)
    shard = tf.constant(shard)
    keys = {stream: tf.constant([seed, pipeline * 3 + stream], tf.int64)
            for stream in (_PERMUTE, _AUGMENT, _MIXUP)}

    def candidates(g, count):
        """Example indices at positions g, g + 1, ... of g's epoch permutation."""
        epoch_key = tf.random.experimental.stateless_fold_in(keys[_PERMUTE], g // n)
        positions = (g % n + tf.range(count, dtype=tf.int64)) % n
        return tf.gather(shard, tf.random.experimental.index_shuffle(
            positions, epoch_key, tf.constant(n - 1, tf.int64)))

    def example(index, g):
        key = tf.random.experimental.stateless_fold_in(keys[_AUGMENT], g)
        return aug.training(load(index), key, augment, resize, crop), label_of(index), g

    def mix(images, batch_labels, g):
        key = tf.random.experimental.stateless_fold_in(keys[_MIXUP], g[0] // batch_size)
        return aug.mixup(images, batch_labels, float(mixup_alpha), key)

    def positions(start, end=None):
        """The elements at positions ``start, start + 1, ...`` (up to ``end``)."""
        if source.may_fail:  # fault-tolerant: a file that fails is replaced
            return tolerant.first_readable(source, lambda g: candidates(g, tolerant.CANDIDATES),
                                           example, (crop, crop), skipped_log, drop=False,
                                           start=start, end=end)
        ds = (tf.data.Dataset.counter(start=start, dtype=tf.int64) if end is None
              else tf.data.Dataset.range(start, end, dtype=tf.int64))
        return ds.map(lambda g: example(candidates(g, 1)[0], g), num_parallel_calls=AUTOTUNE,
                      deterministic=True)

    if data_service is None:
        ds = positions(start_step * batch_size).batch(batch_size, drop_remainder=True)
    else:  # batch b made whole from its positions, so that a service worker can make it
        # A range, not Dataset.counter, and a map, not a flat_map: the service's dynamic
        # sharding splits neither of those, and every worker would make every batch.
        ds = tf.data.Dataset.range(start_step, 2**62, dtype=tf.int64).map(
            lambda b: positions(b * batch_size, (b + 1) * batch_size).batch(
                batch_size).get_single_element(), num_parallel_calls=AUTOTUNE,
            deterministic=True)
    if mixup_alpha > 0:
        ds = ds.map(mix, num_parallel_calls=AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(lambda images, batch_labels, g: (images, batch_labels))
    if data_service is not None:
        ds = service.distribute(ds, data_service)
    return _finish(ds, input_context)


def check_augmentation(augment, resize, crop, mixup_alpha=0.0):
    """``(resize, crop)`` once ``train_dataset``'s augmentation settings are checked (a
    training run calls it before it writes anything); raises a ValueError naming one."""
    checks.one_of(augment, "augment", aug.AUGMENTATIONS)
    crop = checks.positive_int(crop, "crop")
    if augment == "hyperrule":
        resize = checks.positive_int(resize, "resize")
        if resize < crop:
            raise ValueError("resize must be at least crop. "
                             f"Received: resize={resize}, crop={crop}")
    checks.finite_number(mixup_alpha, "mixup_alpha", note=" (0 turns mixup off)")
    return resize, crop


def eval_dataset(source, batch_size, crop=128, input_context=None, skipped_log=None):
    """A finite evaluation stream: every example once, in order, resized to ``crop``.

    Args:
        source: a ``bit_keras.data.Source``.
        batch_size: the batch of this input pipeline; the last batch may be smaller.
        crop: images are resized (bilinear, whole image) to ``crop`` x ``crop``, as the
            official BiT evaluation does.
        input_context: a ``tf.distribute.InputContext``; pipeline ``i`` of ``n`` reads
            examples ``i, i + n, ...``.
        skipped_log: as for ``train_dataset``; an unreadable file is left out of the
            evaluation.

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)``: float32 ``[b, crop, crop, 3]`` in
        [0, 1] and float32 one-hot (or multi-hot) ``[b, num_classes]``.

    Example:

    >>> ds = bit_keras.data.eval_dataset(bit_keras.data.from_tfds("cifar10", "test"), 100)
    """
    _check_source(source)
    batch_size = checks.positive_int(batch_size, "batch_size")
    crop = checks.positive_int(crop, "crop")
    if source.streaming:
        return _finish(streams.eval_stream(source, batch_size, crop, input_context, skipped_log),
                       input_context)
    _, shard = _shard(source, input_context, allow_empty=True)
    load, label_of = source.image_loader(), _labels(source)
    ds = tf.data.Dataset.range(len(shard))
    shard = tf.constant(shard)

    def example(index, g):
        return aug.center(load(index), crop), label_of(index), g

    def index_of(positions):
        return tf.reshape(tf.gather(shard, positions), [-1])

    if source.may_fail:  # an unreadable file is left out of the evaluation, and reported
        ds = tolerant.first_readable(source, index_of, example, (crop, crop), skipped_log,
                                     drop=True, end=len(shard))
    else:
        ds = ds.map(lambda p: example(index_of(p)[0], p), num_parallel_calls=AUTOTUNE,
                    deterministic=True)
    ds = ds.map(lambda images, batch_labels, g: (images, batch_labels))
    return _finish(ds.batch(batch_size), input_context)


def _labels(source):
    """``index -> float32 label row``: one-hot made in the pipeline from int labels (an
    ``N x classes`` one-hot matrix would not fit in memory for ImageNet-21k)."""
    if source.multi_label:
        rows = tf.constant(source.labels.astype(np.float32))
        return lambda i: tf.gather(rows, i)
    labels, classes = tf.constant(np.asarray(source.labels, np.int64)), source.num_classes
    return lambda i: tf.one_hot(tf.gather(labels, i), classes, dtype=tf.float32)


def _finish(ds, input_context):
    if input_context is not None:
        # The examples are sharded here already; tf.distribute must not shard again.
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.OFF)
        ds = ds.with_options(options)
    return ds.prefetch(AUTOTUNE)


def _shard(source, input_context, allow_empty=False):
    """(pipeline id, int64 example indices of this pipeline)."""
    everything = np.arange(source.num_examples, dtype=np.int64)
    if input_context is None:
        return 0, everything
    if not isinstance(input_context, tf.distribute.InputContext):
        raise TypeError("input_context must be a tf.distribute.InputContext or None. "
                        f"Received: {type(input_context).__name__}")
    i, n = input_context.input_pipeline_id, input_context.num_input_pipelines
    shard = everything[i::n]
    if not len(shard) and not allow_empty:
        raise ValueError(f"every input pipeline needs examples, but {source.num_examples} "
                         f"examples cannot feed {n} pipelines. Received: input_context with "
                         f"num_input_pipelines={n}")
    return i, shard


def _check_source(source):
    if not isinstance(source, Source):
        raise TypeError("source must be a bit_keras.data.Source (see "
                        "bit_keras.data.load_source). Received: " + type(source).__name__)
    if source.num_examples == 0:
        raise ValueError(f"source must hold images. Received: {source!r}")
